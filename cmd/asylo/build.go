package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/asylo-go/asylo/build"
	"github.com/asylo-go/asylo/identity"
)

var buildCmd = &command{
	name:    "build",
	args:    "[-o OUT] [PACKAGE]",
	summary: "build an enclave binary reproducibly",
	doc: `
Build compiles the main package PACKAGE (default ".") into a static enclave binary with the
fixed flags of package build (CGO_ENABLED=0, -trimpath, -buildvcs=false, -ldflags "-s -w
-buildid=", GOAMD64=v1), so that the same source and toolchain give the same bytes and the
same measurement on any machine. It runs in the current directory, which must be inside the
module that holds PACKAGE, and prints the binary's path and measurement.

The default output is the base name of the package's directory with ".enclave" appended,
in the current directory.`,
	setup: func(fs *flag.FlagSet) runFunc {
		out := fs.String("o", "", "write the binary to `OUT` (default: <package dir name>.enclave)")
		return func(ctx context.Context, c *cli, args []string) error {
			pkg := "."
			switch len(args) {
			case 0:
			case 1:
				pkg = args[0]
			default:
				return usagef("build", "builds one package, got %d: %q", len(args), args)
			}
			if strings.Contains(pkg, "...") {
				return usagef("build", "package pattern %q: name one main package", pkg)
			}
			output := *out
			if output == "" {
				name, err := defaultOutput(pkg)
				if err != nil {
					return err
				}
				output = name
			}
			if err := build.Enclave(ctx, build.Options{Package: pkg, Output: output}); err != nil {
				return err // "build: ...", with the go command's output
			}
			m, err := identity.MeasureFile(output)
			if err != nil {
				return fmt.Errorf("build: measuring the output: %w", err)
			}
			fmt.Fprintf(c.stdout, "path:        %s\nmeasurement: %s\n", output, m)
			return nil
		}
	},
}

// defaultOutput returns the default binary name for pkg: the base name of its directory (or of
// its import path) with ".enclave" appended.
func defaultOutput(pkg string) (string, error) {
	base := filepath.Base(filepath.Clean(pkg))
	if base == "." || base == ".." || base == "/" {
		abs, err := filepath.Abs(pkg)
		if err != nil {
			return "", fmt.Errorf("build: %w", err)
		}
		base = filepath.Base(abs)
	}
	if base == "/" || base == "." {
		return "", fmt.Errorf("build: cannot name the output after package %q; pass -o", pkg)
	}
	return base + ".enclave", nil
}
