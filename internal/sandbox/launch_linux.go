//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Staged sandboxing, for processes prepared before they know their enclave (the sim back-end's
// prestarted processes, which start its enclaves unless sim.Direct).
//
// A prestarted process calls PrepareLaunch while it waits: every descriptor it holds becomes
// close-on-exec, core dumps are off, no_new_privs is set and the seccomp policy's Launch stage
// is installed on every thread. Those steps are then off the load's critical path. The process
// then executes the enclave, which calls Restrict with Options.Launched to finish the job: not
// dumpable, Landlock, and the Finish stage, which takes back exactly what Launch allowed beyond
// the policy (seccomppolicy.Stage).

// ErrNotLaunched is returned by Restrict with Options.Launched when the process does not carry
// what PrepareLaunch sets up (no seccomp filter, no no_new_privs, or core dumps allowed).
var ErrNotLaunched = errors.New("sandbox: process was not prepared by PrepareLaunch")

var (
	launchMu       sync.Mutex
	launchPrepared bool
)

// PrepareLaunch prepares a process that will start an enclave later (see above). After it, the
// process can still receive descriptors, duplicate them, clear their close-on-exec flag, execute
// a program, and start one with syscall.ForkExec and
// SysProcAttr{Cloneflags: CLONE_PARENT | SpawnNamespaceFlags} (PrepareSpawner); it can no longer
// open files, create sockets or other processes, or raise its privileges. It fails
// where Restrict would (no seccomp, an architecture without a policy).
func PrepareLaunch() error {
	launchMu.Lock()
	defer launchMu.Unlock()
	if launchPrepared {
		return errors.New("sandbox: PrepareLaunch already called in this process")
	}
	launchPrepared = true
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if len(seccompLaunchFilter) == 0 {
		return fmt.Errorf("sandbox: no seccomp policy for %s", runtime.GOARCH)
	}
	if !seccompSupported() {
		return errors.New("sandbox: seccomp filter mode not supported by this kernel")
	}
	// Not traceable by other processes of the sandbox's uid (it may hold capabilities in its
	// user namespace: PrepareSpawner).
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	// Nothing this process holds may reach the enclave but what it is passed later.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		if err := cloexecAll(); err != nil {
			return fmt.Errorf("sandbox: marking descriptors close-on-exec: %w", err)
		}
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("sandbox: setrlimit(RLIMIT_CORE, 0): %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: prctl(PR_SET_NO_NEW_PRIVS, 1): %w", err)
	}
	// Landlock now too, not only in the enclave's Restrict: the code an image runs before its
	// runtime's init (packages Go initialises first) may execve, which Launch must allow for
	// this process, and Landlock is what keeps that to the memfds it was given (files of the
	// kernel's internal mounts, which Landlock does not restrict) rather than any file.
	if err := applyLandlock(&Report{}, false); err != nil {
		return fmt.Errorf("sandbox: landlock: %w", err)
	}
	if err := loadFilter(seccompLaunchFilter, seccompLaunchFilterPidAt, unix.Getpid()); err != nil {
		return fmt.Errorf("sandbox: seccomp (launch stage): %w", err)
	}
	return nil
}

// cloexecAll sets close-on-exec on every descriptor above 2, for kernels without
// close_range(CLOSE_RANGE_CLOEXEC) (before 5.11).
func cloexecAll() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// finishLaunch is Restrict for a process executed by a prepared one (Options.Launched). The
// caller holds the OS thread.
func finishLaunch(opts Options, rep *Report) error {
	fillChecks(rep)
	mode, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	if err != nil || mode != 2 || !rep.NoNewPrivs || !rep.CoreLimitZero {
		return fmt.Errorf("%w: seccomp mode %d, no_new_privs=%v, core limit zero=%v", ErrNotLaunched, mode, rep.NoNewPrivs, rep.CoreLimitZero)
	}
	// exec makes a process dumpable again, unless it may not read its image (sim's are
	// execute-only): set it whatever the image.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	// A process started with CLONE_PARENT is the host's child, but the host could not ask for
	// this signal; a process the prepared one executed in place has it already (exec keeps it).
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: prctl(PR_SET_PDEATHSIG): %w", err)
	}
	if opts.SkipLandlock {
		rep.LandlockDegraded = true
		rep.Warnings = append(rep.Warnings, "landlock: skipped by Options.SkipLandlock")
	} else if err := applyLandlock(rep, true); err != nil {
		return fmt.Errorf("sandbox: landlock: %w", err)
	}
	if err := loadFilter(seccompFinishFilter, seccompFinishFilterPidAt, unix.Getpid()); err != nil {
		return fmt.Errorf("sandbox: seccomp (finish stage): %w", err)
	}
	// Launch and Finish together are the whole policy (seccomppolicy.TestStagesComposeToWhole).
	rep.Seccomp = true
	rep.SeccompAllowed = slices.Clone(seccompAllowed)
	return nil
}

// SpawnNamespaceFlags are the namespaces a spawner (a prestarted process that starts every
// enclave of its back-end) creates for each enclave it starts: all of the sandbox's but the user
// and network namespaces, which its enclaves share with it. The Launch stage of the seccomp
// policy allows clone(2) with these and seccomppolicy.SpawnCloneFlags, nothing else.
const SpawnNamespaceFlags = unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP

// PrepareSpawner prepares the calling goroutine's thread to start enclaves with
// syscall.ForkExec, SysProcAttr{Cloneflags: CLONE_PARENT | SpawnNamespaceFlags}: each the host's
// child, pid 1 of a pid namespace of its own, without capabilities. The caller holds
// CAP_SYS_ADMIN in its own user namespace as an ambient capability (sim's spawner is created
// so), which creating the namespaces needs, and runs as a uid other than 0 there.
//
// It locks the goroutine to its thread for good, makes the process non-dumpable first (every
// enclave runs as the same uid, and a process holding capabilities must not be traceable by
// them), and clears the thread's ambient capabilities: a child then loses, at its exec, the
// CAP_SYS_ADMIN the thread keeps, because a uid other than 0 keeps across execve only ambient
// capabilities (capabilities(7)). Only this thread may start enclaves.
func PrepareSpawner() error {
	runtime.LockOSThread() // never unlocked
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	if unix.Getuid() == 0 || unix.Geteuid() == 0 {
		return errors.New("sandbox: a spawner must not run as uid 0 (its children would keep capabilities)")
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("sandbox: clearing ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("sandbox: capget: %w", err)
	}
	if data[0].Effective&(1<<unix.CAP_SYS_ADMIN) == 0 {
		return errors.New("sandbox: a spawner needs CAP_SYS_ADMIN in its user namespace")
	}
	// Nothing but CAP_SYS_ADMIN: a capability the thread does not need is one a bug in the
	// spawner could use.
	keep := uint32(1 << unix.CAP_SYS_ADMIN)
	data[0] = unix.CapUserData{Effective: keep, Permitted: keep}
	data[1] = unix.CapUserData{}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("sandbox: capset: %w", err)
	}
	return nil
}
