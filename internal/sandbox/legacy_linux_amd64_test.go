package sandbox

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// legacyProbeNames are the probes of system calls that newer architectures (arm64) dropped.
var legacyProbeNames = []string{"sys_open", "sys_creat", "fork", "vfork"}

func legacyProbes(path func(string) uintptr, tmp string) {
	raw("sys_open", unix.SYS_OPEN, path("/etc/passwd"), unix.O_RDONLY)
	raw("sys_creat", unix.SYS_CREAT, path(filepath.Join(tmp, "creat")), 0o644)
	rawFork("fork", unix.SYS_FORK, 0)
	rawFork("vfork", unix.SYS_VFORK, 0)
}
