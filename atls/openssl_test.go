package atls_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/asylo-go/asylo/internal/tlstest"
)

// OpenSSL, a client that knows nothing of attestation, completes the handshake with an attested
// server and sees its certificate with the evidence extension. (.ci/run installs openssl.)
func TestOpenSSLClient(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	p := newPlatform(t)
	addr := tlstest.HandshakeServer(t, serverConfig(t, simAttester(p, measA, time.Now)))
	cmd := exec.Command(openssl, "s_client", "-connect", addr, "-tls1_3", "-showcerts")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl s_client: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "TLSv1.3") || !strings.Contains(s, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("openssl did not complete a TLS 1.3 handshake:\n%s", s)
	}
	pemCert := s[strings.Index(s, "-----BEGIN CERTIFICATE-----"):]
	pemCert = pemCert[:strings.Index(pemCert, "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----")]
	x := exec.Command(openssl, "x509", "-noout", "-text")
	x.Stdin = strings.NewReader(pemCert)
	text, err := x.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, text)
	}
	if !strings.Contains(string(text), "2.23.133.5.4.9") {
		t.Errorf("openssl does not show the evidence extension 2.23.133.5.4.9:\n%s", text)
	}
}
