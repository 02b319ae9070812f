// Command secure-grpc runs Asylo's secure gRPC example with mutual attestation: a server enclave
// serves the translator; two client enclaves call it. Both clients attest in the handshake, but
// the server's per-call ACL admits only the first client's measurement: the second gets
// PermissionDenied.
//
//	go run ./examples/secure-grpc
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/examples/internal/exampleutil"
	"github.com/asylo-go/asylo/examples/secure-grpc/internal/config"
	"github.com/asylo-go/asylo/host"
)

func main() {
	platformDir := flag.String("platform-dir", "", "sim platform state directory (default: the user's)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	server, cleanS, err := exampleutil.EnclaveBinary(ctx, "", "github.com/asylo-go/asylo/examples/secure-grpc/server")
	if err != nil {
		fail(err)
	}
	defer cleanS()
	client, cleanC, err := exampleutil.EnclaveBinary(ctx, "", "github.com/asylo-go/asylo/examples/secure-grpc/client")
	if err != nil {
		fail(err)
	}
	defer cleanC()
	dir := *platformDir
	if dir == "" {
		if dir, err = platform.DefaultDir(); err != nil {
			fail(err)
		}
	}
	if err := run(ctx, server, client, dir, os.Stdout); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "secure-grpc:", err)
	os.Exit(1)
}

func loopbackOnly(network, address string) error {
	if !strings.HasPrefix(address, "127.0.0.1:") {
		return errors.New("loopback only")
	}
	return nil
}

func run(ctx context.Context, serverPath, clientPath, platformDir string, out io.Writer) error {
	p, err := platform.Open(platformDir)
	if err != nil {
		return err
	}
	be := sim.New(sim.WithPlatform(p))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	load := func(path, name string, cfg []byte) (*host.Enclave, error) {
		return host.Load(ctx, host.LoadConfig{Path: path, Name: name, Debug: true, Backend: be, Logger: logger,
			Config: cfg, AllowListen: loopbackOnly, AllowDial: loopbackOnly})
	}
	// A second client binary: the same code with one byte appended, so another measurement.
	other := filepath.Join(filepath.Dir(clientPath), "other-client.enclave")
	b, err := os.ReadFile(clientPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(other, append(b, 0), 0o755); err != nil {
		return err
	}
	defer os.Remove(other)

	alice, err := load(clientPath, "alice", nil)
	if err != nil {
		return err
	}
	defer alice.Destroy(ctx, nil)
	mallory, err := load(other, "mallory", nil)
	if err != nil {
		return err
	}
	defer mallory.Destroy(ctx, nil)

	aliceM := alice.Identity().Measurement
	scfg, _ := json.Marshal(config.Server{Addr: "127.0.0.1:0", SimRootPEM: string(p.RootPEM()), AllowedClient: aliceM.String()})
	srv, err := load(serverPath, "server", scfg)
	if err != nil {
		return err
	}
	defer srv.Destroy(ctx, nil)
	addr, err := srv.EnterAndRun(ctx, nil)
	if err != nil {
		return err
	}
	serverM := srv.Identity().Measurement
	fmt.Fprintf(out, "server enclave %s listening on %s; only client %s may translate\n", serverM.String()[:16], addr, aliceM.String()[:16])
	for _, c := range []*host.Enclave{alice, mallory} {
		call, _ := json.Marshal(config.Call{Addr: string(addr), Word: "secret", SimRootPEM: string(p.RootPEM()), Server: serverM.String()})
		res, err := c.EnterAndRun(ctx, call)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
		m := c.Identity().Measurement
		fmt.Fprintf(out, "%-8s (%s): %s\n", c.Name(), m.String()[:16], res)
	}
	return nil
}
