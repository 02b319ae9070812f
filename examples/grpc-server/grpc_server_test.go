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

// The translator runs in a real sandboxed enclave, serves gRPC over attested TLS on a connection
// the host accepted and handed in, and the client verifies it in the handshake.
func TestTranslator(t *testing.T) {
	path := enclavetest.Build(t, "./examples/grpc-server/enclave")
	var out bytes.Buffer
	if err := run(context.Background(), path, filepath.Join(t.TempDir(), "platform"), []string{"hello", "asylo"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hello -> bonjour", "asylo -> asile", "on sim"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := run(context.Background(), path, filepath.Join(t.TempDir(), "platform"), []string{"unknownword"}, &out); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("unknown word: %v", err)
	}
}
