package enclave

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/asylo-go/asylo/internal/sandbox"
	"github.com/asylo-go/asylo/internal/wire"
)

// init sandboxes a process started by the sim back-end before the code of every package that
// imports this one runs. Go initialises other packages by the order of their import paths, so
// some of the application's may be initialised before this one: in an enclave that sim started
// directly (sim.Direct) they run unconfined; in one its prestarted process started (the default)
// they run under the first stage of the seccomp policy, installed before the image started
// (docs/sandbox.md, "Prestarted processes"). A failure to sandbox is fatal: an enclave that could
// open files on sim would not be portable to hardware back-ends.
func init() {
	if v, ok := os.LookupEnv(wire.EnvImage); ok {
		if fd, err := strconv.Atoi(v); err == nil && fd > 2 {
			syscall.Close(fd)
		}
	}
	var opts sandbox.Options
	switch os.Getenv(wire.EnvSandbox) {
	case wire.SandboxWhole:
		// Only what the launch contract names may cross into the sandbox.
		var keep []int
		for _, name := range []string{wire.EnvChannel, wire.EnvSharedMemory, wire.EnvConnPass, wire.EnvAttention} {
			if fd, err := strconv.Atoi(os.Getenv(name)); err == nil {
				keep = append(keep, fd)
			}
		}
		closed, err := sandbox.CloseInherited(keep...)
		if err != nil {
			fmt.Fprintln(os.Stderr, "asylo enclave: cannot close inherited descriptors:", err)
			os.Exit(70)
		}
		if len(closed) > 0 {
			sandboxWarnings = append(sandboxWarnings, fmt.Sprintf("closed descriptors %v inherited from the host that the launch contract does not name", closed))
		}
	case wire.SandboxLaunched:
		// Started by a prestarted process, which left open only what the launch contract
		// names and installed the first stage of the seccomp policy: Restrict checks that and
		// finishes.
		opts.Launched = true
	default:
		return
	}
	rep, err := sandbox.Restrict(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "asylo enclave: cannot sandbox the process:", err)
		os.Exit(70)
	}
	// Reported to the host's log once the channel is up (see serveCall).
	sandboxWarnings = append(rep.Warnings, sandboxWarnings...)
}

// sandboxWarnings are what Restrict could not fully apply on this machine. Set once, by init.
var sandboxWarnings []string
