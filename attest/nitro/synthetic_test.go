package nitro

import (
	"bytes"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

func TestSyntheticValid(t *testing.T) {
	ca := newTestCA(t, nil, nil)
	doc := ca.doc(t, nil)
	d, err := Verify(doc, Options{Roots: ca.roots(), Nonce: []byte("nonce")})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Timestamp.Equal(synthTime) || string(d.UserData) != "user data" || d.PCRs[0][0] != 0xaa {
		t.Errorf("unexpected document %+v", d)
	}
	// The embedded AWS root does not trust the test CA.
	if _, err := Verify(doc, Options{}); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("default roots: got %v, want ErrUntrustedRoot", err)
	}
	// Optional fields may be absent; an absent nonce fails a nonce check.
	doc = ca.doc(t, func(p map[string]any) {
		delete(p, fieldPublicKey)
		delete(p, fieldUserData)
		delete(p, fieldNonce)
	})
	d, err = Verify(doc, Options{Roots: ca.roots()})
	if err != nil {
		t.Fatal(err)
	}
	if d.PublicKey != nil || d.UserData != nil || d.Nonce != nil {
		t.Errorf("absent optional fields decoded as non-nil")
	}
	if _, err := Verify(doc, Options{Roots: ca.roots(), Nonce: []byte{}}); !errors.Is(err, ErrNonceMismatch) {
		t.Errorf("absent nonce, empty expected nonce: got %v, want ErrNonceMismatch", err)
	}
	// Present but empty user_data and nonce are allowed (§2.2 0..1024).
	doc = ca.doc(t, func(p map[string]any) {
		p[fieldUserData] = []byte{}
		p[fieldNonce] = []byte{}
	})
	d, err = Verify(doc, Options{Roots: ca.roots(), Nonce: []byte{}})
	if err != nil {
		t.Fatal(err)
	}
	if d.UserData == nil || d.Nonce == nil {
		t.Errorf("present empty fields decoded as absent")
	}
}

