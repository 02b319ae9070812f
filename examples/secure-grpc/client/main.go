// Command client is a client enclave of the secure-grpc example: it dials the server through the
// host (enclave.Dial), attests itself in the TLS handshake, verifies the server's measurement, and
// calls Translate.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/asylo-go/asylo/atls"
	"github.com/asylo-go/asylo/atls/grpccreds"
	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/examples/grpc-server/translator"
	"github.com/asylo-go/asylo/examples/secure-grpc/internal/config"
	"github.com/asylo-go/asylo/policy"
	"github.com/asylo-go/asylo/verify"
)

type app struct{}

func (app) Initialize(context.Context, []byte) error { return nil }
func (app) Finalize(context.Context, []byte) error   { return nil }

// Run takes a config.Call and returns the translation, or "error: <gRPC code>: <message>".
func (app) Run(ctx context.Context, raw []byte) ([]byte, error) {
	var c config.Call
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", enclave.ErrInvalidArgument, err)
	}
	b, _ := pem.Decode([]byte(c.SimRootPEM))
	if b == nil {
		return nil, fmt.Errorf("%w: sim_root_pem", enclave.ErrInvalidArgument)
	}
	root, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, err
	}
	server, err := hex.DecodeString(c.Server)
	if err != nil || len(server) != 32 {
		return nil, fmt.Errorf("%w: server measurement", enclave.ErrInvalidArgument)
	}
	pol, err := policy.ExactMeasurement(server, policy.AcceptSimPlatform(sha256.Sum256(root.RawSubjectPublicKeyInfo)), policy.AllowDebug())
	if err != nil {
		return nil, err
	}
	v, err := atls.NewVerifier(verify.Options{SimRoots: []*x509.Certificate{root}}, pol)
	if err != nil {
		return nil, err
	}
	long := context.WithoutCancel(ctx)
	creds, err := grpccreds.NewClientCredentials(ctx, v, atls.WithAttester(func(_ context.Context, ud []byte) ([]byte, error) {
		return enclave.Attest(long, ud)
	}))
	if err != nil {
		return nil, err
	}
	// "passthrough": no name resolution inside the enclave; the host dials.
	conn, err := grpc.NewClient("passthrough:///"+c.Addr, grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return enclave.Dial(long, "tcp", addr)
		}))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	t, err := translator.Translate(ctx, conn, c.Word)
	if err != nil {
		if s, ok := status.FromError(err); ok {
			return []byte(fmt.Sprintf("error: %s: %s", s.Code(), s.Message())), nil
		}
		return nil, err
	}
	return []byte(t), nil
}

func main() { enclave.Run(app{}) }
