package sim_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/asylo-go/asylo/attest"
	simev "github.com/asylo-go/asylo/attest/sim"
	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/identity"
)

var signed = identity.Identity{Backend: "sim", Measurement: identity.Measurement{1, 2, 3}, Signed: true,
	SignerID: identity.SignerID{9}, ProductID: 7, SVN: 3}

func newPlatform(t testing.TB) *platform.Platform {
	p, err := platform.Open(t.TempDir() + "/p")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func token(t testing.TB, p *platform.Platform, id identity.Identity, ud []byte) []byte {
	ev, err := p.Attest(id, ud, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ev2, err := attest.ParseEvidence(b)
	if err != nil || ev2.Format != attest.FormatSim {
		t.Fatalf("envelope: %v %v", ev2.Format, err)
	}
	return ev2.Data
}

func TestRoundTrip(t *testing.T) {
	p := newPlatform(t)
	nonce := bytes.Repeat([]byte{0xab}, 64)
	c, err := simev.Verify(token(t, p, signed, nonce), simev.Options{Roots: []*x509.Certificate{p.Root()}, UserData: nonce, MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	kid := p.KeyID()
	if c.Platform != attest.PlatformSim || !bytes.Equal(c.Measurement, signed.Measurement[:]) || !bytes.Equal(c.SignerID, signed.SignerID[:]) ||
		c.ProductID != 7 || c.SVN != 3 || c.Debug || !bytes.Equal(c.UserData, nonce) || !bytes.Equal(c.PlatformKeyID, kid[:]) {
		t.Errorf("claims %+v", c)
	}
	if time.Since(c.IssuedAt) > time.Minute {
		t.Errorf("issued at %v", c.IssuedAt)
	}
	// Unsigned debug enclave.
	dbg := identity.Identity{Backend: "sim", Measurement: identity.Measurement{5}, Debug: true}
	c, err = simev.Verify(token(t, p, dbg, nil), simev.Options{Roots: []*x509.Certificate{p.Root()}})
	if err != nil || !c.Debug || c.SignerID != nil || len(c.UserData) != 0 {
		t.Errorf("debug claims %+v, %v", c, err)
	}
}

func TestRefusals(t *testing.T) {
	p, other := newPlatform(t), newPlatform(t)
	tok := token(t, p, signed, []byte("nonce-123"))
	roots := []*x509.Certificate{p.Root()}
	for _, tc := range []struct {
		name string
		opts simev.Options
		want error
	}{
		{"no root", simev.Options{}, attest.ErrUntrustedRoot},
		{"other platform's root", simev.Options{Roots: []*x509.Certificate{other.Root()}}, attest.ErrUntrustedRoot},
		{"wrong nonce", simev.Options{Roots: roots, UserData: []byte("nonce-124")}, attest.ErrNonceMismatch},
		{"too old", simev.Options{Roots: roots, MaxAge: time.Minute, CurrentTime: time.Now().Add(time.Hour)}, simev.ErrTooOld},
		{"certificates expired", simev.Options{Roots: roots, CurrentTime: time.Now().AddDate(30, 0, 0)}, attest.ErrExpired},
		{"before validity", simev.Options{Roots: roots, CurrentTime: time.Now().AddDate(-1, 0, 0)}, attest.ErrExpired},
	} {
		if _, err := simev.Verify(tok, tc.opts); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// Every single-byte change and every truncation of a token is refused, never accepted.
func TestEveryByteFlipRefused(t *testing.T) {
	p := newPlatform(t)
	tok := token(t, p, signed, []byte("n"))
	opts := simev.Options{Roots: []*x509.Certificate{p.Root()}}
	if _, err := simev.Verify(tok, opts); err != nil {
		t.Fatal(err)
	}
	for i := range tok {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(tok)
			b[i] ^= x
			if _, err := simev.Verify(b, opts); err == nil {
				t.Fatalf("byte %d ^ %#x accepted", i, x)
			}
		}
	}
	for n := range tok {
		if _, err := simev.Verify(tok[:n], opts); !errors.Is(err, attest.ErrMalformed) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	p := newPlatform(f)
	f.Add(token(f, p, signed, []byte("x")))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := simev.Parse(b)
		if err != nil {
			if !errors.Is(err, attest.ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		if len(tok.Claims.Measurement) != 32 || len(tok.Claims.UserData) > 64 {
			t.Fatalf("accepted bad claims %+v", tok.Claims)
		}
	})
}

func FuzzVerify(f *testing.F) {
	p := newPlatform(f)
	f.Add(token(f, p, signed, []byte("x")))
	roots := []*x509.Certificate{p.Root()}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := simev.Verify(b, simev.Options{Roots: roots})
		if err == nil && (c.Platform != attest.PlatformSim || len(c.Measurement) != 32) {
			t.Fatalf("accepted %+v", c)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	p := newPlatform(b)
	tok := token(b, p, signed, bytes.Repeat([]byte{1}, 32))
	opts := simev.Options{Roots: []*x509.Certificate{p.Root()}}
	for b.Loop() {
		if _, err := simev.Verify(tok, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAttest(b *testing.B) {
	p := newPlatform(b)
	ud := bytes.Repeat([]byte{1}, 32)
	for b.Loop() {
		if _, err := p.Attest(signed, ud, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
