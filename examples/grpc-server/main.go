// Command grpc-server runs Asylo's gRPC server example: the translator service inside an enclave
// on the sim back-end, and a client that verifies, during the TLS handshake, that it reached that
// very enclave (its measurement, on this sim platform) before it sends a word.
//
//	go run ./examples/grpc-server -word hello
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/asylo-go/asylo/atls"
	"github.com/asylo-go/asylo/atls/grpccreds"
	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/examples/grpc-server/translator"
	"github.com/asylo-go/asylo/examples/internal/exampleutil"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/policy"
	"github.com/asylo-go/asylo/verify"
)

func main() {
	word := flag.String("word", "asylo", "word to translate")
	enclavePath := flag.String("enclave", "", "prebuilt enclave (default: build it from source)")
	platformDir := flag.String("platform-dir", "", "sim platform state directory (default: the user's)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	path, cleanup, err := exampleutil.EnclaveBinary(ctx, *enclavePath, "github.com/asylo-go/asylo/examples/grpc-server/enclave")
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpc-server:", err)
		os.Exit(1)
	}
	defer cleanup()
	dir := *platformDir
	if dir == "" {
		if dir, err = platform.DefaultDir(); err != nil {
			fmt.Fprintln(os.Stderr, "grpc-server:", err)
			os.Exit(1)
		}
	}
	if err := run(ctx, path, dir, []string{*word}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "grpc-server:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, path, platformDir string, words []string, out io.Writer) error {
	p, err := platform.Open(platformDir)
	if err != nil {
		return err
	}
	e, err := host.Load(ctx, host.LoadConfig{
		Path: path, Name: "translator", Debug: true, // the example enclave is not signed
		Backend: sim.New(sim.WithPlatform(p)),
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
		AllowListen: func(network, address string) error {
			if !strings.HasPrefix(address, "127.0.0.1:") {
				return errors.New("this host lets enclaves listen on loopback only")
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	defer e.Destroy(ctx, nil)
	addr, err := e.EnterAndRun(ctx, nil)
	if err != nil {
		return err
	}

	// The client's policy: exactly this enclave's measurement, on this sim platform. (A real
	// client would take the measurement from a reproducible build, and the root from
	// `asylo platform export-root`.)
	m := e.Identity().Measurement
	pol, err := policy.ExactMeasurement(m[:], policy.AcceptSimPlatform(p.KeyID()), policy.AllowDebug())
	if err != nil {
		return err
	}
	v, err := atls.NewVerifier(verify.Options{SimRoots: []*x509.Certificate{p.Root()}}, pol)
	if err != nil {
		return err
	}
	creds, err := grpccreds.NewClientCredentials(ctx, v)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(string(addr), grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, w := range words {
		var pr grpcPeer
		t, err := translator.Translate(ctx, conn, w, pr.opt())
		if err != nil {
			return fmt.Errorf("translating %q: %w", w, err)
		}
		fmt.Fprintf(out, "%s -> %s  (answered by enclave %x on %s)\n", w, t, pr.claims().Measurement, pr.claims().Platform)
	}
	return nil
}

// grpcPeer captures the server's verified claims from a call.
type grpcPeer struct{ p peer.Peer }

func (g *grpcPeer) opt() grpc.CallOption { return grpc.Peer(&g.p) }

func (g *grpcPeer) claims() *attest.Claims {
	if ai, ok := g.p.AuthInfo.(*grpccreds.AuthInfo); ok && ai.Claims != nil {
		return ai.Claims
	}
	return &attest.Claims{}
}
