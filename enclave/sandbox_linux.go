package enclave

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/asylo-go/asylo/internal/sandbox"
	"github.com/asylo-go/asylo/internal/wire"
)

// init sandboxes a process started by the sim back-end before any code of the application's own
// packages runs (they are initialised after this package). A failure to sandbox is fatal: an
// enclave that could open files on sim would not be portable to hardware back-ends.
func init() {
	if v, ok := os.LookupEnv(wire.EnvImage); ok {
		if fd, err := strconv.Atoi(v); err == nil && fd > 2 {
			syscall.Close(fd)
		}
	}
	if os.Getenv(wire.EnvSandbox) != "1" {
		return
	}
	if _, err := sandbox.Restrict(sandbox.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "asylo enclave: cannot sandbox the process:", err)
		os.Exit(70)
	}
}
