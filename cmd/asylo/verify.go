package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/policy"
	"github.com/asylo-go/asylo/verify"
)

var quietLogger = slog.New(slog.DiscardHandler)

// stringsFlag collects a repeatable flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

var verifyCmd = &command{
	name:    "verify",
	args:    "--policy FILE [--sim-root PEM]... [--nonce HEX] [--allow-debug] [--json] EVIDENCE",
	summary: "verify attestation evidence against a policy",
	doc: `
Verify checks the evidence in EVIDENCE (any supported platform: sim, sev-snp, tdx, nitro)
against its vendor's roots and then against a policy, and prints the attestation result. It
exits 0 when the result affirms the enclave (or warns, e.g. for an allowed debug or sim
enclave) and 1 when it refuses, with a reason for every refusal.

The policy file is CEL if its name ends in .cel (an expression over "claims", see
docs/policy.md), and an identity ACL in JSON otherwise. Every policy refuses debug enclaves
unless --allow-debug, and refuses sim evidence unless its platform root is given with
--sim-root (asylo platform export-root). --nonce must be the nonce given to "asylo attest".`,
	setup: func(fs *flag.FlagSet) runFunc {
		var trust trustFlags
		trust.define(fs)
		nonceHex := fs.String("nonce", "", "nonce given to asylo attest, hex")
		asJSON := fs.Bool("json", false, "print the attestation result as JSON")
		return func(ctx context.Context, c *cli, args []string) error {
			path, err := oneArg("verify", args, "EVIDENCE")
			if err != nil {
				return err
			}
			opts, pol, err := trust.build("verify")
			if err != nil {
				return err
			}
			if *nonceHex != "" {
				nonce, err := hex.DecodeString(*nonceHex)
				if err != nil || len(nonce) > enclave.MaxUserData {
					return usagef("verify", "--nonce must be hex of at most %d bytes", enclave.MaxUserData)
				}
				opts.UserData = enclave.NonceUserData(nonce)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			claims, err := verify.Evidence(ctx, raw, opts)
			if err != nil {
				return fmt.Errorf("verify: evidence refused: %w", err)
			}
			res := pol.Evaluate(claims)
			if *asJSON {
				if err := printJSON(c.stdout, res); err != nil {
					return err
				}
			} else {
				printResult(c.stdout, res)
			}
			if !res.Allowed() {
				return fmt.Errorf("verify: refused by policy %s: %w", res.PolicyID, res.Err)
			}
			return nil
		}
	},
}

// trustFlags are the flags verify and verify-peer share: the policy and what it trusts.
type trustFlags struct {
	policyPath string
	simRoots   stringsFlag
	allowDebug bool
}

func (t *trustFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&t.policyPath, "policy", "", "policy file: .cel for CEL, otherwise identity ACL JSON (required)")
	fs.Var(&t.simRoots, "sim-root", "sim platform root certificate (PEM) to accept; repeatable")
	fs.BoolVar(&t.allowDebug, "allow-debug", false, "accept debug enclaves (their secrets are not protected)")
}

// build returns the verifier options and the policy the flags describe: --sim-root both lets the
// verifier accept that platform's evidence and names the platform to the policy.
func (t *trustFlags) build(cmd string) (verify.Options, *policy.Policy, error) {
	opts := verify.Options{AllowDebug: t.allowDebug}
	if t.policyPath == "" {
		return opts, nil, usagef(cmd, "missing --policy FILE: a verification without a policy decides nothing")
	}
	var popts []policy.Option
	if t.allowDebug {
		popts = append(popts, policy.AllowDebug())
	}
	for _, f := range t.simRoots {
		root, err := readCertPEM(f)
		if err != nil {
			return opts, nil, fmt.Errorf("%s: --sim-root: %w", cmd, err)
		}
		opts.SimRoots = append(opts.SimRoots, root)
		popts = append(popts, policy.AcceptSimPlatform(sha256.Sum256(root.RawSubjectPublicKeyInfo)))
	}
	pol, err := loadPolicy(t.policyPath, popts)
	if err != nil {
		return opts, nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return opts, pol, nil
}

func readCertPEM(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: not a PEM certificate", path)
	}
	return x509.ParseCertificate(blk.Bytes)
}

func loadPolicy(path string, opts []policy.Option) (*policy.Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	opts = append(opts, policy.WithID(filepath.Base(path)))
	if strings.HasSuffix(path, ".cel") {
		return policy.Compile(string(b), opts...)
	}
	acl, err := policy.ParseACL(b)
	if err != nil {
		return nil, err
	}
	return policy.NewACLPolicy(acl, opts...)
}

func printResult(w io.Writer, r policy.Result) {
	fmt.Fprintf(w, "status       %s\npolicy       %s\n", r.Status, r.PolicyID)
	if c := r.Claims; c != nil {
		fmt.Fprintf(w, "platform     %s\nmeasurement  %x\n", c.Platform, c.Measurement)
		if len(c.SignerID) > 0 {
			fmt.Fprintf(w, "signer       %x\n", c.SignerID)
		}
		fmt.Fprintf(w, "product      %d\nsvn          %d\ndebug        %v\nuser data    %x\n", c.ProductID, c.SVN, c.Debug, c.UserData)
		if !c.IssuedAt.IsZero() {
			fmt.Fprintf(w, "issued at    %s\n", c.IssuedAt.UTC().Format("2006-01-02T15:04:05Z"))
		}
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "warning      %s\n", s)
	}
	for _, s := range r.Reasons {
		fmt.Fprintf(w, "refused      %s\n", s)
	}
}

var inspectCmd = &command{
	name:    "inspect",
	args:    "EVIDENCE",
	summary: "show attestation evidence without verifying it",
	doc: `
Inspect decodes the evidence in EVIDENCE (sim, sev-snp, tdx or nitro) and prints what it
claims. NOTHING is verified: no signature, no certificate chain, no freshness. Use it to look at
evidence; use "asylo verify" to trust it.`,
	setup: func(fs *flag.FlagSet) runFunc {
		return func(ctx context.Context, c *cli, args []string) error {
			path, err := oneArg("inspect", args, "EVIDENCE")
			if err != nil {
				return err
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			d, err := verify.Inspect(raw)
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			fmt.Fprintf(c.stdout, "UNVERIFIED %s evidence (%s), %d bytes\n", d.Platform, d.Format, len(raw))
			for _, f := range d.Fields {
				fmt.Fprintf(c.stdout, "  %-18s %s\n", f.Name, f.Value)
			}
			return nil
		}
	},
}
