package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/asylo-go/asylo/identity"
)

// pemBody returns the DER in the single PEM block of a testdata file.
func pemBody(t testing.TB, path string) []byte {
	t.Helper()
	block, _ := pem.Decode(readFile(t, path))
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	return block.Bytes
}

func TestGenerateKey(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	k, err := GenerateKey(bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := NewSigningKeyFromSeed(seed)
	if !bytes.Equal(k.priv, k2.priv) {
		t.Error("GenerateKey(reader of seed) != NewSigningKeyFromSeed(seed)")
	}
	a, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateKey(nil)
	if a.SignerID() == b.SignerID() || a.SignerID().IsZero() {
		t.Error("GenerateKey(nil) does not produce fresh keys")
	}
	if _, err := GenerateKey(iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Error("GenerateKey(failing reader) succeeded")
	}
	if _, err := GenerateKey(bytes.NewReader(seed[:5])); err == nil {
		t.Error("GenerateKey(short reader) succeeded")
	}
	if _, err := NewSigningKeyFromSeed(seed[:31]); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("NewSigningKeyFromSeed(31 bytes) = %v, want ErrMalformedKey", err)
	}
}

func TestSignerIDOf(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{3})
	for range 10 {
		k, _ := GenerateKey(rng)
		der, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		if want := identity.SignerID(sha256.Sum256(der)); SignerIDOf(k.Public()) != want || k.SignerID() != want {
			t.Errorf("SignerIDOf != SHA-256(x509 SPKI)")
		}
	}
	for _, n := range []int{0, 31, 33, 64} {
		if id := SignerIDOf(make(ed25519.PublicKey, n)); !id.IsZero() {
			t.Errorf("SignerIDOf(%d bytes) = %s, want zero", n, id)
		}
	}
}

func TestZeroSigningKey(t *testing.T) {
	for _, k := range []*SigningKey{nil, {}, {priv: make(ed25519.PrivateKey, 10)}} {
		if k.Public() != nil || !k.SignerID().IsZero() || k.MarshalPEM() != nil {
			t.Errorf("%v: Public/SignerID/MarshalPEM not empty", k)
		}
	}
}

func TestParseSigningKeyPEMOpenSSL(t *testing.T) {
	k, err := ParseSigningKeyPEM(readFile(t, "testdata/ed25519_openssl.pem"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(readFile(t, "testdata/ed25519_openssl.signerid")))
	if got := k.SignerID().String(); got != want {
		t.Errorf("SignerID = %s, want %s (openssl ... | sha256sum)", got, want)
	}
	// The same key with CRLF line endings and surrounding whitespace.
	crlf := bytes.ReplaceAll(readFile(t, "testdata/ed25519_openssl.pem"), []byte("\n"), []byte("\r\n"))
	if k2, err := ParseSigningKeyPEM(append(append([]byte("\n  "), crlf...), "\n\n"...)); err != nil || k2.SignerID() != k.SignerID() {
		t.Errorf("CRLF/whitespace: %v", err)
	}
}

func TestParseSigningKeyPEMUnsupported(t *testing.T) {
	for _, file := range []string{
		"rsa_pkcs8.pem", "rsa_pkcs1.pem", "ecdsa_pkcs8.pem", "ecdsa_sec1.pem",
		"x25519.pem", "ed448.pem", "ed25519_encrypted.pem",
	} {
		data := readFile(t, "testdata/"+file)
		k, err := ParseSigningKeyPEM(data)
		if !errors.Is(err, ErrUnsupportedKey) || k != nil {
			t.Errorf("%s: ParseSigningKeyPEM = %v, %v; want ErrUnsupportedKey", file, k, err)
			continue
		}
		checkNoSecret(t, file, err.Error(), data)
	}
	// Legacy encrypted PEM: headers.
	legacy := "-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\n" +
		"MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n"
	if _, err := ParseSigningKeyPEM([]byte(legacy)); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("legacy encrypted PEM: %v, want ErrUnsupportedKey", err)
	}
}

func TestParseSigningKeyPEMMalformed(t *testing.T) {
	seed := mustHex(t, vectorSeedHex)
	der := pemBody(t, "testdata/ed25519_openssl.pem")
	enc := func(typ string, b []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}))
	}
	wrongLen := append([]byte{0x30, 0x2d, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x21, 0x04, 0x1f}, seed[:31]...)
	for name, data := range map[string]string{
		"empty":            "",
		"garbage":          "hello",
		"DER":              string(der),
		"public key":       string(readFile(t, "testdata/rsa_public.pem")),
		"certificate type": enc("CERTIFICATE", der),
		"two keys":         vectorPEM + vectorPEM,
		"text before":      "key:\n" + vectorPEM,
		"text after":       vectorPEM + "trailing\n",
		"bad base64":       strings.Replace(vectorPEM, "MC4C", "M!4C", 1),
		"no end line":      strings.Split(vectorPEM, "-----END")[0],
		"truncated DER":    enc("PRIVATE KEY", der[:len(der)-1]),
		"trailing DER":     enc("PRIVATE KEY", append(bytes.Clone(der), 0)),
		"empty DER":        enc("PRIVATE KEY", nil),
		"31-byte seed":     enc("PRIVATE KEY", wrongLen),
		"oversize":         vectorPEM + strings.Repeat(" ", MaxKeyPEMSize),
		"not a sequence":   enc("PRIVATE KEY", []byte{0x04, 0x00}),
	} {
		k, err := ParseSigningKeyPEM([]byte(data))
		if !errors.Is(err, ErrMalformedKey) || k != nil {
			t.Errorf("%s: ParseSigningKeyPEM = %v, %v; want ErrMalformedKey", name, k, err)
			continue
		}
		if errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("%s: also ErrUnsupportedKey: %v", name, err)
		}
		checkNoSecret(t, name, err.Error(), []byte(vectorPEM))
		if strings.Contains(err.Error(), hex.EncodeToString(seed[:8])) {
			t.Errorf("%s: error contains seed bytes: %v", name, err)
		}
	}
}

// checkNoSecret fails if msg contains any 12-character run of the base64
// body of the PEM data.
func checkNoSecret(t *testing.T, name, msg string, pemData []byte) {
	t.Helper()
	block, _ := pem.Decode(pemData)
	if block == nil {
		return
	}
	body := base64.StdEncoding.EncodeToString(block.Bytes)
	for i := 0; i+12 <= len(body); i += 4 {
		if strings.Contains(msg, body[i:i+12]) {
			t.Errorf("%s: error message holds key material: %q", name, msg)
			return
		}
	}
}

// TestSigningKeyFormat checks that fmt never prints key bytes.
func TestSigningKeyFormat(t *testing.T) {
	k := vectorKey(t)
	seed := mustHex(t, vectorSeedHex)
	leaks := []string{
		vectorSeedHex[:16], strings.ToUpper(vectorSeedHex[:16]),
		fmt.Sprint(seed[:4])[1:12], // "157 97 177" as fmt prints a byte slice
		base64.StdEncoding.EncodeToString(seed)[:12],
		string(seed[:8]),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		for _, arg := range []any{k, *k, []*SigningKey{k}, struct{ K *SigningKey }{k}, struct{ K SigningKey }{*k}} {
			out := fmt.Sprintf(verb, arg)
			for _, leak := range leaks {
				if strings.Contains(out, leak) {
					t.Errorf("Sprintf(%q, %T) = %q leaks the key", verb, arg, out)
				}
			}
		}
	}
	if got := fmt.Sprint(k); !strings.Contains(got, vectorSignerID) {
		t.Errorf("Sprint(key) = %q, want it to name the signer id", got)
	}
}
