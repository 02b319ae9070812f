package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/host"
)

var attestCmd = &command{
	name:    "attest",
	args:    "[--debug] [--platform-dir DIR] [--nonce HEX] -o FILE ENCLAVE",
	summary: "load an enclave and write attestation evidence for it",
	doc: `
Attest loads ENCLAVE on the sim back-end, asks it for evidence through the runtime's built-in
handler (asylo.attest), and writes the evidence (an attest.Evidence envelope) to FILE.

The evidence binds the verifier's nonce (--nonce, hex, at most 64 bytes) in a domain-separated
form, SHA-256("asylo-go attest nonce v1\x00" || nonce), so that a host can never use this
command to make an enclave vouch for a key of the host's choosing. Pass the same nonce to
"asylo verify --nonce".`,
	setup: func(fs *flag.FlagSet) runFunc {
		debug := fs.Bool("debug", false, "load an unsigned enclave as a debug enclave")
		dir := fs.String("platform-dir", "", "sim platform state directory (default $XDG_STATE_HOME/asylo/sim-platform)")
		nonceHex := fs.String("nonce", "", "verifier's nonce, hex (at most 64 bytes)")
		out := fs.String("o", "", "file to write the evidence to (required)")
		return func(ctx context.Context, c *cli, args []string) error {
			path, err := oneArg("attest", args, "ENCLAVE")
			if err != nil {
				return err
			}
			if *out == "" {
				return usagef("attest", "missing -o FILE")
			}
			nonce, err := hex.DecodeString(*nonceHex)
			if err != nil || len(nonce) > enclave.MaxUserData {
				return usagef("attest", "--nonce must be hex of at most %d bytes", enclave.MaxUserData)
			}
			d, err := platformDir(*dir)
			if err != nil {
				return err
			}
			p, err := platform.Open(d)
			if err != nil {
				return fmt.Errorf("attest: %w", err)
			}
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			e, err := host.Load(ctx, host.LoadConfig{Path: path, Debug: *debug, Backend: sim.New(sim.WithPlatform(p)), Logger: quietLogger})
			if err != nil {
				return fmt.Errorf("attest: %w", pathError(err))
			}
			ev, err := e.Call(ctx, enclave.AttestMethod, nonce)
			derr := e.Destroy(ctx, nil)
			if err != nil {
				return fmt.Errorf("attest: %w", err)
			}
			if derr != nil {
				return fmt.Errorf("attest: %w", derr)
			}
			if err := os.WriteFile(*out, ev, 0o644); err != nil {
				return fmt.Errorf("attest: %w", err)
			}
			id := e.Identity()
			fmt.Fprintf(c.stdout, "wrote %s: sim evidence for measurement %s (debug %v)\n", *out, id.Measurement, id.Debug)
			return nil
		}
	},
}