// TestSyntheticPayload covers §3.2.2: required fields, types and sizes.
func TestSyntheticPayload(t *testing.T) {
	ca := newTestCA(t, nil, nil)
	pcrs := func(m map[any]any) func(map[string]any) {
		return func(p map[string]any) { p[fieldPCRs] = m }
	}
	b := func(n int) []byte { return bytes.Repeat([]byte{0x5a}, n) }
	for _, tc := range []struct {
		name   string
		mutate func(map[string]any)
		want   error // nil: must verify
	}{
		{"missing module_id", func(p map[string]any) { delete(p, fieldModuleID) }, ErrMalformed},
		{"empty module_id", func(p map[string]any) { p[fieldModuleID] = "" }, ErrMalformed},
		{"module_id as bytes", func(p map[string]any) { p[fieldModuleID] = []byte("i-0") }, ErrMalformed},
		{"module_id null", func(p map[string]any) { p[fieldModuleID] = nil }, ErrMalformed},
		{"missing digest", func(p map[string]any) { delete(p, fieldDigest) }, ErrMalformed},
		{"digest SHA256", func(p map[string]any) { p[fieldDigest] = "SHA256" }, ErrMalformed},
		{"digest lower case", func(p map[string]any) { p[fieldDigest] = "sha384" }, ErrMalformed},
		{"digest as bytes", func(p map[string]any) { p[fieldDigest] = []byte("SHA384") }, ErrMalformed},
		{"missing timestamp", func(p map[string]any) { delete(p, fieldTimestamp) }, ErrMalformed},
		{"timestamp zero", func(p map[string]any) { p[fieldTimestamp] = uint64(0) }, ErrMalformed},
		{"timestamp negative", func(p map[string]any) { p[fieldTimestamp] = int64(-1) }, ErrMalformed},
		{"timestamp float", func(p map[string]any) { p[fieldTimestamp] = float64(synthTime.UnixMilli()) }, ErrMalformed},
		{"timestamp text", func(p map[string]any) { p[fieldTimestamp] = "1735787045678" }, ErrMalformed},
		{"timestamp tagged", func(p map[string]any) {
			p[fieldTimestamp] = cbor.Tag{Number: 1, Content: uint64(synthTime.UnixMilli())}
		}, ErrMalformed},
		{"timestamp over int64", func(p map[string]any) { p[fieldTimestamp] = uint64(1) << 63 }, ErrMalformed},
		{"missing pcrs", func(p map[string]any) { delete(p, fieldPCRs) }, ErrMalformed},
		{"pcrs empty", pcrs(map[any]any{}), ErrMalformed},
		{"pcrs array", func(p map[string]any) { p[fieldPCRs] = [][]byte{b(48)} }, ErrMalformed},
		{"pcr index 31", pcrs(map[any]any{uint64(31): b(48)}), nil},
		{"pcr index 32", pcrs(map[any]any{uint64(32): b(48)}), ErrMalformed},
		{"pcr index negative", pcrs(map[any]any{int64(-1): b(48)}), ErrMalformed},
		{"pcr index text", pcrs(map[any]any{"0": b(48)}), ErrMalformed},
		{"pcr index bytes", pcrs(map[any]any{cbor.ByteString("\x00"): b(48), uint64(1): b(48)}), ErrMalformed},
		{"pcr index float", pcrs(map[any]any{float64(1): b(48)}), ErrMalformed},
		{"pcr 32 bytes", pcrs(map[any]any{uint64(0): b(32)}), nil},
		{"pcr 64 bytes", pcrs(map[any]any{uint64(0): b(64)}), nil},
		{"pcr 47 bytes", pcrs(map[any]any{uint64(0): b(47)}), ErrMalformed},
		{"pcr 0 bytes", pcrs(map[any]any{uint64(0): b(0)}), ErrMalformed},
		{"pcr text", pcrs(map[any]any{uint64(0): string(b(48))}), ErrMalformed},
		{"pcr null", pcrs(map[any]any{uint64(0): nil}), ErrMalformed},
		{"missing certificate", func(p map[string]any) { delete(p, fieldCertificate) }, ErrMalformed},
		{"certificate garbage", func(p map[string]any) { p[fieldCertificate] = b(100) }, ErrMalformed},
		{"certificate empty", func(p map[string]any) { p[fieldCertificate] = []byte{} }, ErrMalformed},
		{"certificate 1025 bytes", func(p map[string]any) {
			p[fieldCertificate] = append(bytes.Clone(ca.leaf.Raw), b(1025-len(ca.leaf.Raw))...)
		}, ErrMalformed},
		{"missing cabundle", func(p map[string]any) { delete(p, fieldCABundle) }, ErrMalformed},
		{"cabundle empty", func(p map[string]any) { p[fieldCABundle] = [][]byte{} }, ErrMalformed},
		{"cabundle entry text", func(p map[string]any) { p[fieldCABundle] = []any{ca.root.Raw, string(ca.inter.Raw)} }, ErrMalformed},
		{"cabundle as bytes", func(p map[string]any) { p[fieldCABundle] = ca.root.Raw }, ErrMalformed},
		{"public_key empty", func(p map[string]any) { p[fieldPublicKey] = []byte{} }, ErrMalformed},
		{"public_key 1024", func(p map[string]any) { p[fieldPublicKey] = b(1024) }, nil},
		{"public_key 1025", func(p map[string]any) { p[fieldPublicKey] = b(1025) }, ErrMalformed},
		{"public_key null", func(p map[string]any) { p[fieldPublicKey] = nil }, ErrMalformed},
		{"user_data 1024", func(p map[string]any) { p[fieldUserData] = b(1024) }, nil},
		{"user_data 1025 oversize", func(p map[string]any) { p[fieldUserData] = b(1025) }, ErrMalformed},
		{"user_data text", func(p map[string]any) { p[fieldUserData] = "user data" }, ErrMalformed},
		{"user_data null", func(p map[string]any) { p[fieldUserData] = nil }, ErrMalformed},
		{"nonce 1025", func(p map[string]any) { p[fieldNonce] = b(1025) }, ErrMalformed},
		{"nonce array", func(p map[string]any) { p[fieldNonce] = []any{uint64(1)} }, ErrMalformed},
		{"unknown field", func(p map[string]any) { p["extra"] = []byte{1} }, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := ca.doc(t, tc.mutate)
			_, perr := Parse(doc)
			_, err := Verify(doc, Options{Roots: ca.roots()})
			if tc.want == nil {
				if perr != nil || err != nil {
					t.Fatalf("Parse: %v, Verify: %v; want both to pass", perr, err)
				}
				return
			}
			if !errors.Is(perr, tc.want) || !errors.Is(err, tc.want) {
				t.Fatalf("Parse: %v, Verify: %v; want %v", perr, err, tc.want)
			}
			checkOneSentinel(t, err)
		})
	}
}

