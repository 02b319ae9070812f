//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// landlockWantABI is the newest Landlock ABI this package requests
// (landlock.V11). On older kernels go-landlock degrades to what exists.
const landlockWantABI = 11

var (
	restrictMu   sync.Mutex
	restrictDone bool
)

// ErrAlreadyRestricted is returned by a second call to Restrict.
var ErrAlreadyRestricted = errors.New("sandbox: Restrict already called in this process")

// Restrict confines the calling process (all of its threads). It is meant to
// be called by the enclave runtime inside the sim child, as early as possible
// (from an init function), before any application code runs.
//
// On success every layer was applied. On error the returned Report (never nil)
// says which layers were applied before the failure; the caller should treat
// the process as NOT sandboxed and exit.
func Restrict(opts Options) (*Report, error) {
	restrictMu.Lock()
	defer restrictMu.Unlock()
	if restrictDone {
		return &Report{}, ErrAlreadyRestricted
	}
	restrictDone = true

	// Every per-thread step (no_new_privs before seccomp) must happen on
	// one OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	rep := &Report{}
	if opts.Launched {
		err := finishLaunch(opts, rep)
		fillChecks(rep)
		if err == nil && !rep.NotDumpable {
			err = fmt.Errorf("sandbox: verification failed: not_dumpable=%v", rep.NotDumpable)
		}
		return rep, err
	}

	// 1. No core dumps (process-wide).
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return rep, fmt.Errorf("sandbox: setrlimit(RLIMIT_CORE, 0): %w", err)
	}
	// 2. Not dumpable: no ptrace attach by same-uid processes, no core,
	// /proc/<pid> files owned by root (process-wide, on the mm).
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return rep, fmt.Errorf("sandbox: prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	// 3. no_new_privs on this thread; Landlock (psx/TSYNC) and seccomp
	// (TSYNC) propagate it to every thread.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return rep, fmt.Errorf("sandbox: prctl(PR_SET_NO_NEW_PRIVS, 1): %w", err)
	}

	// 4. Landlock: deny every handled filesystem right with no allowed path,
	// deny TCP (and, from ABI 10, UDP) bind/connect, scope abstract UNIX
	// sockets and signals to the sandbox domain.
	if opts.SkipLandlock {
		rep.LandlockDegraded = true
		rep.Warnings = append(rep.Warnings, "landlock: skipped by Options.SkipLandlock")
	} else {
		if err := applyLandlock(rep, false); err != nil {
			fillChecks(rep)
			return rep, fmt.Errorf("sandbox: landlock: %w", err)
		}
	}

	// 5. Seccomp allowlist on all threads (TSYNC). Last, because it forbids
	// the syscalls used by the steps above.
	if !opts.noSeccomp {
		names, err := loadSeccomp(unix.Getpid())
		if err != nil {
			fillChecks(rep)
			return rep, fmt.Errorf("sandbox: seccomp: %w", err)
		}
		rep.Seccomp = true
		rep.SeccompAllowed = names
	} else {
		rep.Warnings = append(rep.Warnings, "seccomp: skipped (test-only option)")
	}

	fillChecks(rep)
	if !rep.NoNewPrivs || !rep.NotDumpable || !rep.CoreLimitZero {
		return rep, fmt.Errorf("sandbox: verification failed: no_new_privs=%v not_dumpable=%v core_limit_zero=%v",
			rep.NoNewPrivs, rep.NotDumpable, rep.CoreLimitZero)
	}
	return rep, nil
}

