// Package inprocess is the back-end that runs enclave code on goroutines of the host process.
//
// It gives NO isolation: the "enclave" shares memory, files and sockets with the host, and its
// identity is a debug identity with no measurement. It exists so that enclave applications can be
// unit-tested and debugged with ordinary Go tools; the channel still carries the real protocol of
// docs/wire.md, so calls, errors, panics and lifecycle behave as on sim.
package inprocess

import (
	"context"
	"io"
	"net"
	"sync"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/identity"
)

// Name is the back-end's name.
const Name = "inprocess"

// Backend runs one Application, linked into the host, per Start.
type Backend struct {
	app  func() enclave.Application
	opts []enclave.Option
}

// New returns a back-end that starts a fresh Application from newApp on each Start, with the
// runtime options opts (handlers and limits, as the enclave's main would pass to enclave.Run).
func New(newApp func() enclave.Application, opts ...enclave.Option) *Backend {
	return &Backend{app: newApp, opts: opts}
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return Name }

// Start implements backend.Backend. Path, Args, Env and the standard streams of spec are ignored:
// the code is already linked in.
func (b *Backend) Start(ctx context.Context, spec backend.Spec) (backend.Instance, error) {
	hostEnd, enclaveEnd := net.Pipe()
	in := &instance{ch: hostEnd, enclaveEnd: enclaveEnd, done: make(chan struct{})}
	go func() {
		err := enclave.Serve(context.Background(), enclaveEnd, b.app(), b.opts...)
		if err != nil {
			in.err = &backend.ExitError{Code: 1, Err: err}
		}
		close(in.done)
	}()
	return in, nil
}

type instance struct {
	ch, enclaveEnd net.Conn
	done           chan struct{}
	err            error
	killOnce       sync.Once
}

func (i *instance) Channel() io.ReadWriteCloser { return i.ch }

func (i *instance) Identity() identity.Identity {
	return identity.Identity{Backend: Name, Debug: true}
}

func (i *instance) Wait() error {
	<-i.done
	return i.err
}

func (i *instance) Done() <-chan struct{} { return i.done }

// Kill ends the enclave's connection; its runtime stops serving. Goroutines the application
// started itself cannot be stopped from outside: another reason this back-end is for tests only.
func (i *instance) Kill() error {
	i.killOnce.Do(func() { i.enclaveEnd.Close() })
	return nil
}
