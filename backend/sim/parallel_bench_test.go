//go:build linux

package sim_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asylo-go/asylo/backend/sim"
)

// BenchmarkCallParallel is many host goroutines calling one enclave at once (b.RunParallel,
// 16 goroutines per P): the throughput of concurrent 64-byte calls, which contend on both
// sides' write locks and exercise the hand-off of reading (design notes 9 and 17). It also
// reports the 99th percentile and the longest of the calls' latencies (p99-ns, max-ns): a lock
// or hand-off that starves some callers shows there, not in the throughput.
func BenchmarkCallParallel(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []sim.Option
	}{{"socket", nil}, {"switchless", []sim.Option{sim.Switchless()}}} {
		b.Run(mode.name, func(b *testing.B) {
			e := loadBench(b, mode.opts...)
			defer destroy(b, e)
			in := make([]byte, 64)
			var mu sync.Mutex
			var lat []time.Duration
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
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			if len(lat) > 0 {
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
				b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
			}
		})
	}
}
