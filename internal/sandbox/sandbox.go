package sandbox

// Options tunes Restrict. The zero value is the strictest configuration and is
// what the enclave runtime should use.
type Options struct {
	// SkipLandlock disables the Landlock layer entirely (for kernels where
	// Landlock is present but misbehaves). Seccomp, no_new_privs and the
	// other layers are still applied. Landlock already degrades on its own
	// (best effort) on kernels without it or with an older ABI, so this is
	// rarely needed.
	SkipLandlock bool

	// Launched says the process was executed by one that called PrepareLaunch: Restrict then
	// verifies what that set up and finishes the sandbox (not dumpable, Landlock, the Finish
	// stage of the seccomp policy) instead of applying all of it.
	Launched bool

	// noSeccomp is for this package's tests only: it lets a test prove that
	// the Landlock layer is effective on its own.
	noSeccomp bool
}

// Report says what Restrict actually applied.
type Report struct {
	NoNewPrivs    bool // PR_GET_NO_NEW_PRIVS == 1 after Restrict
	NotDumpable   bool // PR_GET_DUMPABLE == 0 after Restrict
	CoreLimitZero bool // RLIMIT_CORE soft and hard limits are 0

	// LandlockABI is the Landlock ABI version that was enforced (0 if none).
	LandlockABI int
	// LandlockDegraded is true when the kernel's Landlock ABI is older than
	// the newest one this package asks for, so some Landlock restrictions
	// are missing (Warnings says which), when Landlock is unavailable or
	// skipped, or when it could not be applied to every thread.
	LandlockDegraded bool
	// LandlockAllThreads is true when the Landlock domain was applied to
	// every thread of the process (see Warnings when it is not).
	LandlockAllThreads bool

	// Seccomp is true when the seccomp allowlist was installed on all threads.
	Seccomp bool
	// SeccompAllowed lists the allowed syscalls (argument-filtered ones are
	// suffixed with "*"), for logging.
	SeccompAllowed []string

	Warnings []string
}

// Feature is one isolation feature of this machine, as reported by Probe.
type Feature struct {
	Name      string
	Available bool
	Detail    string
}
