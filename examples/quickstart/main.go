// Command quickstart builds the quickstart enclave, signs it with a fresh signer key, loads the
// signed enclave on the sim back-end, and has it encrypt and decrypt a message with a key that
// never leaves the enclave.
//
//	go run ./examples/quickstart -message "Hello, enclave"
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"github.com/asylo-go/asylo/examples/internal/exampleutil"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/identity/signing"
)

func main() {
	message := flag.String("message", "Asylo: a safe place for your secrets", "message to encrypt")
	enclavePath := flag.String("enclave", "", "prebuilt quickstart enclave (default: build it from source)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	path, cleanup, err := exampleutil.EnclaveBinary(ctx, *enclavePath, "github.com/asylo-go/asylo/examples/quickstart/enclave")
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
	defer cleanup()
	if err := run(ctx, path, *message, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, path, message string, out io.Writer) error {
	// 1. Sign the enclave, as `asylo keygen` and `asylo sign` would: the manifest beside the
	// binary vouches for its measurement, product and security version.
	key, err := signing.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	m, err := identity.MeasureFile(path)
	if err != nil {
		return err
	}
	mf, err := signing.Sign(key, m, 1, 1, false)
	if err != nil {
		return err
	}
	b, err := mf.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(signing.ManifestPath(path), b, 0o644); err != nil {
		return err
	}

	// 2. Load it. Not in debug mode: the host checks the signature and the measurement.
	e, err := host.Load(ctx, host.LoadConfig{Path: path, Name: "quickstart", Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	defer e.Destroy(ctx, nil)
	id := e.Identity()
	fmt.Fprintf(out, "enclave loaded on %s\n  measurement %s\n  signer      %s\n  product %d, svn %d, debug %v\n",
		id.Backend, id.Measurement, id.SignerID, id.ProductID, id.SVN, id.Debug)

	// 3. Encrypt and decrypt inside the enclave. The host only ever sees ciphertext.
	ct, err := e.Call(ctx, "encrypt", []byte(message))
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	fmt.Fprintf(out, "ciphertext  %s\n", hex.EncodeToString(ct))
	pt, err := e.Call(ctx, "decrypt", ct)
	if err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	fmt.Fprintf(out, "plaintext   %s\n", pt)
	if string(pt) != message {
		return errors.New("round trip changed the message")
	}

	// 4. A ciphertext the host tampered with is refused.
	ct[len(ct)-1] ^= 1
	if _, err := e.Call(ctx, "decrypt", ct); !errors.Is(err, host.ErrInvalidArgument) {
		return fmt.Errorf("tampered ciphertext: got %v, want refusal", err)
	}
	fmt.Fprintln(out, "tampered ciphertext refused by the enclave")
	return nil
}
