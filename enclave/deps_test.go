package enclave_test

import (
	"os/exec"
	"strings"
	"testing"
)

// Everything the enclave package links is in every enclave's trusted computing base and start-up
// (package inits, pages touched). Signing keys and manifests live in identity/signing so that
// enclaves do not link crypto/x509 and the parsers behind it; this keeps it so.
func TestTrustedDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/asylo-go/asylo/enclave").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	for _, p := range []string{"crypto/x509", "crypto/rsa", "crypto/ecdsa", "crypto/tls", "encoding/pem", "net/http"} {
		if deps[p] {
			t.Errorf("package enclave links %s", p)
		}
	}
}
