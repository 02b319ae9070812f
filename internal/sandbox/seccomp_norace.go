//go:build linux && !race

package sandbox

// extraAllowedSyscalls is empty in normal builds.
var extraAllowedSyscalls []string
