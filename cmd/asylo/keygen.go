package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/asylo-go/asylo/identity/signing"
)

var keygenCmd = &command{
	name:    "keygen",
	args:    "[-o FILE] [-f]",
	summary: "generate an Ed25519 signing key",
	doc: `
Keygen generates a new Ed25519 signing key and writes it as an unencrypted PKCS#8 PEM file
(the format of "openssl genpkey -algorithm ed25519") readable only by its owner (mode 0600).
It prints the key's signer id, the SHA-256 of its public key, which verifiers pin
(docs/identity.md). It refuses to overwrite an existing file unless -f is given.

The file is the signing secret: keep it off build machines that do not sign releases.`,
	setup: func(fs *flag.FlagSet) runFunc {
		out := fs.String("o", "key.pem", "write the key to `FILE`")
		force := fs.Bool("f", false, "overwrite FILE if it exists")
		return func(ctx context.Context, c *cli, args []string) error {
			if len(args) != 0 {
				return usagef("keygen", "takes no arguments, got %q", args)
			}
			key, err := signing.GenerateKey(nil)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			if err := writeSecret(*out, key.MarshalPEM(), *force); err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			fmt.Fprintf(c.stdout, "key:         %s\nsigner id:   %s\n", *out, key.SignerID())
			return nil
		}
	},
}

// writeSecret writes data to path with mode 0600. Without force it refuses an existing path;
// with force it replaces it atomically, so the old key is never half overwritten and the new
// file is never readable by others, whatever the old file's mode was.
func writeSecret(path string, data []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; pass -f to overwrite it (the old key is lost)", path)
		}
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			os.Remove(path)
			return err
		}
		if err := f.Close(); err != nil {
			os.Remove(path)
			return err
		}
		return nil
	}
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file; refusing to replace it", path)
	}
	return writeFileAtomic(path, data, 0o600)
}

// writeFileAtomic writes data to a temporary file beside path and renames it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
