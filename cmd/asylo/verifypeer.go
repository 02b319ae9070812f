package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/asylo-go/asylo/atls"
)

var verifyPeerCmd = &command{
	name:    "verify-peer",
	args:    "--policy FILE [--sim-root PEM]... [--allow-debug] [--json] HOST:PORT",
	summary: "connect to an attested TLS endpoint and verify the enclave behind it",
	doc: `
Verify-peer opens an attested TLS 1.3 connection to HOST:PORT (package atls), verifies the
evidence in the server's certificate, its binding to the key used in the handshake, and the
policy, and prints the verified claims. It exits 1 if the handshake refuses the peer. The policy
and the --sim-root and --allow-debug flags work as for "asylo verify".`,
	setup: func(fs *flag.FlagSet) runFunc {
		var trust trustFlags
		trust.define(fs)
		asJSON := fs.Bool("json", false, "print the claims as JSON")
		timeout := fs.Duration("timeout", 10*time.Second, "connection and handshake timeout")
		return func(ctx context.Context, c *cli, args []string) error {
			addr, err := oneArg("verify-peer", args, "HOST:PORT")
			if err != nil {
				return err
			}
			opts, pol, err := trust.build("verify-peer")
			if err != nil {
				return err
			}
			v, err := atls.NewVerifier(opts, pol)
			if err != nil {
				return fmt.Errorf("verify-peer: %w", err)
			}
			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			cfg, err := atls.ClientConfig(ctx, v)
			if err != nil {
				return fmt.Errorf("verify-peer: %w", err)
			}
			d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return fmt.Errorf("verify-peer: %s refused: %w", addr, err)
			}
			defer conn.Close()
			claims, err := v.PeerClaims(conn.(*tls.Conn).ConnectionState())
			if err != nil {
				return fmt.Errorf("verify-peer: %w", err)
			}
			// The handshake already applied the policy; evaluating it again gives the full result
			// (warnings for an accepted debug or sim enclave) to print.
			res := pol.Evaluate(claims)
			if *asJSON {
				return printJSON(c.stdout, res)
			}
			fmt.Fprintf(c.stdout, "verified %s over attested TLS\n", addr)
			printResult(c.stdout, res)
			return nil
		}
	},
}