// TestSyntheticRawPayload covers payloads that the test encoder would not
// produce by itself.
func TestSyntheticRawPayload(t *testing.T) {
	ca := newTestCA(t, nil, nil)
	valid := encodeCBOR(t, ca.payload())
	if valid[0] != 0xa9 { // map of 9 pairs
		t.Fatalf("unexpected payload head 0x%02x", valid[0])
	}
	dupDigest := append([]byte{0xaa}, valid[1:]...)
	dupDigest = append(dupDigest, encodeCBOR(t, fieldDigest)...)
	dupDigest = append(dupDigest, encodeCBOR(t, digestSHA384)...)

	for name, payload := range map[string][]byte{
		"duplicate key":     dupDigest,
		"array":             encodeCBOR(t, []any{"module_id"}),
		"trailing byte":     append(bytes.Clone(valid), 0x00),
		"indefinite length": append(append([]byte{0xbf}, valid[1:]...), 0xff),
		"integer keys":      encodeCBOR(t, map[uint64]any{1: "x"}),
		"empty map":         {0xa0},
		"null":              {0xf6},
	} {
		t.Run(name, func(t *testing.T) {
			doc := sign(t, payload, cose.AlgorithmES384, ca.leafKey, nil)
			_, err := Verify(doc, Options{Roots: ca.roots()})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			checkOneSentinel(t, err)
		})
	}
}

// TestSyntheticCOSE covers the envelope: algorithm and headers (§3.1).
func TestSyntheticCOSE(t *testing.T) {
	ca := newTestCA(t, nil, nil)
	payload := encodeCBOR(t, ca.payload())
	p256 := mustKey(t, elliptic.P256())
	for _, tc := range []struct {
		name string
		doc  []byte
		want error
	}{
		{"ES384 tagged", func() []byte {
			return append([]byte{0xd2}, sign(t, payload, cose.AlgorithmES384, ca.leafKey, nil)...)
		}(), nil},
		{"wrong alg ES256", sign(t, payload, cose.AlgorithmES256, p256, nil), ErrUnsupportedAlgorithm},
		{"wrong alg ES512", sign(t, payload, cose.AlgorithmES512, mustKey(t, elliptic.P521()), nil), ErrUnsupportedAlgorithm},
		// go-cose always writes alg when signing, so these are built by hand;
		// parsing refuses them before any signature check.
		{"no alg", encodeCBOR(t, []any{encodeCBOR(t, map[int]any{3: "application/cbor"}), map[int]any{}, payload, make([]byte, 96)}),
			ErrUnsupportedAlgorithm},
		{"empty protected header", encodeCBOR(t, []any{[]byte{}, map[int]any{}, payload, make([]byte, 96)}), ErrUnsupportedAlgorithm},
		{"alg in unprotected only", encodeCBOR(t, []any{[]byte{}, map[int]any{1: -35}, payload, make([]byte, 96)}), ErrUnsupportedAlgorithm},
		{"short signature", encodeCBOR(t, []any{encodeCBOR(t, map[int]any{1: -35}), map[int]any{}, payload, make([]byte, 64)}), ErrMalformed},
		{"detached payload", encodeCBOR(t, []any{encodeCBOR(t, map[int]any{1: -35}), map[int]any{}, nil, make([]byte, 96)}), ErrMalformed},
		{"zero signature", encodeCBOR(t, []any{encodeCBOR(t, map[int]any{1: -35}), map[int]any{}, payload, make([]byte, 96)}), ErrBadSignature},
		{"extra protected parameter", sign(t, payload, cose.AlgorithmES384, ca.leafKey, func(h *cose.Headers) {
			h.Protected[cose.HeaderLabelContentType] = "application/cbor"
		}), ErrMalformed},
		{"unprotected kid", sign(t, payload, cose.AlgorithmES384, ca.leafKey, func(h *cose.Headers) {
			h.Unprotected[cose.HeaderLabelKeyID] = []byte("kid")
		}), ErrMalformed},
		{"signed by another key", sign(t, payload, cose.AlgorithmES384, mustKey(t, elliptic.P384()), nil), ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.doc, Options{Roots: ca.roots()})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			checkOneSentinel(t, err)
		})
	}
}

