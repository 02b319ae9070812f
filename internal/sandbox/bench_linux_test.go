//go:build linux

package sandbox

import (
	"os/exec"
	"sync"
	"syscall"
	"testing"
)

// BenchmarkStartChild measures starting and reaping a child (the test binary,
// which exits in its init function) with and without the sandbox's
// namespaces. Run with e.g. -bench StartChild -benchtime 30x.
func BenchmarkStartChild(b *testing.B) {
	full, _ := ProcAttr()
	noNet := *full
	noNet.Cloneflags &^= syscall.CLONE_NEWNET
	cases := []struct {
		name string
		mode string
		attr *syscall.SysProcAttr
	}{
		{"plain", "noop", nil},
		{"procattr", "noop", full},
		{"procattr-without-netns", "noop", &noNet},
		{"plain+Restrict", "noop-restrict", nil},
		{"procattr+Restrict", "noop-restrict", full},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				cmd := exec.Command(childBin, "-test.run=^$")
				cmd.Env = []string{envMode + "=" + c.mode}
				if c.attr != nil {
					a := *c.attr
					cmd.SysProcAttr = &a
				}
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProbeNamespaces measures the one-time namespace probe ProcAttr
// performs (normally cached).
func BenchmarkProbeNamespaces(b *testing.B) {
	for b.Loop() {
		nsOnce = sync.Once{}
		probeNamespaces()
	}
}
