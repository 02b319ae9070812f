//go:build linux

// Package seccomppolicy is the enclave sandbox's seccomp policy, written with
// github.com/elastic/go-seccomp-bpf. It is not linked into enclaves: go generate in
// internal/sandbox assembles it into a BPF program per architecture (zfilter_*.go), which the
// sandbox loads with one system call, and internal/sandbox's tests check that what is compiled
// in is exactly what the library assembles (docs/sandbox.md).
package seccomppolicy

import (
	"bytes"
	"fmt"
	"go/format"
	"sort"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Allowed are allowed with any arguments. Every entry is justified in
// docs/sandbox.md. Names unknown on the running architecture (e.g. "dup2",
// "epoll_wait", "getrlimit" on arm64) are skipped.
var Allowed = []string{
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
func conditionalSyscalls(pid uint32) []seccomp.NameWithConditions {
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

// enosys is ENOSYS on the architectures a program is generated for (the value differs on
// some others, such as mips).
const enosys = 38

// Arches are the GOARCH values a program is generated for.
var Arches = []string{"amd64", "arm64"}

// PidSentinel stands for the process id in a generated program; the sandbox patches the
// instructions that hold it (tgkill's target must be the process itself).
const PidSentinel = 0x5a5a5a5a

// Build returns the policy for a process whose pid (as seen in its own pid namespace) is pid,
// on architecture goarch, and the names it allows (conditionally allowed ones with a "*").
func Build(goarch string, pid uint32) (*seccomp.Policy, []string, error) {
	info, err := arch.GetInfo(goarch)
	if err != nil {
		return nil, nil, err
	}
	known := func(n string) bool { _, ok := info.SyscallNames[n]; return ok }

	var names []string
	seen := map[string]bool{}
	for _, n := range Allowed {
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
		groups = append(groups, seccomp.SyscallGroup{Names: []string{"clone3"}, Action: seccomp.ActionErrno | seccomp.Action(enosys)})
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

// Program assembles the policy for goarch and pid into BPF.
func Program(goarch string, pid uint32) ([]bpf.RawInstruction, []string, error) {
	pol, names, err := Build(goarch, pid)
	if err != nil {
		return nil, nil, err
	}
	insts, err := pol.Assemble()
	if err != nil {
		return nil, nil, err
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, nil, err
	}
	return raw, names, nil
}

// Generate returns the Go source of internal/sandbox's zfilter_linux_<goarch>.go.
func Generate(goarch string) ([]byte, error) {
	prog, names, err := Program(goarch, PidSentinel)
	if err != nil {
		return nil, err
	}
	// The pid slots are the instructions that change with the pid, and they must hold it.
	other, _, err := Program(goarch, PidSentinel+1)
	if err != nil {
		return nil, err
	}
	if len(other) != len(prog) {
		return nil, fmt.Errorf("seccomppolicy: program length depends on the pid")
	}
	var pidAt []int
	for i := range prog {
		if prog[i] != other[i] {
			if prog[i].K != PidSentinel || other[i].K != PidSentinel+1 || prog[i].Op != other[i].Op {
				return nil, fmt.Errorf("seccomppolicy: instruction %d depends on the pid in an unexpected way", i)
			}
			pidAt = append(pidAt, i)
		}
	}
	if len(pidAt) == 0 {
		return nil, fmt.Errorf("seccomppolicy: no pid slot in the program")
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by go generate (internal/sandbox/seccomppolicy); DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "//go:build linux && %s\n\npackage sandbox\n\nimport \"golang.org/x/sys/unix\"\n\n", goarch)
	fmt.Fprintf(&b, "// seccompFilter is the sandbox's seccomp policy for %s, with the pid at seccompPidAt.\n", goarch)
	fmt.Fprintf(&b, "var seccompFilter = []unix.SockFilter{\n")
	for _, in := range prog {
		fmt.Fprintf(&b, "\t{Code: %#04x, Jt: %d, Jf: %d, K: %#x},\n", in.Op, in.Jt, in.Jf, in.K)
	}
	fmt.Fprintf(&b, "}\n\nvar seccompPidAt = %#v\n\n", pidAt)
	fmt.Fprintf(&b, "// seccompAllowed lists the allowed system calls (\"*\": with argument checks).\nvar seccompAllowed = %#v\n", names)
	return format.Source(b.Bytes())
}
