package nitro

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVerifyRealDocument(t *testing.T) {
	doc := realDoc(t)
	for name, opts := range map[string]Options{
		"document time":      {},
		"explicit time":      {CurrentTime: realTime},
		"explicit root pool": {Roots: DefaultRoots(), CurrentTime: realTime},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := Verify(doc, opts)
			if err != nil {
				t.Fatal(err)
			}
			if d.ModuleID != realModuleID || d.Digest != "SHA384" || !d.Timestamp.Equal(realTime) {
				t.Errorf("got module_id %q digest %q timestamp %v", d.ModuleID, d.Digest, d.Timestamp)
			}
			if len(d.PCRs) != 16 || len(d.CABundle) != 4 {
				t.Errorf("got %d PCRs, %d cabundle entries; want 16, 4", len(d.PCRs), len(d.CABundle))
			}
			for i, p := range d.PCRs {
				if len(p) != 48 {
					t.Errorf("PCR%d is %d bytes", i, len(p))
				}
			}
			if len(d.PublicKey) != 1024 || len(d.UserData) != 1024 || len(d.Nonce) != 1024 {
				t.Errorf("public_key/user_data/nonce sizes %d/%d/%d, want 1024 each", len(d.PublicKey), len(d.UserData), len(d.Nonce))
			}
			if !d.CABundle[0].Equal(defaultRoot()) {
				t.Error("cabundle[0] is not the AWS root")
			}
		})
	}
}

func TestVerifyRealDocumentTagged(t *testing.T) {
	// §3.1: COSE_Sign1 may be tagged (18) or untagged.
	doc := append([]byte{0xd2}, realDoc(t)...)
	if _, err := Verify(doc, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(append([]byte{0xd2, 0xd2}, realDoc(t)...), Options{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("double tag: got %v, want ErrMalformed", err)
	}
}

func TestParseRealDocument(t *testing.T) {
	d, err := Parse(realDoc(t))
	if err != nil {
		t.Fatal(err)
	}
	if d.Certificate.Subject.CommonName != "i-0a22e5c5f24d22174-enc0191cceb4289903f.us-east-1.aws" {
		t.Errorf("leaf CN %q", d.Certificate.Subject.CommonName)
	}
}

func TestVerifyRealDocumentTimes(t *testing.T) {
	doc := realDoc(t)
	d, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	leaf := d.Certificate
	for name, at := range map[string]time.Time{
		"2026 wall clock":       time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC),
		"before leaf NotBefore": leaf.NotBefore.Add(-time.Second),
		"after leaf NotAfter":   leaf.NotAfter.Add(time.Second),
		"before root NotBefore": time.Date(2019, time.January, 1, 0, 0, 0, 0, time.UTC),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(doc, Options{CurrentTime: at})
			if !errors.Is(err, ErrCertificateExpired) {
				t.Fatalf("got %v, want ErrCertificateExpired", err)
			}
			checkOneSentinel(t, err)
		})
	}
	// The edges of the leaf's validity are inside it.
	for _, at := range []time.Time{leaf.NotBefore, leaf.NotAfter} {
		if _, err := Verify(doc, Options{CurrentTime: at}); err != nil {
			t.Errorf("at %v: %v", at, err)
		}
	}
}

func TestVerifyRealDocumentUntrustedRoot(t *testing.T) {
	doc := realDoc(t)
	other := newTestCA(t, nil, nil) // a fresh, unrelated P-384 root
	for name, roots := range map[string]*x509.CertPool{
		"unrelated root": other.roots(),
		"empty pool":     x509.NewCertPool(),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(doc, Options{Roots: roots, CurrentTime: realTime})
			if !errors.Is(err, ErrUntrustedRoot) {
				t.Fatalf("got %v, want ErrUntrustedRoot", err)
			}
			checkOneSentinel(t, err)
		})
	}
}

func TestVerifyRealDocumentNonce(t *testing.T) {
	doc := realDoc(t)
	d, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(doc, Options{Nonce: bytes.Clone(d.Nonce)}); err != nil {
		t.Fatalf("matching nonce: %v", err)
	}
	wrong := bytes.Clone(d.Nonce)
	wrong[len(wrong)-1] ^= 1
	for name, n := range map[string][]byte{
		"last byte differs": wrong,
		"prefix":            d.Nonce[:512],
		"empty":             {},
		"other":             []byte("a fresh verifier nonce"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(doc, Options{Nonce: n})
			if !errors.Is(err, ErrNonceMismatch) {
				t.Fatalf("got %v, want ErrNonceMismatch", err)
			}
			checkOneSentinel(t, err)
		})
	}
}

