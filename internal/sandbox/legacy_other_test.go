//go:build linux && !amd64

package sandbox

// This architecture has no open, creat, fork or vfork system calls to probe.
var legacyProbeNames []string

func legacyProbes(path func(string) uintptr, tmp string) {}
