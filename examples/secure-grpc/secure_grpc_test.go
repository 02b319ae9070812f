package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asylo-go/asylo/internal/enclavetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enclavetest.Cleanup()
	os.Exit(code)
}

// Three real enclaves: the server admits only the allowed client's measurement per call.
func TestMutualAttestationACL(t *testing.T) {
	server := enclavetest.Build(t, "./examples/secure-grpc/server")
	client := enclavetest.Build(t, "./examples/secure-grpc/client")
	var out bytes.Buffer
	if err := run(context.Background(), server, client, filepath.Join(t.TempDir(), "p"), &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "alice") || !strings.Contains(s, "): secret") {
		t.Errorf("allowed client did not get its translation:\n%s", s)
	}
	if !strings.Contains(s, "mallory") || !strings.Contains(s, "error: PermissionDenied") {
		t.Errorf("other client was not refused with PermissionDenied:\n%s", s)
	}
}
