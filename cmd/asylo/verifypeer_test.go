package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asylo-go/asylo/atls"
	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/tlstest"
)

// verify-peer against a live attested TLS endpoint backed by a sim platform.
func TestVerifyPeer(t *testing.T) {
	dir := t.TempDir()
	p, err := platform.Open(filepath.Join(dir, "p"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "root.pem"), p.RootPEM(), 0o644)
	os.WriteFile(filepath.Join(dir, "any.cel"), []byte(`claims.platform == "sim"`), 0o644)
	os.WriteFile(filepath.Join(dir, "other.cel"), []byte(`claims.svn > 100u`), 0o644)
	m := identity.Measurement{0xaa}
	attester := func(ctx context.Context, ud []byte) ([]byte, error) {
		ev, err := p.Attest(identity.Identity{Backend: "sim", Measurement: m, Debug: true}, ud, time.Now())
		if err != nil {
			return nil, err
		}
		return ev.Marshal()
	}
	cfg, err := atls.ServerConfig(context.Background(), attester)
	if err != nil {
		t.Fatal(err)
	}
	addr := tlstest.HandshakeServer(t, cfg)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), args, strings.NewReader(""), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	root, anyPol, other := filepath.Join(dir, "root.pem"), filepath.Join(dir, "any.cel"), filepath.Join(dir, "other.cel")
	code, out, errOut := run("verify-peer", "--policy", anyPol, "--sim-root", root, "--allow-debug", addr)
	if code != 0 || !strings.Contains(out, "measurement  aa00") || !strings.Contains(out, "status       warning") {
		t.Errorf("verify-peer: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := run("verify-peer", "--policy", anyPol, "--allow-debug", addr); code != 1 || !strings.Contains(errOut, "refused") {
		t.Errorf("without the sim root: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run("verify-peer", "--policy", other, "--sim-root", root, "--allow-debug", addr); code != 1 || !strings.Contains(errOut, "refused") {
		t.Errorf("policy refusing: exit %d, %s", code, errOut)
	}
	// A plain TLS server without evidence is refused.
	plain := tlstest.HandshakeServer(t, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if code, _, errOut := run("verify-peer", "--policy", anyPol, "--sim-root", root, plain); code != 1 || !strings.Contains(errOut, "evidence") {
		t.Errorf("plain TLS server: exit %d, %s", code, errOut)
	}
	if code, _, _ := run("verify-peer", addr); code != 2 {
		t.Errorf("no policy: exit %d, want 2", code)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
