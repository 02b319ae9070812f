// Package latency collects the latencies of operations that parallel benchmarks time one by one,
// and reports their tail: under contention a lock or hand-off that starves some callers shows
// in the 99th percentile and the longest operation, not in the throughput (ns/op).
package latency

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Recorder gathers latencies from many goroutines. The zero value is ready to use.
type Recorder struct {
	mu  sync.Mutex
	all []time.Duration
}

// Add records one goroutine's latencies (collected without locking, then added once).
func (r *Recorder) Add(d []time.Duration) {
	r.mu.Lock()
	r.all = append(r.all, d...)
	r.mu.Unlock()
}

// Quantile returns the latency below which the fraction q of those recorded lie, or 0 if none
// were.
func (r *Recorder) Quantile(q float64) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.all) == 0 {
		return 0
	}
	slices.Sort(r.all)
	i := min(int(q*float64(len(r.all))), len(r.all)-1)
	return r.all[i]
}

// Report reports the 99th and 99.9th percentiles and the longest latency as the benchmark's
// p99-ns, p999-ns and max-ns.
func (r *Recorder) Report(b *testing.B) {
	b.ReportMetric(float64(r.Quantile(0.99).Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(r.Quantile(0.999).Nanoseconds()), "p999-ns")
	b.ReportMetric(float64(r.Quantile(1).Nanoseconds()), "max-ns")
}

// RunParallel runs op in b.RunParallel with parallelism goroutines per P (b.SetParallelism),
// timing each call, and reports the tail of the latencies (Report). An error from op fails the
// benchmark and stops that goroutine.
func RunParallel(b *testing.B, parallelism int, op func() error) {
	var r Recorder
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := op(); err != nil {
				b.Error(err)
				break
			}
			mine = append(mine, time.Since(t0))
		}
		r.Add(mine)
	})
	b.StopTimer()
	r.Report(b)
}
