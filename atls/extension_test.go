package atls_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/asylo-go/asylo/atls"
	"github.com/asylo-go/asylo/attest"
)

// The claims map of docs/atls.md, byte for byte as Gramine lays it out.
func TestClaimsVector(t *testing.T) {
	d := bytes.Repeat([]byte{0xaa}, 32)
	got, err := atls.Claims{PubkeyHash: &atls.PubkeyHash{Alg: atls.HashSHA256, Digest: d}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("a16b7075626b65792d68617368582482015820" + hex.EncodeToString(d))
	if !bytes.Equal(got, want) {
		t.Fatalf("claims\n got %x\nwant %x", got, want)
	}
	c, err := atls.ParseClaims(got)
	if err != nil || c.PubkeyHash.Alg != 1 || !bytes.Equal(c.PubkeyHash.Digest, d) || c.Nonce != nil {
		t.Fatalf("parse: %+v, %v", c, err)
	}
}

func TestExtensionVector(t *testing.T) {
	e := &atls.Extension{Evidence: attest.Evidence{Format: attest.FormatSim, Data: []byte{1, 2}}, Claims: []byte{0xa0}}
	got, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// tag 1668612071 (0x6374ffe7), [h'0102', h'a0']
	if want, _ := hex.DecodeString("da6374ffe782420102" + "41a0"); !bytes.Equal(got, want) {
		t.Fatalf("got %x want %x", got, want)
	}
	back, err := atls.ParseExtension(got)
	if err != nil || back.Evidence.Format != attest.FormatSim || !bytes.Equal(back.Claims, []byte{0xa0}) {
		t.Fatalf("parse: %+v, %v", back, err)
	}
}

func TestParseRefusals(t *testing.T) {
	ext := []struct {
		name string
		hex  string
		want error
	}{
		{"empty", "", atls.ErrMalformedExtension},
		{"untagged", "82420102" + "41a0", atls.ErrMalformedExtension},
		{"unknown tag (Gramine SGX 60000)", "d9ea6082420102" + "41a0", attest.ErrUnsupportedFormat},
		{"three elements", "da6374ffe783420102" + "41a0" + "41a0", atls.ErrMalformedExtension},
		{"array instead of bstr", "da6374ffe7828201024" + "1a0", atls.ErrMalformedExtension},
		{"trailing bytes", "da6374ffe782420102" + "41a0" + "00", atls.ErrMalformedExtension},
		{"indefinite array", "da6374ffe79f42010241a0ff", atls.ErrMalformedExtension},
	}
	for _, tc := range ext {
		b, _ := hex.DecodeString(tc.hex)
		if _, err := atls.ParseExtension(b); !errors.Is(err, tc.want) {
			t.Errorf("extension %s: %v, want %v", tc.name, err, tc.want)
		}
	}
	claims := []struct{ name, hex string }{
		{"not a map", "80"},
		{"integer key", "a10141aa"},
		{"duplicate key", "a2656e6f6e636541aa656e6f6e636541aa"},
		{"nonce not bstr", "a1656e6f6e636501"},
		{"empty nonce", "a1656e6f6e636540"},
		{"pubkey-hash not wrapped", "a16b7075626b65792d686173688201412a"},
		{"unknown hash algorithm", "a16b7075626b65792d68617368458205410000"},
		{"short digest", "a16b7075626b65792d686173684482014100"},
		{"tagged value", "a1656e6f6e6365c241aa"},
	}
	for _, tc := range claims {
		b, _ := hex.DecodeString(tc.hex)
		if _, err := atls.ParseClaims(b); !errors.Is(err, atls.ErrMalformedExtension) {
			t.Errorf("claims %s: %v", tc.name, err)
		}
	}
	// Other keys are allowed and ignored.
	if c, err := atls.ParseClaims(mustHex("a2656e6f6e636541aa6663757374656d41bb")); err != nil || !bytes.Equal(c.Nonce, []byte{0xaa}) {
		t.Errorf("custom claim: %+v, %v", c, err)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzParseExtension(f *testing.F) {
	d := bytes.Repeat([]byte{0xaa}, 32)
	claims, _ := atls.Claims{PubkeyHash: &atls.PubkeyHash{Alg: atls.HashSHA256, Digest: d}, Nonce: []byte{1}}.Marshal()
	ext, _ := (&atls.Extension{Evidence: attest.Evidence{Format: attest.FormatTDX, Data: []byte{1, 2, 3}}, Claims: claims}).Marshal()
	f.Add(ext)
	f.Add(claims)
	f.Add(mustHex("d9ea6082420102" + "41a0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := atls.ParseExtension(b); err == nil {
			// A parsed extension re-encodes and parses to the same value.
			again, err := e.Marshal()
			if err != nil {
				t.Fatalf("re-encoding: %v", err)
			}
			e2, err := atls.ParseExtension(again)
			if err != nil || e2.Evidence.Format != e.Evidence.Format || !bytes.Equal(e2.Evidence.Data, e.Evidence.Data) || !bytes.Equal(e2.Claims, e.Claims) {
				t.Fatalf("round trip: %v", err)
			}
		}
		if c, err := atls.ParseClaims(b); err == nil && (c.PubkeyHash != nil || c.Nonce != nil) {
			again, err := c.Marshal()
			if err != nil {
				t.Fatalf("re-encoding claims: %v", err)
			}
			if _, err := atls.ParseClaims(again); err != nil {
				t.Fatalf("claims round trip: %v", err)
			}
		}
	})
}
