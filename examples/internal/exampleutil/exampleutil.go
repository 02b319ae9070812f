// Package exampleutil builds an example's enclave from source when no prebuilt binary is given,
// so each example runs with one `go run` command.
package exampleutil

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/asylo-go/asylo/build"
)

// EnclaveBinary returns prebuilt if it is set; otherwise it builds pkg (an import path of this
// module) into a temporary directory with the same reproducible flags as `asylo build`, and
// returns the binary's path and a function that removes it.
func EnclaveBinary(ctx context.Context, prebuilt, pkg string) (string, func(), error) {
	if prebuilt != "" {
		return prebuilt, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "asylo-example-")
	if err != nil {
		return "", nil, err
	}
	out := filepath.Join(dir, filepath.Base(pkg)+".enclave")
	fmt.Fprintf(os.Stderr, "building %s ...\n", pkg)
	if err := build.Enclave(ctx, build.Options{Package: pkg, Output: out}); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("%w\n(run this example from inside the asylo source tree, or pass -enclave with a binary built by `asylo build`)", err)
	}
	return out, func() { os.RemoveAll(dir) }, nil
}