func TestDefaultRootsPinned(t *testing.T) {
	// Written out independently of RootG1SHA256: the fingerprint AWS
	// documents for AWS_NitroEnclaves_Root-G1.
	const want = "641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B"
	root := defaultRoot()
	sum := sha256.Sum256(root.Raw)
	if got := strings.ToUpper(hex.EncodeToString(sum[:])); got != want {
		t.Fatalf("embedded root SHA-256 %s, want %s", got, want)
	}
	if RootG1SHA256 != want {
		t.Fatalf("RootG1SHA256 %s, want %s", RootG1SHA256, want)
	}
	if root.Subject.CommonName != "aws.nitro-enclaves" || root.PublicKey == nil {
		t.Errorf("subject %v", root.Subject)
	}
	if root.NotAfter.Year() != 2049 {
		t.Errorf("NotAfter %v", root.NotAfter)
	}
	// The embedded anchor and the vector copied from shared testdata are
	// the same file.
	td, err := os.ReadFile("testdata/root.pem")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(td), bytes.TrimSpace(awsNitroRootG1PEM)) {
		t.Error("trust/aws_nitro_enclaves_root_g1.pem differs from testdata/root.pem")
	}
	// A tampered anchor is refused.
	if _, err := parsePinnedRoot(awsNitroRootG1PEM, strings.Repeat("00", 32)); err == nil {
		t.Error("parsePinnedRoot accepted a wrong fingerprint")
	}
	if _, err := parsePinnedRoot(append(bytes.Clone(awsNitroRootG1PEM), awsNitroRootG1PEM...), want); err == nil {
		t.Error("parsePinnedRoot accepted two PEM blocks")
	}
	// Each call gives a fresh pool.
	if a, b := DefaultRoots(), DefaultRoots(); a == b {
		t.Error("DefaultRoots returned a shared pool")
	}
}

// TestByteFlips flips each byte of the real document in turn (XOR 0xff) and
// checks that no variant verifies and none panics. The document's bytes
// outside the signed Sig_structure are the COSE array head, the empty
// unprotected map, the payload's bstr head and the signature; every other
// byte is inside the protected header or the payload and so under the
// signature. No flip is expected to verify: see docs/evidence-nitro.md.
func TestByteFlips(t *testing.T) {
	doc := realDoc(t)
	counts := map[error]int{}
	mut := bytes.Clone(doc)
	step := 1
	if testing.Short() || raceDetector {
		step = 7 // about 35 s for every byte on a loaded 2-core machine; -short samples
	}
	for i := range doc {
		// Bytes outside the signed content are always tested.
		if i%step != 0 && i >= 10 && i < len(doc)-98 {
			continue
		}
		mut[i] ^= 0xff
		_, perr := Parse(mut)
		d, err := Verify(mut, Options{CurrentTime: realTime})
		mut[i] = doc[i]
		if err == nil {
			t.Errorf("flip at byte %d (0x%02x -> 0x%02x) verified: module_id %q", i, doc[i], doc[i]^0xff, d.ModuleID)
			continue
		}
		checkOneSentinel(t, err)
		if perr != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Errorf("flip at %d: Parse failed (%v) but Verify failed later (%v)", i, perr, err)
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				counts[s]++
			}
		}
	}
	for s, n := range counts {
		t.Logf("%5d flips: %v", n, s)
	}
}

