//go:build linux && !amd64 && !arm64

package sandbox

import "golang.org/x/sys/unix"

// No seccomp policy is generated for this architecture (seccomppolicy.Arches): Restrict and
// PrepareLaunch fail rather than run an enclave without its system-call allowlist.
var (
	seccompFilter            []unix.SockFilter
	seccompFilterPidAt       []int
	seccompAllowed           []string
	seccompLaunchFilter      []unix.SockFilter
	seccompFinishFilter      []unix.SockFilter
	seccompFinishFilterPidAt []int
)
