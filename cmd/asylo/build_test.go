package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asylo-go/asylo/build"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/enclavetest"
)

// TestReproducibleBuild builds the test enclave from two copies of the module in different
// directories: one with `asylo build` and the usual build cache, one with build.Enclave and a
// fresh, empty GOCACHE (so nothing is reused from the first build). The binaries, and so the
// measurements, must be identical, and equal to the one enclavetest built from the source tree.
// The cold build compiles the standard library: about a minute.
func TestReproducibleBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("cold build of the standard library; skipped in -short mode")
	}
	root := enclavetest.ModuleRoot()
	srcA := filepath.Join(t.TempDir(), "first", "asylo")
	srcB := filepath.Join(t.TempDir(), "second-copy", "src")
	copyModule(t, root, srcA)
	copyModule(t, root, srcB)

	// A: the command, run in its copy of the module, with a cold build cache of its own.
	outA := filepath.Join(t.TempDir(), "a.enclave")
	cmd := exec.Command("asylo", "build", "-o", outA, testEnclavePkg)
	cmd.Dir = srcA
	cmd.Env = append(os.Environ(), "GOCACHE="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("asylo build: %v\n%s", err, out)
	} else if m := measureOf(t, outA); !strings.Contains(string(out), "measurement: "+m.String()) {
		t.Errorf("asylo build printed\n%s\nwant the measurement %s", out, m)
	}

	// B: the library, in another copy, with another cold cache.
	outB := filepath.Join(t.TempDir(), "out", "b.enclave")
	if err := build.Enclave(context.Background(), build.Options{
		Package: testEnclavePkg,
		Output:  outB,
		Dir:     srcB,
		Env:     []string{"GOCACHE=" + t.TempDir()},
	}); err != nil {
		t.Fatal(err)
	}

	a, b := readFile(t, outA), readFile(t, outB)
	if !bytes.Equal(a, b) {
		t.Fatalf("builds differ: %s (%d bytes, %s) and %s (%d bytes, %s)",
			outA, len(a), measureOf(t, outA), outB, len(b), measureOf(t, outB))
	}
	// And the build of the source tree itself, with the warm cache the other tests share.
	if ref := enclavetest.Build(t, testEnclavePkg); !bytes.Equal(a, readFile(t, ref)) {
		t.Errorf("build from a copy differs from the build of the source tree %s", ref)
	}
	t.Logf("reproducible: %s", measureOf(t, outA))
}

func measureOf(t *testing.T, path string) identity.Measurement {
	t.Helper()
	m, err := identity.MeasureFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// copyModule copies the module's files (not .git, not built enclaves) from src to dst.
func copyModule(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() || strings.HasSuffix(p, ".enclave") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatalf("copying the module: %v", err)
	}
}
