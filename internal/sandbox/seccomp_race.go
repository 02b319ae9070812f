//go:build linux && race

package sandbox

// extraAllowedSyscalls are needed only by the race detector's runtime (TSan).
// They are compiled in only under -race.
var extraAllowedSyscalls []string
