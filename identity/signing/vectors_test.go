package signing

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/asylo-go/asylo/identity"
)

// The test vectors of docs/identity.md §7, computed independently with
// OpenSSL 3.0. The signing key is the RFC 8032 §7.1 TEST 1 key.
const (
	vectorSeedHex    = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	vectorPublicHex  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	vectorSPKIHex    = "302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	vectorSignerID   = "06e3fd8fda29bb60ab59557de61edb0aecdb231134be30e75b455f8e1b792fa9"
	vectorImage      = "asylo-go test vector image\n"
	vectorMeasureHex = "f0d85bbbb9f54d4fd183ab6d28e1b4bdf590f6df60ef4da64653d5d75045131e"
	vectorPEM        = "-----BEGIN PRIVATE KEY-----\n" +
		"MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n" +
		"-----END PRIVATE KEY-----\n"
)

type vector struct {
	name      string
	productID uint32
	svn       uint32
	debug     bool
	// tbs is the TBS hex split by field as docs/identity.md prints it.
	tbs     []string
	sigHex  string
	sigFile string
}

var vectors = []vector{{
	name:      "release",
	productID: 287454020,
	svn:       258,
	debug:     false,
	tbs: []string{
		"6173796c6f2d676f207369676e6174757265206d616e696665737420763100",
		vectorMeasureHex,
		"11223344",
		"00000102",
		"00",
	},
	sigHex:  "78206175d3b183232fdee8709865eeed478026fbc5522210b4c3323e9ee516f8ab1a73b97089124f1b203c37f3266f90aaa2791efb36b7fb0892c55a0375120a",
	sigFile: "testdata/vector1.sig",
}, {
	name:      "debug",
	productID: 1,
	svn:       1,
	debug:     true,
	tbs: []string{
		"6173796c6f2d676f207369676e6174757265206d616e696665737420763100",
		vectorMeasureHex,
		"00000001",
		"00000001",
		"01",
	},
	sigHex:  "f12a51be5c5d99c134eb4dd23ff883a9f900d11170a0587c030d0555658048ad8e576e38d97c533e1858d0fea962ef0b1d518a176ee42fde1768556b548f8703",
	sigFile: "testdata/vector2.sig",
}}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vectorKey(t testing.TB) *SigningKey {
	t.Helper()
	k, err := NewSigningKeyFromSeed(mustHex(t, vectorSeedHex))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func vectorMeasurement(t testing.TB) identity.Measurement {
	t.Helper()
	var m identity.Measurement
	copy(m[:], mustHex(t, vectorMeasureHex))
	return m
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectorKey(t *testing.T) {
	k := vectorKey(t)
	if got := hex.EncodeToString(k.Public()); got != vectorPublicHex {
		t.Errorf("public key = %s, want %s", got, vectorPublicHex)
	}
	if got := hex.EncodeToString(marshalSPKI(k.Public())); got != vectorSPKIHex {
		t.Errorf("SPKI = %s, want %s", got, vectorSPKIHex)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil || !bytes.Equal(der, marshalSPKI(k.Public())) {
		t.Errorf("marshalSPKI disagrees with crypto/x509 (%v)", err)
	}
	if got := k.SignerID().String(); got != vectorSignerID {
		t.Errorf("SignerID = %s, want %s", got, vectorSignerID)
	}
	if got := string(k.MarshalPEM()); got != vectorPEM {
		t.Errorf("MarshalPEM =\n%s\nwant\n%s", got, vectorPEM)
	}
	k2, err := ParseSigningKeyPEM([]byte(vectorPEM))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k2.priv, k.priv) {
		t.Error("ParseSigningKeyPEM(vector PEM) is a different key")
	}
	m, n, err := identity.Measure(strings.NewReader(vectorImage))
	if err != nil || n != 27 || m.String() != vectorMeasureHex {
		t.Errorf("identity.Measure(vector image) = %s, %d, %v; want %s, 27", m, n, err, vectorMeasureHex)
	}
}

func TestVectors(t *testing.T) {
	k := vectorKey(t)
	m := vectorMeasurement(t)
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			wantTBS := mustHex(t, strings.Join(v.tbs, ""))
			if got := tbs(m, v.productID, v.svn, v.debug); !bytes.Equal(got, wantTBS) {
				t.Errorf("TBS = %x\nwant  %x", got, wantTBS)
			}
			if len(wantTBS) != tbsSize || tbsSize != 72 {
				t.Errorf("TBS size %d, tbsSize %d, want 72", len(wantTBS), tbsSize)
			}
			mf, err := Sign(k, m, v.productID, v.svn, v.debug)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(mf.Signature); got != v.sigHex {
				t.Errorf("signature = %s\nwant        %s", got, v.sigHex)
			}
			wantJSON := readFile(t, v.sigFile)
			gotJSON, err := mf.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("Marshal =\n%s\nwant\n%s", gotJSON, wantJSON)
			}
			parsed, err := ParseManifest(wantJSON)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(parsed.Signature) != v.sigHex || parsed.ProductID != v.productID ||
				parsed.SVN != v.svn || parsed.Debug != v.debug || parsed.Measurement != m ||
				hex.EncodeToString(parsed.SignerPublicKey) != vectorPublicHex {
				t.Errorf("ParseManifest(vector) = %+v", parsed)
			}
			id, err := parsed.Verify(m)
			if err != nil {
				t.Fatal(err)
			}
			want := identity.Identity{Measurement: m, Signed: true, SignerID: k.SignerID(),
				ProductID: v.productID, SVN: v.svn, Debug: v.debug}
			if id != want {
				t.Errorf("Verify = %+v, want %+v", id, want)
			}
		})
	}
}

// TestDocumentedVectors keeps docs/identity.md and the tests in step.
func TestDocumentedVectors(t *testing.T) {
	doc := string(readFile(t, "../../docs/identity.md"))
	must := []string{
		vectorSeedHex, vectorPublicHex, vectorSPKIHex, vectorSignerID, vectorMeasureHex,
		ManifestFormat, strings.TrimSuffix(tbsDomain, "\x00"),
		"`" + strings.TrimSuffix(vectorImage, "\n") + `\n` + "`",
	}
	for _, line := range strings.Split(strings.TrimSpace(vectorPEM), "\n") {
		must = append(must, "    "+line+"\n")
	}
	for _, v := range vectors {
		must = append(must, v.sigHex,
			"\n    "+strings.Join(v.tbs, "\n    ")+"\n",
			"```json\n"+string(readFile(t, v.sigFile))+"```")
	}
	for _, s := range must {
		if !strings.Contains(doc, s) {
			t.Errorf("docs/identity.md does not contain %q", s)
		}
	}
	// The vector key's signer id is SHA-256 of the SPKI, as documented.
	if got := sha256.Sum256(mustHex(t, vectorSPKIHex)); hex.EncodeToString(got[:]) != vectorSignerID {
		t.Errorf("SHA-256(SPKI) = %x, want %s", got, vectorSignerID)
	}
}
