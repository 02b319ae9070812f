package host_test

import (
	"context"
	"io"
	"testing"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/benchtools/instant"
	"github.com/asylo-go/asylo/internal/wire"
)

// instantBackend's enclave answers every request the moment it is written
// (internal/benchtools/instant): CALLs with their input, everything else with an empty OK.
type instantBackend struct{}

func (instantBackend) Name() string { return "instant" }

func (instantBackend) Start(context.Context, backend.Spec) (backend.Instance, error) {
	ok := wire.AppendStatus(nil, wire.StatusOK)
	p := instant.New(func(f []byte) [][]byte {
		h, _, err := wire.ParseHeader(f, wire.HardMaxBody)
		if err != nil || h.ID == 0 {
			return nil
		}
		out := []byte(nil)
		if h.Kind == wire.KindCall {
			r, err := wire.ParseRequest(h.Kind, f[wire.HeaderSize:])
			if err != nil {
				return nil
			}
			out = r.Input
		}
		return [][]byte{instant.Frame(wire.KindResult, h.ID, ok, out)}
	}, instant.Frame(wire.KindHello, 0, wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxBody: wire.DefaultMaxBody})))
	return &instantInstance{p: p, done: make(chan struct{})}, nil
}

type instantInstance struct {
	p    *instant.Pipe
	done chan struct{}
}

func (i *instantInstance) Channel() io.ReadWriteCloser { return i.p }
func (i *instantInstance) Identity() identity.Identity {
	return identity.Identity{Backend: "instant", Debug: true}
}
func (i *instantInstance) Wait() error           { <-i.done; return nil }
func (i *instantInstance) Done() <-chan struct{} { return i.done }
func (i *instantInstance) Kill() error           { i.p.Close(); close(i.done); return nil }

// BenchmarkCallOverhead is the host's own work for one 64-byte Call over a channel that
// behaves like a socket (read deadlines: the caller reads its own result) and whose enclave
// answers at once. No transport and no second party, so ns/op is the host's CPU time per call
// (BenchmarkServeCall in package enclave is the other side).
func BenchmarkCallOverhead(b *testing.B) {
	e, err := host.Load(context.Background(), host.LoadConfig{Name: "instant", Backend: instantBackend{}, Debug: true})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Destroy(context.Background(), nil)
	in := make([]byte, 64)
	for range 1000 { // past the read loop's first step aside
		if _, err := e.Call(context.Background(), "echo", in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Call(context.Background(), "echo", in); err != nil {
			b.Fatal(err)
		}
	}
}
