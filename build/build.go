// Package build produces enclave binaries reproducibly: the same source and toolchain give the
// same bytes, and so the same measurement, on any machine. It runs the go command with a fixed
// set of flags (docs/identity.md, "Reproducible builds"):
//
//   - CGO_ENABLED=0: a static binary with no dynamic loader or libc in the measured image;
//   - -trimpath and -buildvcs=false: no file-system paths or VCS state in the binary;
//   - -ldflags "-s -w -buildid=": no symbol tables or build ids that vary between builds;
//   - GOOS=linux, GOAMD64 pinned (v1 unless set), so the host's CPU does not change the code.
package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Options describes one build.
type Options struct {
	// Package is the main package to build, as the go command takes it ("./cmd/enclave").
	Package string
	// Output is the path of the binary to write.
	Output string
	// Dir is the directory the go command runs in (the module containing Package); "" means
	// the current directory.
	Dir string
	// GoCommand is the go command to run; "" means "go" from PATH, or from GOROOT.
	GoCommand string
	// Env adds environment variables (for example GOFLAGS=-mod=vendor or GOCACHE=...).
	Env []string
}

// ErrBuild reports that the go command failed; the error carries its output.
var ErrBuild = errors.New("build: go build failed")

// Flags are the go build flags used for every enclave.
var Flags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// Enclave builds opts.Package into opts.Output.
func Enclave(ctx context.Context, opts Options) error {
	if opts.Package == "" || opts.Output == "" {
		return errors.New("build: Package and Output are required")
	}
	goCmd := opts.GoCommand
	if goCmd == "" {
		goCmd = GoCommand()
	}
	out, err := filepath.Abs(opts.Output)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	args := append([]string{"build"}, Flags...)
	args = append(args, "-o", out, opts.Package)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = opts.Dir
	cmd.Env = Environ(opts.Env)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %v\n%s", ErrBuild, err, strings.TrimSpace(buf.String()))
	}
	return nil
}

// Environ returns the environment for an enclave build: os.Environ() with the settings that
// make the binary static and reproducible, then extra.
func Environ(extra []string) []string {
	env := os.Environ()
	env = append(env, "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=")
	if runtime.GOARCH == "amd64" && os.Getenv("GOAMD64") == "" {
		env = append(env, "GOAMD64=v1")
	}
	return append(env, extra...)
}

// GoCommand returns the go command to use: "go" on PATH, else $GOROOT/bin/go if GOROOT is set,
// else "go" (running it then fails with exec's "not found" error).
func GoCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}
