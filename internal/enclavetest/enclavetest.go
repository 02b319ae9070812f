// Package enclavetest builds enclave binaries for tests, once per test process.
package enclavetest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/asylo-go/asylo/build"
)

var (
	mu    sync.Mutex
	dir   string
	built = map[string]string{}
)

// EnvPrebuilt names a directory of binaries built beforehand (as Build names them,
// <last element of pkg>.enclave), which Build then returns instead of building: for a test
// binary run as a user who cannot build (no Go cache, no module cache of its own).
const EnvPrebuilt = "ASYLO_ENCLAVETEST_PREBUILT"

// Build builds the main package pkg (an import path inside this module) with the same flags as
// `asylo build` and returns the binary's path. Binaries live until Cleanup.
func Build(tb testing.TB, pkg string) string {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if d := os.Getenv(EnvPrebuilt); d != "" {
		p := filepath.Join(d, filepath.Base(pkg)+".enclave")
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("%s=%s: %v", EnvPrebuilt, d, err)
		}
		built[pkg] = p
		return p
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "asylo-enclavetest-")
		if err != nil {
			tb.Fatal(err)
		}
		dir = d
	}
	out := filepath.Join(dir, filepath.Base(pkg)+".enclave")
	if err := build.Enclave(context.Background(), build.Options{Package: pkg, Output: out, Dir: ModuleRoot()}); err != nil {
		tb.Fatalf("building enclave %s: %v", pkg, err)
	}
	built[pkg] = out
	return out
}

// Cleanup removes the built binaries; call it from TestMain after m.Run.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
	dir, built = "", map[string]string{}
}

// ModuleRoot returns the root of this module's source tree.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
