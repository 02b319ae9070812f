package host_test

import (
	"context"
	"testing"
	"time"
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
