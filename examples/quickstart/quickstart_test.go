package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/identity/signing"
	"github.com/asylo-go/asylo/internal/enclavetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enclavetest.Cleanup()
	os.Exit(code)
}

// copyEnclave gives each test its own binary, since run writes a manifest beside it.
func copyEnclave(t *testing.T) string {
	b, err := os.ReadFile(enclavetest.Build(t, "./examples/quickstart/enclave"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "quickstart.enclave")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestQuickstart(t *testing.T) {
	path := copyEnclave(t)
	var out bytes.Buffer
	if err := run(context.Background(), path, "attack at dawn", &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"enclave loaded on sim", "debug false", "plaintext   attack at dawn", "tampered ciphertext refused"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "ciphertext  "+"61747461636b") { // hex of "attack"
		t.Errorf("plaintext visible in ciphertext")
	}
	m, _ := identity.MeasureFile(path)
	if !strings.Contains(s, m.String()) {
		t.Errorf("measurement %s not reported", m)
	}
}

// The signature check is real: a binary changed after signing, or an unsigned one, does not load.
func TestQuickstartRefusesTampering(t *testing.T) {
	path := copyEnclave(t)
	if err := run(context.Background(), path, "x", &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	_, err = host.Load(context.Background(), host.LoadConfig{Path: path})
	if !errors.Is(err, signing.ErrMeasurementMismatch) {
		t.Errorf("tampered binary: %v, want ErrMeasurementMismatch", err)
	}
	os.Remove(signing.ManifestPath(path))
	if _, err := host.Load(context.Background(), host.LoadConfig{Path: path}); !errors.Is(err, backend.ErrUnsigned) {
		t.Errorf("unsigned binary: %v, want ErrUnsigned", err)
	}
}

// TestQuickstartCommand runs the README's first command as it is run: the command builds its own
// enclave from source, signs it and loads it with host.Load's default back-end.
func TestQuickstartCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and its enclave")
	}
	bin := filepath.Join(t.TempDir(), "quickstart")
	build := exec.Command("go", "build", "-o", bin, "./examples/quickstart")
	build.Dir = enclavetest.ModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-message", "from the README")
	cmd.Dir = enclavetest.ModuleRoot()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("quickstart: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"enclave loaded on sim", "debug false", "plaintext   from the README", "tampered ciphertext refused"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}
