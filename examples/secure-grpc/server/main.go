// Command server is the server enclave of the secure-grpc example: the translator on mutually
// attested gRPC. Every client must attest (handshake); only the client measurement named in the
// configuration may call Translate (per-call ACL, grpccreds.CheckPeer).
package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"google.golang.org/grpc"

	"github.com/asylo-go/asylo/atls"
	"github.com/asylo-go/asylo/atls/grpccreds"
	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/examples/grpc-server/translator"
	"github.com/asylo-go/asylo/examples/secure-grpc/internal/config"
	"github.com/asylo-go/asylo/policy"
	"github.com/asylo-go/asylo/verify"
)

type app struct {
	srv  *grpc.Server
	addr string
}

func (a *app) Initialize(ctx context.Context, raw []byte) error {
	var cfg config.Server
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	root, err := parseRoot(cfg.SimRootPEM)
	if err != nil {
		return err
	}
	allowed, err := hex.DecodeString(cfg.AllowedClient)
	if err != nil || len(allowed) != 32 {
		return errors.New("config: allowed_client must be a hex measurement")
	}
	kid := sha256.Sum256(root.RawSubjectPublicKeyInfo)
	// Handshake: any attested enclave on this platform. Call: only the allowed measurement.
	anyEnclave, err := policy.Compile(`claims.platform == "sim"`, policy.AcceptSimPlatform(kid), policy.AllowDebug(), policy.WithID("any-sim-enclave"))
	if err != nil {
		return err
	}
	acl, err := policy.ExactMeasurement(allowed, policy.AcceptSimPlatform(kid), policy.AllowDebug(), policy.WithID("translate-acl"))
	if err != nil {
		return err
	}
	peers, err := atls.NewVerifier(verify.Options{SimRoots: []*x509.Certificate{root}}, anyEnclave)
	if err != nil {
		return err
	}
	l, err := enclave.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return err
	}
	long := context.WithoutCancel(ctx)
	creds, err := grpccreds.NewServerCredentials(long, func(_ context.Context, ud []byte) ([]byte, error) {
		return enclave.Attest(long, ud)
	}, peers)
	if err != nil {
		l.Close()
		return err
	}
	a.srv = grpc.NewServer(grpc.Creds(creds), grpc.ForceServerCodec(translator.Codec{}))
	a.srv.RegisterService(&translator.ServiceDesc, &translator.Server{
		Authorize: func(ctx context.Context) error {
			_, err := grpccreds.CheckPeer(ctx, acl)
			return err
		},
	})
	go a.srv.Serve(l)
	a.addr = l.Addr().String()
	return nil
}

func parseRoot(p string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return nil, errors.New("config: sim_root_pem is not PEM")
	}
	return x509.ParseCertificate(b.Bytes)
}

func (a *app) Run(context.Context, []byte) ([]byte, error) { return []byte(a.addr), nil }

func (a *app) Finalize(context.Context, []byte) error {
	a.srv.Stop()
	return nil
}

func main() { enclave.Run(&app{}) }
