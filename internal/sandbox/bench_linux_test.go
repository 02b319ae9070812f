//go:build linux

package sandbox

import (
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// BenchmarkStartChild measures starting and reaping a child (the test binary,
// which exits in its init function) with and without the sandbox's
// namespaces: ProcAttr's, and Start's (the same as ProcAttr's unless the host is root).
// Run with e.g. -bench StartChild -benchtime 30x.
func BenchmarkStartChild(b *testing.B) {
	full, _ := ProcAttr()
	noNet := *full
	noNet.Cloneflags &^= syscall.CLONE_NEWNET
	cases := []struct {
		name  string
		mode  string
		attr  *syscall.SysProcAttr
		start bool // with Start
	}{
		{"plain", "noop", nil, false},
		{"procattr", "noop", full, false},
		{"procattr-without-netns", "noop", &noNet, false},
		{"start", "noop", nil, true},
		{"plain+Restrict", "noop-restrict", nil, false},
		{"procattr+Restrict", "noop-restrict", full, false},
		{"start+Restrict", "noop-restrict", nil, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				runChild(b, c.mode, c.attr, c.start)
			}
		})
	}
}

// runChild starts the test binary as a child in mode (with Start, or with a copy of attr) and
// waits for it.
func runChild(b *testing.B, mode string, attr *syscall.SysProcAttr, start bool) {
	cmd := exec.Command(childBin, "-test.run=^$")
	cmd.Env = []string{envMode + "=" + mode}
	var err error
	if start {
		_, err = Start(cmd)
	} else {
		if attr != nil {
			a := *attr
			cmd.SysProcAttr = &a
		}
		err = cmd.Start()
	}
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStartChildBigHost is StartChild's procattr and start cases in a host that has touched
// 0, 512 MiB or 2 GiB of heap: without vfork (ProcAttr's user namespace) a start copies the
// host's page tables, so it costs more the more memory the host uses.
func BenchmarkStartChildBigHost(b *testing.B) {
	var ballast []byte
	for _, mib := range []int{0, 512, 2048} {
		ballast = make([]byte, mib<<20)
		for i := 0; i < len(ballast); i += 4096 {
			ballast[i] = 1
		}
		attr, _ := ProcAttr()
		for _, mode := range []string{"procattr", "start"} {
			b.Run(mode+"-"+strconv.Itoa(mib)+"MiB", func(b *testing.B) {
				for b.Loop() {
					runChild(b, "noop", attr, mode == "start")
				}
			})
		}
	}
	runtime.KeepAlive(ballast)
}

// BenchmarkProbeNamespaces measures the one-time namespace probe ProcAttr
// performs (normally cached).
func BenchmarkProbeNamespaces(b *testing.B) {
	for b.Loop() {
		nsOnce = sync.Once{}
		probeNamespaces()
	}
}

// BenchmarkSyscall measures what the seccomp filters add to an allowed system call (getpid):
// none, the policy in one program (a directly started enclave), and its two stages (an enclave
// executed by a prestarted process). Each op starts a child that times 21 rounds of 20,000 calls
// and reports the median round; "ns/call" is the median over the ops.
func BenchmarkSyscall(b *testing.B) {
	for _, mode := range []string{"none", "whole", "staged"} {
		b.Run(mode, func(b *testing.B) {
			var per []float64
			for b.Loop() {
				cmd := exec.Command(childBin, "-test.run=^$")
				cmd.Env = []string{envMode + "=syscalls-" + mode}
				out, err := cmd.Output()
				if err != nil {
					b.Fatal(err)
				}
				v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
				if err != nil {
					b.Fatalf("child printed %q", out)
				}
				per = append(per, v)
			}
			slices.Sort(per)
			b.ReportMetric(per[len(per)/2], "ns/call")
		})
	}
}
