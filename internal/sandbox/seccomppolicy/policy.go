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
	"slices"
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

// archSetFS is ARCH_SET_FS (asm/prctl.h, x86 only; not in x/sys/unix).
const archSetFS = 0x1002

// enosys is ENOSYS on the architectures a program is generated for (the value differs on
// some others, such as mips).
const enosys = 38

// Arches are the GOARCH values a program is generated for.
var Arches = []string{"amd64", "arm64"}

// PidSentinel stands for the process id in a generated program; the sandbox patches the
// instructions that hold it (tgkill's target must be the process itself).
const PidSentinel = 0x5a5a5a5a

// Stage selects one of the policy's programs.
//
// Whole is the policy in one program, which a directly started enclave installs itself. A
// prestarted process (docs/sandbox.md, "Prestarted processes") installs Launch while it waits
// for its enclave, off the load's critical path: the policy plus what executing the enclave and
// finishing its sandbox need. The enclave runtime then installs Finish, which allows everything
// except those additions. Filters stack and the kernel applies the stricter answer, so Launch
// followed by Finish allows exactly what Whole allows (TestStagesComposeToWhole).
//
// Launch adds, and Finish takes back:
//   - execve: the image is executed (through /proc/self/fd/N);
//   - clone with exactly SpawnCloneFlags|SpawnNamespaceFlags: the prestarted process (a spawner)
//     starts each enclave as a vfork-style child of its own parent, in new namespaces;
//   - tgkill to any process: the enclave's pid is not the prestarted process's (Finish
//     restricts tgkill to the enclave's own pid again);
//   - prctl(PR_SET_PDEATHSIG, SIGKILL): the enclave asks for its parent-death signal itself;
//   - arch_prctl(ARCH_SET_FS, ...) (amd64): the Go runtime of the executed image sets up its
//     thread-local storage with it, first thing;
//   - prctl(PR_SET_DUMPABLE, 0): exec makes the process dumpable again;
//   - prctl(PR_SET_NO_NEW_PRIVS, 1): go-landlock sets it again on every thread (it is set);
//   - landlock_create_ruleset, landlock_add_rule, landlock_restrict_self: Landlock cannot be
//     applied before the exec (a domain without rules denies executing the image);
//   - seccomp(SECCOMP_SET_MODE_FILTER, ...): installing Finish.
//
// Each of them starts the measured image or restricts the caller further.
type Stage int

const (
	Whole Stage = iota
	Launch
	Finish
)

// SpawnCloneFlags are the clone(2) flags with which a spawner (a prestarted process that starts
// enclaves as children) starts one, besides SpawnNamespaceFlags: the vfork-style clone of Go's
// syscall.ForkExec plus CLONE_PARENT, so that the enclave is the host's child.
const SpawnCloneFlags = unix.CLONE_VM | unix.CLONE_VFORK | unix.CLONE_PARENT | uint64(unix.SIGCHLD)

// SpawnNamespaceFlags are the namespaces a spawner creates for each enclave: all of the
// sandbox's but the user and network namespaces, which the enclaves share with the spawner.
// internal/sandbox.SpawnNamespaceFlags must be the same (its tests check).
const SpawnNamespaceFlags = unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP

func (s Stage) String() string {
	switch s {
	case Whole:
		return "whole"
	case Launch:
		return "launch"
	case Finish:
		return "finish"
	}
	return fmt.Sprintf("Stage(%d)", int(s))
}

// Build returns the policy for a process whose pid (as seen in its own pid namespace) is pid,
// on architecture goarch, and the names it allows (conditionally allowed ones with a "*").
func Build(goarch string, pid uint32) (*seccomp.Policy, []string, error) {
	return BuildStage(goarch, Whole, pid)
}

