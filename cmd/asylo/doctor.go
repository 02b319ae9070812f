package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/asylo-go/asylo/backend/inprocess"
	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/internal/sandbox"
)

var doctorCmd = &command{
	name:    "doctor",
	args:    "[--json]",
	summary: "report which back-ends this machine can run",
	doc: `
Doctor reports, for each back-end, whether this machine can run it and why not. For sim it
lists each isolation feature of the sandbox (docs/sandbox.md) and whether the kernel provides
it: sim runs without some of them, with reduced isolation, but not without seccomp. The
hardware back-ends need their guest device.

Exit status: 0, even when some back-ends are unavailable; 1 if sim cannot run at all.`,
	setup: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print the report as JSON")
		return func(ctx context.Context, c *cli, args []string) error {
			if len(args) != 0 {
				return usagef("doctor", "takes no arguments, got %q", args)
			}
			rep := diagnose()
			if *asJSON {
				if err := printJSON(c.stdout, rep); err != nil {
					return err
				}
			} else {
				rep.print(c.stdout)
			}
			if !rep[0].Available {
				return errors.New("doctor: the sim back-end cannot run on this machine: " + rep[0].Reason)
			}
			return nil
		}
	},
}

// backendReport says whether this machine can run one back-end.
type backendReport struct {
	Name      string            `json:"name"`
	Available bool              `json:"available"`
	Reason    string            `json:"reason"`
	Features  []sandbox.Feature `json:"features,omitempty"`
}

type doctorReport []backendReport

// diagnose checks every back-end; sim comes first.
func diagnose() doctorReport {
	return doctorReport{
		diagnoseSim(),
		{Name: inprocess.Name, Available: true,
			Reason: "always available to Go tests (backend/inprocess); runs linked-in code with NO isolation"},
		diagnoseDevice("sev-snp", "/dev/sev-guest", "an AMD SEV-SNP guest"),
		diagnoseDevice("tdx", "/dev/tdx_guest", "an Intel TDX guest"),
		diagnoseDevice("nitro", "/dev/nsm", "an AWS Nitro Enclave"),
	}
}

func diagnoseSim() backendReport {
	r := backendReport{Name: sim.Name, Features: sandbox.Probe()}
	var missing []string
	for _, f := range r.Features {
		if f.Name == "seccomp" {
			r.Available = f.Available
		}
		if !f.Available {
			missing = append(missing, f.Name)
		}
	}
	switch {
	case runtime.GOOS != "linux":
		r.Available = false
		r.Reason = "runs enclaves as sandboxed Linux processes; this is " + runtime.GOOS + " (use the inprocess back-end here, or a Linux machine or VM)"
	case !r.Available:
		r.Reason = "seccomp is unavailable, and the enclave sandbox refuses to run without it"
	case len(missing) == 0:
		r.Reason = "sandboxed child processes with every isolation feature"
	default:
		r.Reason = fmt.Sprintf("sandboxed child processes, with reduced isolation (%d features unavailable)", len(missing))
	}
	return r
}

// diagnoseDevice reports a hardware back-end by the presence of its guest device. None can run
// enclaves yet (asylo run refuses them): only their evidence is verified.
func diagnoseDevice(name, dev, what string) backendReport {
	r := backendReport{Name: name}
	_, err := os.Stat(dev)
	switch {
	case err == nil:
		r.Reason = dev + " present: this machine is " + what + ", but launching enclaves on it is not built yet (its evidence is verified: asylo verify)"
	case errors.Is(err, os.ErrNotExist):
		r.Reason = dev + " absent: this machine is not " + what
	default:
		r.Reason = fmt.Sprintf("cannot check %s: %v", dev, err)
	}
	return r
}

func (rep doctorReport) print(w io.Writer) {
	for _, b := range rep {
		status := "unavailable"
		if b.Available {
			status = "available"
		}
		fmt.Fprintf(w, "%-10s %-12s %s\n", b.Name, status, b.Reason)
		for _, f := range b.Features {
			mark := "no "
			if f.Available {
				mark = "yes"
			}
			fmt.Fprintf(w, "    %s  %-42s %s\n", mark, f.Name, f.Detail)
		}
	}
}
