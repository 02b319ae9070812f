package enclave_test

import (
	"context"
	"errors"

	"github.com/asylo-go/asylo/enclave"
)

type counter struct{ n int }

func (c *counter) Initialize(ctx context.Context, config []byte) error { return nil }
func (c *counter) Run(ctx context.Context, input []byte) ([]byte, error) {
	c.n++
	return input, nil
}
func (c *counter) Finalize(ctx context.Context, final []byte) error { return nil }

// An enclave program's main: an Application plus named and typed handlers.
func ExampleRun() {
	type sum struct{ A, B int }
	enclave.Run(&counter{},
		enclave.Handle("echo", func(ctx context.Context, in []byte) ([]byte, error) {
			if len(in) > 1024 {
				return nil, errors.Join(enclave.ErrInvalidArgument, errors.New("input too long"))
			}
			enclave.Logger(ctx).Info("echo", "bytes", len(in))
			return in, nil
		}),
		enclave.HandleJSON("add", func(ctx context.Context, s sum) (int, error) { return s.A + s.B, nil }),
		enclave.MaxConcurrentCalls(64),
	)
}

// Evidence that binds a verifier's nonce, for a remote party to check (attest/sim, attest/nitro, ...).
func ExampleAttest() {
	handler := func(ctx context.Context, nonce []byte) ([]byte, error) {
		return enclave.Attest(ctx, nonce)
	}
	enclave.Run(&counter{}, enclave.Handle("attest", handler))
}
