//go:build linux

package sandbox

import (
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// CloseInherited closes every descriptor this process inherited through exec other than 0, 1, 2
// and keep, and returns the ones it closed. A child inherits each descriptor its parent had
// without close-on-exec, whatever the parent meant to pass (os/exec passes only Stdin, Stdout,
// Stderr and ExtraFiles, but cannot stop the rest of the parent's process, or whoever started
// the parent, from having left descriptors open), and an inherited descriptor is a way out of
// the sandbox that no seccomp rule on open(2) or socket(2) closes. Descriptors this process
// opened itself (the Go runtime's) have close-on-exec set and are left alone; so call it early,
// from an init function, before the process could clear that flag on one of its own.
func CloseInherited(keep ...int) ([]int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	var closed []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 || slices.Contains(keep, fd) {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue // gone (the directory's own descriptor), or opened by this process
		}
		if unix.Close(fd) == nil {
			closed = append(closed, fd)
		}
	}
	return closed, nil
}
