//go:build linux

package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/host"
)

// A call that computes for a second without a system call, on an enclave with one P, must not
// hold up a second call for that second: the Go runtime's monitor (sysmon) preempts it, and only
// then can the goroutine that reads the attention channel run and hand reading off. The monitor
// sleeps whenever every P is idle and ordinary system calls wake it; channel I/O that skipped
// that wake-up (raw system calls, tried in session 4: docs/benchmarks.md) would leave the call
// unpreempted. Both when the compute-bound call is the first after a quiet spell and when it
// follows a burst of calls.
func TestComputeBoundCallIsPreempted(t *testing.T) {
	path := testEnclave(t)
	for _, mode := range []struct {
		name string
		opts []sim.Option
	}{{"socket", nil}, {"switchless", []sim.Option{sim.Switchless()}}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			e, err := host.Load(ctx, host.LoadConfig{
				Path: path, Backend: sim.New(mode.opts...), Debug: true, Logger: quiet,
				Env: []string{"GOMAXPROCS=1"},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Destroy(ctx, nil)
			for _, before := range []string{"quiet", "burst"} {
				if before == "quiet" {
					time.Sleep(300 * time.Millisecond)
				} else {
					for range 200 {
						if _, err := e.Call(ctx, "echo", nil); err != nil {
							t.Fatal(err)
						}
					}
				}
				spun := make(chan error, 1)
				go func() {
					_, err := e.Call(ctx, "spin", []byte("1s"))
					spun <- err
				}()
				time.Sleep(50 * time.Millisecond)
				start := time.Now()
				if _, err := e.Call(ctx, "echo", nil); err != nil {
					t.Fatal(err)
				}
				if d := time.Since(start); d > 400*time.Millisecond {
					t.Errorf("after %s: a call behind a compute-bound one took %v", before, d)
				}
				if err := <-spun; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