// TestEnvelopeMalleability pins a property found while investigating byte
// flips: the COSE envelope bytes that are not signed (the optional tag, the
// encoding of the bstr heads) may change without breaking the signature,
// because the Sig_structure is built from the decoded values. No single-byte
// flip does this; non-minimal heads (several bytes) do, and they yield the
// same document. Callers must not use a hash of the raw document bytes as its
// identity (e.g. as a replay-cache key); use the nonce.
func TestEnvelopeMalleability(t *testing.T) {
	doc := realDoc(t)
	if !bytes.Equal(doc[:10], []byte{0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x59, 0x1d, 0x07}) {
		t.Fatalf("unexpected document head % x", doc[:10])
	}
	want, err := Verify(doc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string][]byte{
		"tag 18":                     append([]byte{0xd2}, doc...),
		"non-minimal payload head":   append(append(bytes.Clone(doc[:7]), 0x5a, 0x00, 0x00, 0x1d, 0x07), doc[10:]...),
		"non-minimal protected head": append([]byte{0x84, 0x58, 0x04}, doc[2:]...),
	} {
		got, err := Verify(v, Options{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got.Nonce, want.Nonce) || got.ModuleID != want.ModuleID || !got.Timestamp.Equal(want.Timestamp) {
			t.Errorf("%s: different document", name)
		}
	}
}

// TestTruncations cuts the real document at every length: none verifies.
func TestTruncations(t *testing.T) {
	doc := realDoc(t)
	for n := 0; n < len(doc); n++ {
		cut := bytes.Clone(doc[:n]) // own backing array: no reads past n
		if _, err := Parse(cut); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Parse of first %d bytes: got %v, want ErrMalformed", n, err)
		}
		if _, err := Verify(cut, Options{CurrentTime: realTime}); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Verify of first %d bytes: got %v, want ErrMalformed", n, err)
		}
	}
	// Trailing data is refused too.
	if _, err := Verify(append(bytes.Clone(doc), 0x00), Options{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: got %v, want ErrMalformed", err)
	}
}

func TestMapX509Error(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{x509.CertificateInvalidError{Reason: x509.Expired}, ErrCertificateExpired},
		{x509.UnknownAuthorityError{}, ErrUntrustedRoot},
		{x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}, ErrInvalidCertificate},
		{x509.CertificateInvalidError{Reason: x509.TooManyIntermediates}, ErrInvalidCertificate},
		{x509.UnhandledCriticalExtension{}, ErrInvalidCertificate},
	} {
		got := mapX509Error(tc.err)
		if !errors.Is(got, tc.want) {
			t.Errorf("mapX509Error(%v) = %v, want %v", tc.err, got, tc.want)
		}
		checkOneSentinel(t, got)
	}
}

// TestVerifyValidatedChainCache checks, with the real document's chain
// known to be cached, that what a cache hit leaves out is still decided on
// every call: the caller's roots, the time, and the document's signature.
func TestVerifyValidatedChainCache(t *testing.T) {
	doc := realDoc(t)
	if _, err := Verify(doc, Options{CurrentTime: realTime}); err != nil {
		t.Fatal(err)
	}
	d, _ := Parse(doc)
	if !validatedChains.has(chainDigest(d.Certificate, d.CABundle)) {
		t.Fatal("a verified chain is not cached")
	}
	other := newTestCA(t, nil, nil)
	for name, roots := range map[string]*x509.CertPool{"unrelated root": other.roots(), "empty pool": x509.NewCertPool()} {
		if _, err := Verify(doc, Options{Roots: roots, CurrentTime: realTime}); !errors.Is(err, ErrUntrustedRoot) {
			t.Errorf("cached chain, %s: got %v, want ErrUntrustedRoot", name, err)
		}
	}
	if _, err := Verify(doc, Options{CurrentTime: d.Certificate.NotAfter.Add(time.Second)}); !errors.Is(err, ErrCertificateExpired) {
		t.Errorf("cached chain, after the leaf expired: got %v, want ErrCertificateExpired", err)
	}
	// The signature is the last 96 bytes (r || s of ES384).
	mut := bytes.Clone(doc)
	mut[len(mut)-50] ^= 0x01
	if _, err := Verify(mut, Options{CurrentTime: realTime}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("cached chain, signature flipped: got %v, want ErrBadSignature", err)
	}
	// A chain that differs in one certificate is not the cached one.
	bundle := slices.Clone(d.CABundle)
	bundle[len(bundle)-1] = other.inter
	if validatedChains.has(chainDigest(d.Certificate, bundle)) {
		t.Error("a different chain hits the cache")
	}
}

// BenchmarkVerify measures Verify of the real document: cold (validated
// chains forgotten before each call: four P-384 chain signatures, then the
// document's) and cached (a verifier that has seen the chain before).
func BenchmarkVerify(b *testing.B) {
	doc := realDoc(b)
	opts := Options{Roots: DefaultRoots(), CurrentTime: realTime}
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			validatedChains.mu.Lock()
			validatedChains.m = nil
			validatedChains.mu.Unlock()
			if _, err := Verify(doc, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Verify(doc, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	doc := realDoc(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}
