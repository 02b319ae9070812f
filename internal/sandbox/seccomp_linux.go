//go:build linux

package sandbox

import (
	"fmt"
	"sort"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// allowedSyscalls are allowed with any arguments. Every entry is justified in
// docs/sandbox.md. Names unknown on the running architecture (e.g. "dup2",
// "epoll_wait", "getrlimit" on arm64) are skipped.
var allowedSyscalls = []string{
	// I/O on descriptors the process already holds.
	"read", "write", "readv", "writev", "pread64", "pwrite64", "lseek",
	"close", "fstat", "dup", "dup2", "dup3",
	"recvmsg", "sendmsg", "recvfrom", "sendto", "shutdown",
	"getsockopt", "setsockopt", "getsockname", "getpeername",
	// Go net poller and runtime wake-ups; os.Pipe.
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
	"eventfd2", "pipe2",
	// Memory (mmap/mprotect are argument-filtered below).
	"munmap", "madvise", "mremap", "brk",
	// Threads, scheduling, synchronisation.
	"futex", "sched_yield", "sched_getaffinity", "set_robust_list", "rseq",
	"getpid", "gettid",
	// Time.
	"nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday",
	// Signals (own process only; tgkill is argument-filtered below).
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
	// Misc.
	"getrandom", "getrlimit", "exit", "exit_group",
}

// nsCloneFlags are the namespace-creating clone flags (never allowed).
const nsCloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// conditionalSyscalls are allowed only when their arguments match. Several
// entries with the same name are OR'ed; conditions inside one entry are AND'ed.
func conditionalSyscalls(pid int) []seccomp.NameWithConditions {
	c := func(name string, conds ...seccomp.Condition) seccomp.NameWithConditions {
		return seccomp.NameWithConditions{Name: name, Conditions: conds}
	}
	eq := func(arg uint32, v uint64) seccomp.Condition {
		return seccomp.Condition{Argument: arg, Operation: seccomp.Equal, Value: v}
	}
	out := []seccomp.NameWithConditions{
		// New threads only: CLONE_THREAD set, no namespace flags. A fork
		// (no CLONE_THREAD) fails with EPERM.
		c("clone",
			seccomp.Condition{Argument: 0, Operation: seccomp.BitsSet, Value: unix.CLONE_THREAD},
			seccomp.Condition{Argument: 0, Operation: seccomp.BitsNotSet, Value: nsCloneFlags}),
		// Signals to our own threads only (Go preemption, raise()).
		c("tgkill", eq(0, uint64(pid))),
		// No new executable memory.
		c("mmap", seccomp.Condition{Argument: 2, Operation: seccomp.BitsNotSet, Value: unix.PROT_EXEC}),
		c("mprotect", seccomp.Condition{Argument: 2, Operation: seccomp.BitsNotSet, Value: unix.PROT_EXEC}),
		// Read-only process state queries (used by Restrict's own
		// verification and by tests); every PR_SET_* is denied.
		c("prctl", eq(0, unix.PR_GET_DUMPABLE)),
		c("prctl", eq(0, unix.PR_GET_NO_NEW_PRIVS)),
		c("prctl", eq(0, unix.PR_GET_SECCOMP)),
		// prlimit64 only on self and only to read.
		c("prlimit64", eq(0, 0), eq(2, 0)),
	}
	// fcntl: descriptor flags and duplication only (no F_SETOWN/F_SETSIG,
	// no locks, no leases, no adding seals). F_GET_SEALS is read-only: the
	// switchless channel (internal/shm) uses it to check that the host can
	// no longer shrink the shared region under the enclave.
	for _, cmd := range []uint64{unix.F_GETFD, unix.F_SETFD, unix.F_GETFL, unix.F_SETFL, unix.F_DUPFD, unix.F_DUPFD_CLOEXEC, unix.F_GET_SEALS} {
		out = append(out, c("fcntl", eq(1, cmd)))
	}
	return out
}

// errnoENOSYS makes a denied syscall look unimplemented so that libc falls back.
const actionENOSYS = seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)

// buildPolicy returns the seccomp policy for a process whose pid (as seen in
// its own pid namespace) is pid, and the list of allowed syscall names.
func buildPolicy(pid int) (*seccomp.Policy, []string, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, nil, err
	}
	known := func(n string) bool { _, ok := info.SyscallNames[n]; return ok }

	var names []string
	seen := map[string]bool{}
	for _, n := range append(append([]string{}, allowedSyscalls...), extraAllowedSyscalls...) {
		if known(n) && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	var conds []seccomp.NameWithConditions
	for _, nc := range conditionalSyscalls(pid) {
		if known(nc.Name) {
			conds = append(conds, nc)
		}
	}

	groups := []seccomp.SyscallGroup{}
	// clone3 passes its flags in memory, which BPF cannot inspect. Deny it
	// with ENOSYS so glibc's pthread_create (cgo, race builds) falls back to
	// clone(2), whose flags are checked above.
	if known("clone3") {
		groups = append(groups, seccomp.SyscallGroup{Names: []string{"clone3"}, Action: actionENOSYS})
	}
	groups = append(groups, seccomp.SyscallGroup{Names: names, NamesWithCondtions: conds, Action: seccomp.ActionAllow})

	listed := append([]string{}, names...)
	cseen := map[string]bool{}
	for _, nc := range conds {
		if !cseen[nc.Name] {
			cseen[nc.Name] = true
			listed = append(listed, nc.Name+"*")
		}
	}
	sort.Strings(listed)
	return &seccomp.Policy{
		// Forbidden calls fail visibly with EPERM instead of killing.
		DefaultAction: seccomp.ActionErrno,
		Syscalls:      groups,
	}, listed, nil
}

// loadSeccomp installs the policy on every thread of the process (TSYNC).
func loadSeccomp(pid int) ([]string, error) {
	if !seccomp.Supported() {
		return nil, fmt.Errorf("seccomp filter mode not supported by this kernel")
	}
	pol, names, err := buildPolicy(pid)
	if err != nil {
		return nil, err
	}
	err = seccomp.LoadFilter(seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync,
		Policy:     *pol,
	})
	if err != nil {
		return nil, err
	}
	// With TSYNC the kernel reports a failed synchronisation as a positive
	// thread id, which the library does not treat as an error; no filter is
	// installed in that case. Verify on this thread.
	if mode, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil || mode != 2 {
		return nil, fmt.Errorf("seccomp filter not in effect after loading (PR_GET_SECCOMP=%d, %v)", mode, err)
	}
	return names, nil
}

func seccompSupported() bool { return seccomp.Supported() }
