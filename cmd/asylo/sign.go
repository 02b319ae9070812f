package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/identity/signing"
)

var signCmd = &command{
	name:    "sign",
	args:    "--key FILE --product-id N --svn N [--debug] [--json] ENCLAVE",
	summary: "sign an enclave: write its signature manifest",
	doc: `
Sign measures the enclave binary ENCLAVE and writes its signature manifest ENCLAVE.sig
(docs/identity.md): the key's statement that this measurement is product N at security
version N, built for debug or not. Hosts load a signed enclave with the identity of the
manifest; signing again replaces the manifest.

Sign with --debug only for development builds: a debug-signed enclave always has a debug
identity, which verifiers refuse unless their policy allows debug.`,
	setup: func(fs *flag.FlagSet) runFunc {
		keyFile := fs.String("key", "", "the signing key, a PKCS#8 PEM `FILE` from `asylo keygen` (required)")
		var product, svn uint32Flag
		fs.Var(&product, "product-id", "the product id `N` (0-4294967295, required)")
		fs.Var(&svn, "svn", "the security version number `N` of this build (0-4294967295, required)")
		debug := fs.Bool("debug", false, "sign as a debug enclave (its secrets are not protected)")
		asJSON := fs.Bool("json", false, "print the identity as a JSON object")
		return func(ctx context.Context, c *cli, args []string) error {
			path, err := oneArg("sign", args, "ENCLAVE")
			if err != nil {
				return err
			}
			switch {
			case *keyFile == "":
				return usagef("sign", "--key is required (create a key with `asylo keygen`)")
			case !product.set:
				return usagef("sign", "--product-id is required")
			case !svn.set:
				return usagef("sign", "--svn is required")
			}
			pem, err := os.ReadFile(*keyFile)
			if err != nil {
				return fmt.Errorf("sign: reading the key: %w", err)
			}
			key, err := signing.ParseSigningKeyPEM(pem)
			if err != nil {
				return fmt.Errorf("sign: %s: %w", *keyFile, err)
			}
			img, err := sim.LoadImage(path)
			if err != nil {
				return fmt.Errorf("sign: %w", pathError(err))
			}
			m, static := img.Measurement, img.Static
			img.Close()
			if !static && !*debug {
				return fmt.Errorf("sign: %s is dynamically linked (it names a program interpreter): its measurement would not cover the code it loads, and sim loads it only in debug mode; build it with asylo build, or sign it with --debug", path)
			}
			mf, err := signing.Sign(key, m, product.v, svn.v, *debug)
			if err != nil {
				return fmt.Errorf("sign: %w", err)
			}
			data, err := mf.Marshal()
			if err != nil {
				return fmt.Errorf("sign: %w", err)
			}
			sigPath := signing.ManifestPath(path)
			if err := writeFileAtomic(sigPath, data, 0o644); err != nil {
				return fmt.Errorf("sign: writing the manifest: %w", err)
			}
			id, err := mf.Verify(m)
			if err != nil { // unreachable: we just signed m
				return fmt.Errorf("sign: %w", err)
			}
			if *asJSON {
				return printJSON(c.stdout, newIdentityReport(path, id))
			}
			printIdentity(c.stdout, path, id)
			fmt.Fprintf(c.stdout, "manifest:    %s\n", sigPath)
			return nil
		}
	},
}

// uint32Flag is a flag.Value for a uint32 that records whether it was set.
type uint32Flag struct {
	v   uint32
	set bool
}

func (f *uint32Flag) String() string { return strconv.FormatUint(uint64(f.v), 10) }

func (f *uint32Flag) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("want a decimal integer from 0 to %d", uint32(math.MaxUint32))
	}
	f.v, f.set = uint32(n), true
	return nil
}
