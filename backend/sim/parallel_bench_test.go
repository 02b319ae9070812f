//go:build linux

package sim_test

import (
	"context"
	"testing"

	"github.com/asylo-go/asylo/backend/sim"
)

// BenchmarkCallParallel is many host goroutines calling one enclave at once (b.RunParallel,
// 16 goroutines per P): the throughput of concurrent 64-byte calls, which contend on both
// sides' write locks and exercise the hand-off of reading (design notes 9 and 17).
func BenchmarkCallParallel(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []sim.Option
	}{{"socket", nil}, {"switchless", []sim.Option{sim.Switchless()}}} {
		b.Run(mode.name, func(b *testing.B) {
			e := loadBench(b, mode.opts...)
			defer destroy(b, e)
			in := make([]byte, 64)
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if out, err := e.Call(context.Background(), "echo", in); err != nil || len(out) != 64 {
						b.Errorf("echo: %d bytes, %v", len(out), err)
						return
					}
				}
			})
		})
	}
}
