package enclave_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/internal/benchtools/instant"
	"github.com/asylo-go/asylo/internal/wire"
)

// BenchmarkServeCall is the enclave runtime's own work for one 64-byte CALL: reading the frame,
// dispatching it, running an echo handler and writing the RESULT, over a channel whose host
// answers each RESULT with the next CALL at once (internal/benchtools/instant). No transport
// and nothing to wait for, so ns/op is CPU time, and steady enough to weigh small changes that
// the round-trip benchmarks in backend/sim cannot resolve through this machine's noise.
func BenchmarkServeCall(b *testing.B) {
	var (
		call    = instant.Frame(wire.KindCall, 0, wire.AppendRequestHeader(nil, wire.KindCall, 0, "echo"), make([]byte, 64))
		left    int
		done    = make(chan struct{}, 1)
		started = make(chan struct{}, 1)
	)
	next := func(id uint64) []byte {
		binary.LittleEndian.PutUint64(call[8:16], id)
		return call
	}
	p := instant.New(func(f []byte) [][]byte {
		h, _, err := wire.ParseHeader(f, wire.HardMaxBody)
		if err != nil {
			b.Error(err)
			return nil
		}
		switch h.Kind {
		case wire.KindHello:
			return [][]byte{instant.Frame(wire.KindInit, 1, wire.AppendInit(nil, wire.InitParams{Name: "bench"}))}
		case wire.KindResult:
			if st, _, _ := wire.ParseResult(h.Kind, f[wire.HeaderSize:]); st != wire.StatusOK {
				b.Errorf("call %d: status %v", h.ID, st)
			}
			if h.ID == 1 {
				started <- struct{}{}
				return nil
			}
			if left--; left > 0 {
				return [][]byte{next(h.ID + 1)}
			}
			done <- struct{}{}
		}
		return nil
	})
	defer p.Close()
	go enclave.Serve(context.Background(), p, nopApp{},
		enclave.Handle("echo", func(ctx context.Context, in []byte) ([]byte, error) { return in, nil }))
	<-started
	id := uint64(1)
	b.ReportAllocs()
	b.ResetTimer()
	left = b.N
	p.Push(next(id + 1))
	<-done
}
