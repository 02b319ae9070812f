package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/asylo-go/asylo/internal/benchtools/latency"
)

// BenchmarkSwitchlessCPU is a 64-byte echo Call over shared memory with both sides in this
// process (see shmBackend). It is not a latency figure (BenchmarkSwitchless64 in backend/sim is):
// it measures the SDK's own work and allocations per call.
func BenchmarkSwitchlessCPU(b *testing.B) {
	e := loadShmEcho(b)
	in := make([]byte, 64)
	deadline, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	// "deadline": a context that can end costs the call an interruptible write and read.
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"background", context.Background()}, {"deadline", deadline}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Call(c.ctx, "echo", in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSwitchlessParallel is sim's BenchmarkCallParallel/switchless with both sides in this
// process: 16 callers per P, and the tail of their latencies. It shows the same kind of tail
// (calls of ~10 ms among ~10⁵; docs/benchmarks.md, "Session 7") without a second process, which
// makes it the cheap place to study it (an execution trace covers both sides).
func BenchmarkSwitchlessParallel(b *testing.B) {
	e := loadShmEcho(b)
	in := make([]byte, 64)
	latency.RunParallel(b, 16, func() error {
		_, err := e.Call(context.Background(), "echo", in)
		return err
	})
}