// BuildStage returns one stage of the policy. For Whole and Launch the names are those allowed;
// for Finish (which allows by default) those denied. Launch does not depend on pid.
func BuildStage(goarch string, stage Stage, pid uint32) (*seccomp.Policy, []string, error) {
	info, err := arch.GetInfo(goarch)
	if err != nil {
		return nil, nil, err
	}
	known := func(n string) bool { _, ok := info.SyscallNames[n]; return ok }
	c := func(name string, conds ...seccomp.Condition) seccomp.NameWithConditions {
		return seccomp.NameWithConditions{Name: name, Conditions: conds}
	}
	eq := func(arg uint32, v uint64) seccomp.Condition {
		return seccomp.Condition{Argument: arg, Operation: seccomp.Equal, Value: v}
	}
	var names []string
	var conds []seccomp.NameWithConditions
	switch stage {
	case Whole, Launch:
		names = slices.Clone(Allowed)
		for _, nc := range conditionalSyscalls(pid) {
			if stage == Launch && nc.Name == "tgkill" {
				continue // allowed with any arguments below
			}
			conds = append(conds, nc)
		}
		if stage == Launch {
			names = append(names, "execve", "tgkill", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self")
			conds = append(conds,
				c("clone", eq(0, SpawnCloneFlags|SpawnNamespaceFlags)),
				c("arch_prctl", eq(0, archSetFS)),
				c("prctl", eq(0, unix.PR_SET_DUMPABLE), eq(1, 0)),
				c("prctl", eq(0, unix.PR_SET_NO_NEW_PRIVS), eq(1, 1)),
				c("prctl", eq(0, unix.PR_SET_PDEATHSIG), eq(1, uint64(unix.SIGKILL))),
				c("seccomp", eq(0, unix.SECCOMP_SET_MODE_FILTER)))
		}
	case Finish:
		names = []string{"arch_prctl", "execve", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "seccomp"}
		conds = []seccomp.NameWithConditions{
			c("clone", seccomp.Condition{Argument: 0, Operation: seccomp.BitsNotSet, Value: unix.CLONE_THREAD}),
			c("tgkill", seccomp.Condition{Argument: 0, Operation: seccomp.NotEqual, Value: uint64(pid)}),
			c("prctl", eq(0, unix.PR_SET_DUMPABLE)),
			c("prctl", eq(0, unix.PR_SET_NO_NEW_PRIVS)),
			c("prctl", eq(0, unix.PR_SET_PDEATHSIG)),
		}
	default:
		return nil, nil, fmt.Errorf("seccomppolicy: unknown stage %v", stage)
	}

	var kept []string
	seen := map[string]bool{}
	for _, n := range names {
		if known(n) && !seen[n] {
			seen[n] = true
			kept = append(kept, n)
		}
	}
	var keptConds []seccomp.NameWithConditions
	for _, nc := range conds {
		if known(nc.Name) {
			keptConds = append(keptConds, nc)
		}
	}

	listed := append([]string{}, kept...)
	cseen := map[string]bool{}
	for _, nc := range keptConds {
		if !cseen[nc.Name] {
			cseen[nc.Name] = true
			listed = append(listed, nc.Name+"*")
		}
	}
	sort.Strings(listed)

	if stage == Finish {
		return &seccomp.Policy{
			DefaultAction: seccomp.ActionAllow,
			Syscalls:      []seccomp.SyscallGroup{{Names: kept, NamesWithCondtions: keptConds, Action: seccomp.ActionErrno}},
		}, listed, nil
	}
	groups := []seccomp.SyscallGroup{}
	// clone3 passes its flags in memory, which BPF cannot inspect. Deny it
	// with ENOSYS so glibc's pthread_create (cgo, race builds) falls back to
	// clone(2), whose flags are checked above.
	if known("clone3") {
		groups = append(groups, seccomp.SyscallGroup{Names: []string{"clone3"}, Action: seccomp.ActionErrno | seccomp.Action(enosys)})
	}
	groups = append(groups, seccomp.SyscallGroup{Names: kept, NamesWithCondtions: keptConds, Action: seccomp.ActionAllow})
	return &seccomp.Policy{
		// Forbidden calls fail visibly with EPERM instead of killing.
		DefaultAction: seccomp.ActionErrno,
		Syscalls:      groups,
	}, listed, nil
}

// Program assembles the policy for goarch and pid into BPF.
func Program(goarch string, pid uint32) ([]bpf.RawInstruction, []string, error) {
	return ProgramStage(goarch, Whole, pid)
}

// ProgramStage assembles one stage of the policy into BPF.
func ProgramStage(goarch string, stage Stage, pid uint32) ([]bpf.RawInstruction, []string, error) {
	pol, names, err := BuildStage(goarch, stage, pid)
	if err != nil {
		return nil, nil, err
	}
	info, err := arch.GetInfo(goarch)
	if err != nil {
		return nil, nil, err
	}
	insts, err := pol.AssembleFor(info)
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
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by go generate (internal/sandbox/seccomppolicy); DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "//go:build linux && %s\n\npackage sandbox\n\nimport \"golang.org/x/sys/unix\"\n\n", goarch)
	for _, st := range []struct {
		stage              Stage
		prefix, doc        string
		namesVar, namesDoc string
	}{
		{Whole, "seccompFilter", "the sandbox's seccomp policy", "seccompAllowed", "the allowed system calls"},
		// The stages' name lists are not emitted: a process under both reports Whole's.
		{Launch, "seccompLaunchFilter", "the policy's Launch stage (installed by a prestarted process)", "", ""},
		{Finish, "seccompFinishFilter", "the policy's Finish stage (installed by an enclave started by a prestarted process)", "", ""},
	} {
		prog, pidAt, names, err := stageProgram(goarch, st.stage)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "// %s is %s for %s, with the pid at %sPidAt.\n", st.prefix, st.doc, goarch, st.prefix)
		fmt.Fprintf(&b, "var %s = []unix.SockFilter{\n", st.prefix)
		for _, in := range prog {
			fmt.Fprintf(&b, "\t{Code: %#04x, Jt: %d, Jf: %d, K: %#x},\n", in.Op, in.Jt, in.Jf, in.K)
		}
		fmt.Fprintf(&b, "}\n\nvar %sPidAt = %#v\n\n", st.prefix, pidAt)
		if st.namesVar != "" {
			fmt.Fprintf(&b, "// %s lists %s (\"*\": with argument checks).\nvar %s = %#v\n\n", st.namesVar, st.namesDoc, st.namesVar, names)
		}
	}
	return format.Source(b.Bytes())
}

// stageProgram assembles a stage with the pid sentinel and finds the instructions that hold
// the pid: Whole and Finish have them (tgkill's rule), Launch has none.
func stageProgram(goarch string, stage Stage) (prog []bpf.RawInstruction, pidAt []int, names []string, err error) {
	prog, names, err = ProgramStage(goarch, stage, PidSentinel)
	if err != nil {
		return nil, nil, nil, err
	}
	other, _, err := ProgramStage(goarch, stage, PidSentinel+1)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(other) != len(prog) {
		return nil, nil, nil, fmt.Errorf("seccomppolicy: %v program length depends on the pid", stage)
	}
	for i := range prog {
		if prog[i] != other[i] {
			if prog[i].K != PidSentinel || other[i].K != PidSentinel+1 || prog[i].Op != other[i].Op {
				return nil, nil, nil, fmt.Errorf("seccomppolicy: %v instruction %d depends on the pid in an unexpected way", stage, i)
			}
			pidAt = append(pidAt, i)
		}
	}
	if (len(pidAt) == 0) != (stage == Launch) {
		return nil, nil, nil, fmt.Errorf("seccomppolicy: %v program has %d pid slots", stage, len(pidAt))
	}
	return prog, pidAt, names, nil
}