// TestSyntheticChain covers §3.2.3: order, validity, constraints, key usage.
func TestSyntheticChain(t *testing.T) {
	ca := newTestCA(t, nil, nil)
	bundle := func(certs ...*x509.Certificate) func(map[string]any) {
		return func(p map[string]any) {
			var raw [][]byte
			for _, c := range certs {
				raw = append(raw, c.Raw)
			}
			p[fieldCABundle] = raw
		}
	}
	longAgo := synthTime.Add(-48 * time.Hour)
	for _, tc := range []struct {
		name string
		ca   *testCA
		opts Options
		edit func(map[string]any)
		want error
	}{
		{"bundle reversed", ca, Options{}, bundle(ca.inter, ca.root), ErrUntrustedRoot},
		{"bundle without root", ca, Options{}, bundle(ca.inter), ErrUntrustedRoot},
		{"bundle without intermediate", ca, Options{}, bundle(ca.root), ErrUntrustedRoot},
		{"bundle root twice", ca, Options{}, bundle(ca.root, ca.root, ca.inter), ErrUntrustedRoot},
		{"leaf expired", ca, Options{CurrentTime: synthTime.Add(2 * time.Hour)}, nil, ErrCertificateExpired},
		{"leaf not yet valid", ca, Options{CurrentTime: synthTime.Add(-2 * time.Hour)}, nil, ErrCertificateExpired},
		{"intermediate expired", newTestCA(t, &certSpec{cn: "old", isCA: true, maxPath: 0, keyUsage: x509.KeyUsageCertSign,
			notBefore: longAgo, notAfter: synthTime.Add(-time.Minute)}, nil), Options{}, nil, ErrCertificateExpired},
		{"intermediate not a CA", newTestCA(t, &certSpec{cn: "not ca", maxPath: -1, keyUsage: x509.KeyUsageCertSign}, nil),
			Options{}, nil, ErrInvalidCertificate},
		{"intermediate without keyCertSign", newTestCA(t, &certSpec{cn: "no certsign", isCA: true, maxPath: 0, keyUsage: x509.KeyUsageDigitalSignature}, nil),
			Options{}, nil, ErrInvalidCertificate},
		{"leaf without digitalSignature", newTestCA(t, nil, &certSpec{cn: "no sig", keyUsage: x509.KeyUsageKeyAgreement}),
			Options{}, nil, ErrInvalidCertificate},
		{"leaf is a CA", newTestCA(t, nil, &certSpec{cn: "ca leaf", isCA: true, maxPath: -1, keyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}),
			Options{}, nil, ErrInvalidCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Roots = tc.ca.roots()
			doc := tc.ca.doc(t, tc.edit)
			if _, err := Parse(doc); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			_, err := Verify(doc, opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			checkOneSentinel(t, err)
		})
	}
}

// TestSyntheticPathLen: a bundle CA whose pathLenConstraint is exceeded.
func TestSyntheticPathLen(t *testing.T) {
	// root(maxPath 0) -> inter -> leaf: one CA below the root, allowed none.
	rootKey := mustKey(t, elliptic.P384())
	root := mustCert(t, certSpec{cn: "root pathlen 0", isCA: true, maxPath: 0, keyUsage: x509.KeyUsageCertSign,
		notBefore: synthTime.Add(-24 * time.Hour), notAfter: synthTime.Add(24 * time.Hour)}, rootKey.Public(), nil, rootKey)
	interKey := mustKey(t, elliptic.P384())
	inter := mustCert(t, certSpec{cn: "inter", isCA: true, maxPath: -1, keyUsage: x509.KeyUsageCertSign}, interKey.Public(), root, rootKey)
	leafKey := mustKey(t, elliptic.P384())
	leaf := mustCert(t, certSpec{cn: "leaf", keyUsage: x509.KeyUsageDigitalSignature}, leafKey.Public(), inter, interKey)
	ca := &testCA{root: root, inter: inter, leaf: leaf, leafKey: leafKey}
	_, err := Verify(ca.doc(t, nil), Options{Roots: ca.roots()})
	if !errors.Is(err, ErrInvalidCertificate) {
		t.Fatalf("got %v, want ErrInvalidCertificate", err)
	}
}

// TestSyntheticLeafKey: a leaf with a P-256 key cannot carry an ES384
// signature.
func TestSyntheticLeafKey(t *testing.T) {
	p256 := mustKey(t, elliptic.P256())
	rootKey := mustKey(t, elliptic.P384())
	root := mustCert(t, certSpec{cn: "root", isCA: true, maxPath: -1, keyUsage: x509.KeyUsageCertSign,
		notBefore: synthTime.Add(-24 * time.Hour), notAfter: synthTime.Add(24 * time.Hour)}, rootKey.Public(), nil, rootKey)
	leaf := mustCert(t, certSpec{cn: "p256 leaf", keyUsage: x509.KeyUsageDigitalSignature}, p256.Public(), root, rootKey)
	ca := &testCA{root: root, inter: root, leaf: leaf}
	p := ca.payload()
	p[fieldCABundle] = [][]byte{root.Raw}
	doc := sign(t, encodeCBOR(t, p), cose.AlgorithmES384, mustKey(t, elliptic.P384()), nil)
	_, err := Verify(doc, Options{Roots: ca.roots()})
	if !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("got %v, want ErrUnsupportedAlgorithm", err)
	}
}
