//go:build linux

package sandbox

import (
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp policy is written with github.com/elastic/go-seccomp-bpf in package
// seccomppolicy and assembled ahead of time into zfilter_linux_<arch>.go, so that enclaves
// neither link the library nor pay for assembling the program at every start
// (docs/sandbox.md). TestPrecompiledFilter checks the compiled-in program against the library.
//go:generate go run ./internal/genfilter

const (
	seccompSetModeStrict   = 0 // SECCOMP_SET_MODE_STRICT
	seccompSetModeFilter   = 1 // SECCOMP_SET_MODE_FILTER
	seccompFilterFlagTSync = 1 // SECCOMP_FILTER_FLAG_TSYNC
)

// loadSeccomp installs the policy on every thread of the process (TSYNC), for a process whose
// pid in its own pid namespace is pid, and returns the names it allows.
func loadSeccomp(pid int) ([]string, error) {
	if len(seccompFilter) == 0 {
		return nil, fmt.Errorf("no seccomp policy for %s", runtime.GOARCH)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("no_new_privs: %w", err)
	}
	if !seccompSupported() {
		return nil, fmt.Errorf("seccomp filter mode not supported by this kernel")
	}
	if err := loadFilter(seccompFilter, seccompFilterPidAt, pid); err != nil {
		return nil, err
	}
	return slices.Clone(seccompAllowed), nil
}

// loadFilter installs program, with pid at the instructions pidAt, on every thread (TSYNC).
// The caller has set no_new_privs.
func loadFilter(program []unix.SockFilter, pidAt []int, pid int) error {
	if len(program) == 0 {
		return fmt.Errorf("no seccomp policy for %s", runtime.GOARCH)
	}
	prog := slices.Clone(program)
	for _, i := range pidAt {
		prog[i].K = uint32(pid)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, seccompSetModeFilter, seccompFilterFlagTSync, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if e != 0 {
		return fmt.Errorf("loading the filter: %w", e)
	}
	if r != 0 {
		// With TSYNC, a positive result is the id of a thread that could not be synchronised;
		// no filter was installed.
		return fmt.Errorf("loading the filter: thread %d could not be synchronised", r)
	}
	if mode, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil || mode != 2 {
		return fmt.Errorf("seccomp filter not in effect after loading (PR_GET_SECCOMP=%d, %v)", mode, err)
	}
	return nil
}

// seccompSupported reports whether seccomp(2) filter mode is available: strict mode with a
// non-zero flag fails with EINVAL exactly when the system call exists and is permitted.
func seccompSupported() bool {
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, seccompSetModeStrict, 1, 0)
	return e == unix.EINVAL
}