// applyLandlock enforces the Landlock policy on every thread of the process.
//
// go-landlock does that with LANDLOCK_RESTRICT_SELF_TSYNC on ABI >= 8, and
// with libpsx before. libpsx's cgo implementation finds the process's threads
// in /proc/<getpid()>/task, which is wrong (and makes it spin forever) when
// the process lives in a pid namespace but /proc belongs to the host's: that
// is exactly the sim child started with ProcAttr. In that one case (cgo build,
// ABI < 8, foreign /proc) the ruleset is built by go-landlock and enforced on
// the calling thread only, and the report says so; seccomp (TSYNC) still
// covers every thread. Non-cgo builds use syscall.AllThreadsSyscall and are
// not affected.
//
// nnpEverywhere says no_new_privs is already set on every thread (a launched process: it was
// set before exec and is inherited by every thread created since). go-landlock would set it
// again on every thread, a second stop-the-world round before ABI 8 (~50 µs here), so in that
// case the ruleset is enforced with one all-threads system call.
func applyLandlock(rep *Report, nnpEverywhere bool) error {
	abi := landlockABI()
	if abi == 0 {
		rep.LandlockDegraded = true
		rep.Warnings = append(rep.Warnings, landlockGaps(0)...)
		return nil
	}
	cfg := landlock.V11.BestEffort()
	if nnpEverywhere && abi < 8 && !buildCgo {
		fd, flags, err := cfg.NewRulesetFD()
		if err != nil {
			return err
		}
		if fd >= 0 {
			defer unix.Close(fd)
			if err := llsys.AllThreadsLandlockRestrictSelf(fd, flags); err != nil {
				return fmt.Errorf("landlock_restrict_self: %w", err)
			}
		}
		rep.LandlockAllThreads = true
	} else if abi >= 8 || !buildCgo || procMatchesPidNS() {
		if err := cfg.Restrict(); err != nil {
			return err
		}
		rep.LandlockAllThreads = true
	} else {
		fd, flags, err := cfg.NewRulesetFD()
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// The caller holds runtime.LockOSThread.
		if err := llsys.LandlockRestrictSelf(fd, flags); err != nil {
			return err
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf(
			"landlock: enforced on the initialising thread only (cgo build, landlock ABI %d < 8, /proc is not this pid namespace's so libpsx cannot enumerate threads); seccomp still applies to all threads; build the enclave with CGO_ENABLED=0 or use a kernel with landlock ABI >= 8 for full coverage", abi))
	}
	rep.LandlockABI = min(abi, landlockWantABI)
	if abi < landlockWantABI || !rep.LandlockAllThreads {
		rep.LandlockDegraded = true
	}
	if abi < landlockWantABI {
		rep.Warnings = append(rep.Warnings, landlockGaps(abi)...)
	}
	return nil
}

// procMatchesPidNS reports whether /proc shows this process under the pid it
// has in its own pid namespace (false in a pid namespace without its own
// /proc mount, or without /proc at all).
func procMatchesPidNS() bool {
	self, err := os.Readlink("/proc/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
}

// fillChecks reads back the process state (these prctl/getrlimit reads stay
// allowed by the seccomp policy).
func fillChecks(rep *Report) {
	if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err == nil {
		rep.NoNewPrivs = v == 1
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err == nil {
		rep.NotDumpable = v == 0
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &rl); err == nil {
		rep.CoreLimitZero = rl.Cur == 0 && rl.Max == 0
	}
}

// landlockABI returns the usable Landlock ABI of the running kernel, with the
// same errata downgrade go-landlock applies (signal scoping bug: ABI 6+ without
// erratum 2 fixed is treated as 5). 0 means no Landlock.
func landlockABI() int {
	v, err := llsys.LandlockGetABIVersion()
	if err != nil || v < 0 {
		return 0
	}
	if v >= 6 {
		errata, err := llsys.LandlockGetErrata()
		if err != nil {
			errata = 0
		}
		if errata&0x2 == 0 {
			v = 5
		}
	}
	return v
}

// landlockGaps explains what an older Landlock ABI leaves unrestricted.
func landlockGaps(abi int) []string {
	if abi <= 0 {
		return []string{"landlock: not available on this kernel; filesystem and network confinement rely on seccomp and namespaces only"}
	}
	var w []string
	add := func(min int, what string) {
		if abi < min {
			w = append(w, fmt.Sprintf("landlock: ABI %d < %d: %s not restricted by landlock (seccomp still denies the syscalls)", abi, min, what))
		}
	}
	add(2, "file reparenting (refer)")
	add(3, "truncate")
	add(4, "TCP bind/connect")
	add(5, "device ioctl")
	add(6, "abstract UNIX socket and signal scoping")
	add(9, "pathname UNIX socket connect/sendmsg")
	add(10, "UDP bind/connect/sendto")
	return w
}
