//go:build linux

package sim_test

import (
	"context"
	"testing"
	"time"

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
			var lat latency.Recorder
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					if out, err := e.Call(context.Background(), "echo", in); err != nil || len(out) != 64 {
						b.Errorf("echo: %d bytes, %v", len(out), err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				lat.Add(mine)
			})
			b.StopTimer()
			lat.Report(b)
		})
	}
}
