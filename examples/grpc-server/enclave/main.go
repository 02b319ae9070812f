// Command enclave is the trusted half of the grpc-server example: Asylo's translator service,
// served over gRPC from inside the enclave on attested TLS. The enclave has no sockets of its own:
// the host listens and hands accepted connections in (enclave.Listen); TLS ends inside the
// enclave, so the host relays only ciphertext.
package main

import (
	"context"
	"errors"

	"google.golang.org/grpc"

	"github.com/asylo-go/asylo/atls/grpccreds"
	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/examples/grpc-server/translator"
)

type app struct {
	srv  *grpc.Server
	addr string
}

// Initialize listens on the address in config (default 127.0.0.1:0) and starts serving.
func (a *app) Initialize(ctx context.Context, config []byte) error {
	addr := "127.0.0.1:0"
	if len(config) > 0 {
		addr = string(config)
	}
	l, err := enclave.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	// The server attests whenever it (re)issues its certificate, long after this call returns:
	// keep the enclave context without its cancellation.
	long := context.WithoutCancel(ctx)
	creds, err := grpccreds.NewServerCredentials(long, func(ctx context.Context, userData []byte) ([]byte, error) {
		return enclave.Attest(long, userData)
	}, nil)
	if err != nil {
		l.Close()
		return err
	}
	a.srv = grpc.NewServer(grpc.Creds(creds), grpc.ForceServerCodec(translator.Codec{}))
	a.srv.RegisterService(&translator.ServiceDesc, &translator.Server{})
	go a.srv.Serve(l)
	a.addr = l.Addr().String()
	enclave.Logger(ctx).Info("translator listening", "addr", a.addr)
	return nil
}

// Run returns the address the service listens on.
func (a *app) Run(ctx context.Context, _ []byte) ([]byte, error) {
	if a.addr == "" {
		return nil, errors.New("not serving")
	}
	return []byte(a.addr), nil
}

func (a *app) Finalize(ctx context.Context, _ []byte) error {
	a.srv.Stop()
	return nil
}

func main() { enclave.Run(&app{}) }
