package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/attest/snp"
	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/policy"
	"github.com/asylo-go/asylo/verify"
)

// The real vectors live beside their verifiers.
func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func envelope(t *testing.T, f attest.Format, data []byte) []byte {
	t.Helper()
	b, err := attest.Evidence{Format: f, Data: data}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDispatchSim(t *testing.T) {
	p, err := platform.Open(filepath.Join(t.TempDir(), "p"))
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{Measurement: identity.Measurement{7}, Debug: true}
	ev, _ := p.Attest(id, []byte("nonce"), time.Now())
	raw, _ := ev.Marshal()
	ctx := context.Background()
	if _, err := verify.Evidence(ctx, raw, verify.Options{}); !errors.Is(err, attest.ErrUntrustedRoot) {
		t.Errorf("sim without roots: %v, want ErrUntrustedRoot", err)
	}
	c, err := verify.Evidence(ctx, raw, verify.Options{SimRoots: []*x509.Certificate{p.Root()}, UserData: []byte("nonce")})
	if err != nil || c.Platform != attest.PlatformSim || c.Measurement[0] != 7 {
		t.Fatalf("%+v %v", c, err)
	}
	// The policy layer: debug and sim are refused unless named.
	pol, _ := policy.ExactMeasurement(c.Measurement)
	if r := pol.Evaluate(c); r.Allowed() {
		t.Error("policy accepted a debug sim enclave by default")
	}
	kid := p.KeyID()
	pol, _ = policy.ExactMeasurement(c.Measurement, policy.AcceptSimPlatform(kid), policy.AllowDebug())
	if r := pol.Evaluate(c); !r.Allowed() {
		t.Errorf("policy naming the platform refused: %v", r.Err)
	}
}

func TestDispatchNitro(t *testing.T) {
	doc, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(read(t, "attest/nitro/testdata/nitro_attestation.b64"))))
	if err != nil {
		t.Fatal(err)
	}
	raw := envelope(t, attest.FormatNitro, doc)
	at := time.Date(2024, 9, 7, 14, 37, 40, 0, time.UTC)
	c, err := verify.Evidence(context.Background(), raw, verify.Options{CurrentTime: at})
	if err != nil {
		t.Fatal(err)
	}
	if c.Platform != attest.PlatformNitro || len(c.Measurement) != 48 || !bytes.Equal(c.Measurement, c.Measurements["pcr0"]) {
		t.Errorf("claims %+v", c)
	}
	if _, err := verify.Evidence(context.Background(), raw, verify.Options{}); !errors.Is(err, attest.ErrExpired) {
		t.Errorf("at today's date: %v, want ErrExpired", err)
	}
}

func TestDispatchSNP(t *testing.T) {
	data, err := verify.EncodeSNP(snp.Evidence{Report: read(t, "attest/snp/testdata/milan_attestation.bin"), EndorsementKeyCert: read(t, "attest/snp/testdata/milan_vcek.der")})
	if err != nil {
		t.Fatal(err)
	}
	raw := envelope(t, attest.FormatSNP, data)
	at := time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)
	// The vector comes from a debug guest: refused unless allowed.
	if _, err := verify.Evidence(context.Background(), raw, verify.Options{CurrentTime: at}); !errors.Is(err, snp.ErrDebugNotAllowed) {
		t.Errorf("debug guest: %v", err)
	}
	c, err := verify.Evidence(context.Background(), raw, verify.Options{CurrentTime: at, AllowDebug: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Platform != attest.PlatformSNP || len(c.Measurement) != 48 || !c.Debug || len(c.UserData) != 64 {
		t.Errorf("claims %+v", c)
	}
}

func TestDispatchTDX(t *testing.T) {
	q := read(t, "attest/tdx/testdata/tdx_prod_quote_SPR_E4.dat")
	q = bytes.TrimSuffix(q, []byte("\nextra bytes(only for testing purpose)\n"))
	raw := envelope(t, attest.FormatTDX, q)
	at := time.Date(2023, 7, 1, 0, 0, 0, 0, time.UTC)
	c, err := verify.Evidence(context.Background(), raw, verify.Options{CurrentTime: at})
	if err != nil {
		t.Fatal(err)
	}
	if c.Platform != attest.PlatformTDX || len(c.Measurement) != 48 {
		t.Errorf("claims %+v", c)
	}
	if _, err := verify.Evidence(context.Background(), raw, verify.Options{CurrentTime: at, UserData: []byte("x")}); !errors.Is(err, attest.ErrNonceMismatch) {
		t.Errorf("wrong user data: %v, want ErrNonceMismatch", err)
	}
}

func TestUnknownAndMalformed(t *testing.T) {
	ctx := context.Background()
	if _, err := verify.Evidence(ctx, envelope(t, "application/x-unknown", []byte{1}), verify.Options{}); !errors.Is(err, attest.ErrUnsupportedFormat) {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := verify.Evidence(ctx, []byte{0x82, 0x01}, verify.Options{}); !errors.Is(err, attest.ErrMalformed) {
		t.Errorf("garbage: %v", err)
	}
	if _, err := verify.Evidence(ctx, envelope(t, attest.FormatSNP, []byte{0xa0}), verify.Options{}); !errors.Is(err, attest.ErrMalformed) {
		t.Errorf("bad SNP value: %v", err)
	}
}

func FuzzEvidence(f *testing.F) {
	f.Add([]byte{0x82, 0x61, 0x78, 0x41, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := verify.Evidence(context.Background(), b, verify.Options{})
		if err == nil {
			t.Fatalf("arbitrary bytes verified: %+v", c)
		}
	})
}
