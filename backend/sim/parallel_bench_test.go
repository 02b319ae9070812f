//go:build linux

package sim_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/internal/benchtools/latency"
)

// BenchmarkCallParallel is many host goroutines calling one enclave at once (b.RunParallel,
// 16 goroutines per P): the throughput of concurrent 64-byte calls, which contend on both
// sides' write locks and exercise the hand-off of reading (design notes 9 and 17). It also
// reports the tail of the calls' latencies (p99-ns, p999-ns, max-ns; docs/benchmarks.md,
// "Session 7"). host.BenchmarkSwitchlessParallel is the same with both sides in one process.
func BenchmarkCallParallel(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []sim.Option
	}{{"socket", nil}, {"switchless", []sim.Option{sim.Switchless()}}} {
		b.Run(mode.name, func(b *testing.B) {
			e := loadBench(b, mode.opts...)
			defer destroy(b, e)
			in := make([]byte, 64)
			latency.RunParallel(b, 16, func() error {
				out, err := e.Call(context.Background(), "echo", in)
				if err == nil && len(out) != 64 {
					err = fmt.Errorf("echo returned %d bytes", len(out))
				}
				return err
			})
		})
	}
}
