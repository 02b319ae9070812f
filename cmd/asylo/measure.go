package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/identity/signing"
)

var measureCmd = &command{
	name:    "measure",
	args:    "[--json] ENCLAVE",
	summary: "print an enclave's measurement and verified identity",
	doc: `
Measure prints the measurement of the enclave binary ENCLAVE (the SHA-256 of its bytes, as
"sha256sum ENCLAVE" prints it) and the identity it loads with. If a signature manifest
ENCLAVE.sig exists it is verified against the measurement, exactly as a host does before it
loads the enclave: a malformed manifest, a bad signature, or a manifest for another
measurement (a tampered binary) is an error. Without a manifest the enclave is unsigned and
loads only in debug mode.`,
	setup: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print the identity as a JSON object")
		return func(ctx context.Context, c *cli, args []string) error {
			path, err := oneArg("measure", args, "ENCLAVE")
			if err != nil {
				return err
			}
			id, err := inspect(path)
			if err != nil {
				return fmt.Errorf("measure: %w", err)
			}
			if *asJSON {
				return printJSON(c.stdout, newIdentityReport(path, id))
			}
			printIdentity(c.stdout, path, id)
			return nil
		}
	},
}

// inspect measures the enclave at path (a sealed copy of it, after checking it is an ELF
// executable) and resolves its identity as the sim back-end does in debug mode: from a verified
// manifest if there is one, else as an unsigned debug enclave.
func inspect(path string) (identity.Identity, error) {
	img, err := sim.LoadImage(path)
	if err != nil {
		return identity.Identity{}, pathError(err)
	}
	m := img.Measurement
	img.Close()
	id, err := backend.ResolveIdentity("", path, m, true)
	if err != nil {
		return identity.Identity{}, pathError(err)
	}
	return id, nil
}

// pathError shortens a library error about a file that cannot be read to the *fs.PathError at
// its root ("open x: no such file or directory"), which already says what failed. Other errors
// are returned unchanged.
func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe
	}
	return err
}

// identityReport is the JSON form of an identity, as `measure --json` and `sign --json` print it.
type identityReport struct {
	Path        string               `json:"path"`
	Measurement identity.Measurement `json:"measurement"`
	Signed      bool                 `json:"signed"`
	SignerID    string               `json:"signer_id,omitempty"` // absent when unsigned
	ProductID   uint32               `json:"product_id"`
	SVN         uint32               `json:"svn"`
	Debug       bool                 `json:"debug"`
}

func newIdentityReport(path string, id identity.Identity) identityReport {
	r := identityReport{Path: path, Measurement: id.Measurement, Signed: id.Signed,
		ProductID: id.ProductID, SVN: id.SVN, Debug: id.Debug}
	if id.Signed {
		r.SignerID = id.SignerID.String()
	}
	return r
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// printIdentity prints id as "name: value" lines.
func printIdentity(w io.Writer, path string, id identity.Identity) {
	fmt.Fprintf(w, "path:        %s\n", path)
	fmt.Fprintf(w, "measurement: %s\n", id.Measurement)
	if !id.Signed {
		fmt.Fprintf(w, "signed:      no (no %s; runs only with --debug)\n", signing.ManifestPath(path))
		fmt.Fprintf(w, "debug:       yes\n")
		return
	}
	fmt.Fprintf(w, "signed:      yes\n")
	fmt.Fprintf(w, "signer id:   %s\n", id.SignerID)
	fmt.Fprintf(w, "product id:  %d\n", id.ProductID)
	fmt.Fprintf(w, "svn:         %d\n", id.SVN)
	fmt.Fprintf(w, "debug:       %s\n", yesNo(id.Debug))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
