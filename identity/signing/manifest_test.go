package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/asylo-go/asylo/identity"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{1})
	for i, tc := range []struct {
		productID, svn uint32
		debug          bool
	}{
		{0, 0, false}, {1, 0, true}, {math.MaxUint32, math.MaxUint32, false},
		{42, 7, true}, {0x80000000, 1, false},
	} {
		k, err := GenerateKey(rng)
		if err != nil {
			t.Fatal(err)
		}
		m := identity.Measurement(sha256.Sum256([]byte{byte(i)}))
		mf, err := Sign(k, m, tc.productID, tc.svn, tc.debug)
		if err != nil {
			t.Fatal(err)
		}
		data, err := mf.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := ParseManifest(data)
		if err != nil {
			t.Fatalf("ParseManifest(Marshal()) = %v\n%s", err, data)
		}
		again, err := parsed.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Errorf("Marshal(ParseManifest(x)) != x (%v)", err)
		}
		id, err := parsed.Verify(m)
		if err != nil {
			t.Fatal(err)
		}
		want := identity.Identity{Measurement: m, Signed: true, SignerID: k.SignerID(),
			ProductID: tc.productID, SVN: tc.svn, Debug: tc.debug}
		if id != want {
			t.Errorf("Verify = %+v, want %+v", id, want)
		}
		// The key survives PEM.
		k2, err := ParseSigningKeyPEM(k.MarshalPEM())
		if err != nil || k2.SignerID() != k.SignerID() {
			t.Errorf("PEM round trip: %v", err)
		}
	}
}

func TestVerifyWrongMeasurement(t *testing.T) {
	k, m := vectorKey(t), vectorMeasurement(t)
	mf, err := Sign(k, m, 1, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range identity.MeasurementSize {
		for bit := range 8 {
			other := m
			other[i] ^= 1 << bit
			if _, err := mf.Verify(other); !errors.Is(err, ErrMeasurementMismatch) {
				t.Fatalf("Verify(measurement with byte %d bit %d flipped) = %v, want ErrMeasurementMismatch", i, bit, err)
			}
		}
	}
	_, err = mf.Verify(identity.Measurement{})
	if !errors.Is(err, ErrMeasurementMismatch) || !errors.Is(err, ErrZeroMeasurement) {
		t.Errorf("Verify(zero) = %v, want ErrMeasurementMismatch and ErrZeroMeasurement", err)
	}
	if !strings.Contains(err.Error(), "measure") {
		t.Errorf("error does not say what to do: %v", err)
	}
}

// TestTamperFields flips every bit of every signed field, of the signature
// and of the public key: each must fail with ErrBadSignature.
func TestTamperFields(t *testing.T) {
	k, m := vectorKey(t), vectorMeasurement(t)
	good, err := Sign(k, m, 287454020, 258, false)
	if err != nil {
		t.Fatal(err)
	}
	clone := func() *Manifest {
		c := *good
		c.SignerPublicKey = bytes.Clone(good.SignerPublicKey)
		c.Signature = bytes.Clone(good.Signature)
		return &c
	}
	check := func(what string, mf *Manifest) {
		t.Helper()
		// Verify against the manifest's own measurement so that only the
		// signature can fail.
		id, err := mf.Verify(mf.Measurement)
		if !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%s: Verify = %+v, %v; want ErrBadSignature", what, id, err)
		}
	}
	for i := range identity.MeasurementSize {
		for bit := range 8 {
			mf := clone()
			mf.Measurement[i] ^= 1 << bit
			if mf.Measurement.IsZero() {
				continue
			}
			check("measurement", mf)
		}
	}
	for bit := range 32 {
		mf := clone()
		mf.ProductID ^= 1 << bit
		check("product id", mf)
		mf = clone()
		mf.SVN ^= 1 << bit
		check("svn", mf)
	}
	mf := clone()
	mf.Debug = !mf.Debug
	check("debug", mf)
	for i := range ed25519.SignatureSize {
		for bit := range 8 {
			mf := clone()
			mf.Signature[i] ^= 1 << bit
			check("signature", mf)
		}
	}
	for i := range ed25519.PublicKeySize {
		for bit := range 8 {
			mf := clone()
			mf.SignerPublicKey[i] ^= 1 << bit
			check("public key", mf)
		}
	}
	// Another key's valid signature over the same statement is no better.
	other, _ := GenerateKey(rand.NewChaCha8([32]byte{2}))
	mf = clone()
	mf.SignerPublicKey = other.Public()
	check("other key", mf)
}

// TestTBSDomainAndFlags checks that signatures over TBS encodings that v1
// does not produce never verify: reserved flag bits, another domain.
func TestTBSDomainAndFlags(t *testing.T) {
	k, m := vectorKey(t), vectorMeasurement(t)
	base := tbs(m, 5, 6, false)
	for bit := 1; bit < 8; bit++ {
		msg := bytes.Clone(base)
		msg[tbsSize-1] = 1 << bit
		sig := ed25519.Sign(k.priv, msg)
		for _, debug := range []bool{false, true} {
			mf := &Manifest{Measurement: m, ProductID: 5, SVN: 6, Debug: debug, SignerPublicKey: k.Public(), Signature: sig}
			if _, err := mf.Verify(m); !errors.Is(err, ErrBadSignature) {
				t.Errorf("flags bit %d, debug=%v: Verify = %v, want ErrBadSignature", bit, debug, err)
			}
		}
	}
	noDomain := ed25519.Sign(k.priv, base[len(tbsDomain):])
	mf := &Manifest{Measurement: m, ProductID: 5, SVN: 6, SignerPublicKey: k.Public(), Signature: noDomain}
	if _, err := mf.Verify(m); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature without domain string: Verify = %v, want ErrBadSignature", err)
	}
}

// TestTamperJSON flips bits in every byte of the vector manifest file. Each
// result must be refused (ErrMalformedManifest at parse or ErrBadSignature at
// verify) unless it parses to exactly the same manifest; none may panic.
func TestTamperJSON(t *testing.T) {
	m := vectorMeasurement(t)
	for _, v := range vectors {
		good := readFile(t, v.sigFile)
		orig, err := ParseManifest(good)
		if err != nil {
			t.Fatal(err)
		}
		same := 0
		for i := range good {
			for _, mask := range []byte{0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff} {
				data := bytes.Clone(good)
				data[i] ^= mask
				mf, err := ParseManifest(data)
				if err != nil {
					if !errors.Is(err, ErrMalformedManifest) {
						t.Fatalf("byte %d ^ %#x: ParseManifest = %v, want ErrMalformedManifest", i, mask, err)
					}
					continue
				}
				if sameManifest(mf, orig) {
					same++ // e.g. a change of JSON whitespace; the JSON is not signed
					if _, err := mf.Verify(m); err != nil {
						t.Fatalf("byte %d ^ %#x: same manifest no longer verifies: %v", i, mask, err)
					}
					continue
				}
				if _, err := mf.Verify(m); !errors.Is(err, ErrBadSignature) {
					t.Fatalf("byte %d ^ %#x: Verify = %v, want ErrBadSignature\n%s", i, mask, err, data)
				}
			}
		}
		t.Logf("%s: %d of %d mutations parse to the same manifest", v.name, same, 9*len(good))
	}
}

func sameManifest(a, b *Manifest) bool {
	return a.Measurement == b.Measurement && a.ProductID == b.ProductID && a.SVN == b.SVN &&
		a.Debug == b.Debug && bytes.Equal(a.SignerPublicKey, b.SignerPublicKey) && bytes.Equal(a.Signature, b.Signature)
}

func TestParseManifestAccepts(t *testing.T) {
	good := string(readFile(t, "testdata/vector1.sig"))
	for name, data := range map[string]string{
		"compact":         strings.Join(strings.Fields(good), ""),
		"reordered":       reorder(good),
		"whitespace":      "\t\r\n " + strings.ReplaceAll(good, ": ", " :\t") + "\n\n",
		"escaped name":    strings.Replace(good, `"format"`, `"\u0066ormat"`, 1),
		"no newline":      strings.TrimSuffix(good, "\n"),
		"escaped solidus": strings.Replace(good, `manifest/v1`, `manifest\/v1`, 1),
	} {
		mf, err := ParseManifest([]byte(data))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := mf.Verify(vectorMeasurement(t)); err != nil {
			t.Errorf("%s: Verify: %v", name, err)
		}
	}
}

// reorder reverses the member lines of a manifest written by Marshal.
func reorder(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	members := lines[1 : len(lines)-1]
	for i := range members {
		members[i] = strings.TrimSuffix(members[i], ",")
	}
	for i, j := 0, len(members)-1; i < j; i, j = i+1, j-1 {
		members[i], members[j] = members[j], members[i]
	}
	return "{" + strings.Join(members, ",") + "}"
}

func TestParseManifestRejects(t *testing.T) {
	good := string(readFile(t, "testdata/vector1.sig"))
	repl := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("vector does not contain %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	const sigB64 = "eCBhddOxgyMv3uhwmGXu7UeAJvvFUiIQtMMyPp7lFvirGnO5cIkSTxsgPDfzJm+QqqJ5Hvs2t/sIksVaA3USCg=="
	const keyB64 = "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	rsaSPKI := base64.StdEncoding.EncodeToString(pemBody(t, "testdata/rsa_public.pem"))
	ecSPKI := base64.StdEncoding.EncodeToString(pemBody(t, "testdata/ecdsa_public.pem"))
	ed448SPKI := base64.StdEncoding.EncodeToString(pemBody(t, "testdata/ed448_public.pem"))
	oversize := strings.TrimSuffix(good, "\n") + strings.Repeat(" ", MaxManifestSize)

	cases := []struct {
		name, data  string
		unsupported bool
	}{
		{name: "empty", data: ""},
		{name: "null", data: "null"},
		{name: "array", data: "[" + good + "]"},
		{name: "string", data: `"x"`},
		{name: "empty object", data: "{}"},
		{name: "truncated", data: good[:len(good)/2]},
		{name: "oversize", data: oversize},
		{name: "trailing object", data: good + "{}"},
		{name: "trailing garbage", data: good + "x"},
		{name: "two manifests", data: good + good},
		{name: "unknown member", data: repl(`"debug": false,`, `"debug": false, "extra": 1,`)},
		{name: "unknown member null", data: repl(`"debug": false,`, `"debug": false, "x": null,`)},
		{name: "case-changed name", data: repl(`"format"`, `"Format"`)},
		{name: "duplicate member", data: repl(`"debug": false,`, `"debug": false, "debug": false,`)},
		{name: "duplicate svn", data: repl(`"svn": 258,`, `"svn": 1, "svn": 258,`)},
		{name: "duplicate escaped", data: repl(`"debug": false,`, `"debug": false, "d\u0065bug": false,`)},
		{name: "missing member", data: repl(`  "debug": false,`+"\n", "")},
		{name: "wrong format", data: repl(ManifestFormat, "asylo-signature-manifest/v2")},
		{name: "format case", data: repl(ManifestFormat, "Asylo-signature-manifest/v1")},
		{name: "format number", data: repl(`"`+ManifestFormat+`"`, "1")},
		{name: "measurement upper case", data: repl(vectorMeasureHex, strings.ToUpper(vectorMeasureHex))},
		{name: "measurement short", data: repl(vectorMeasureHex, vectorMeasureHex[2:])},
		{name: "measurement long", data: repl(vectorMeasureHex, vectorMeasureHex+"00")},
		{name: "measurement not hex", data: repl(vectorMeasureHex, "zz"+vectorMeasureHex[2:])},
		{name: "measurement zero", data: repl(vectorMeasureHex, strings.Repeat("0", 64))},
		{name: "measurement number", data: repl(`"`+vectorMeasureHex+`"`, "0")},
		{name: "product negative", data: repl("287454020", "-1")},
		{name: "product minus zero", data: repl("287454020", "-0")},
		{name: "product fraction", data: repl("287454020", "287454020.0")},
		{name: "product exponent", data: repl("287454020", "2e3")},
		{name: "product too big", data: repl("287454020", "4294967296")},
		{name: "product huge", data: repl("287454020", strings.Repeat("9", 400))},
		{name: "product string", data: repl("287454020", `"287454020"`)},
		{name: "product null", data: repl("287454020", "null")},
		{name: "product leading zero", data: repl("287454020", "0287454020")},
		{name: "svn bool", data: repl("258", "true")},
		{name: "debug string", data: repl(`"debug": false`, `"debug": "false"`)},
		{name: "debug number", data: repl(`"debug": false`, `"debug": 0`)},
		{name: "debug null", data: repl(`"debug": false`, `"debug": null`)},
		{name: "debug object", data: repl(`"debug": false`, `"debug": {}`)},
		{name: "debug array", data: repl(`"debug": false`, `"debug": [false]`)},
		{name: "signature no padding", data: repl(sigB64, strings.TrimRight(sigB64, "="))},
		{name: "signature url alphabet", data: repl(sigB64, strings.NewReplacer("+", "-", "/", "_").Replace(sigB64))},
		{name: "signature line break", data: repl(sigB64, sigB64[:40]+`\n`+sigB64[40:])},
		{name: "signature padding bits", data: repl(sigB64, sigB64[:len(sigB64)-3]+"B==")},
		{name: "signature short", data: repl(sigB64, sigB64[4:])},
		{name: "signature long", data: repl(sigB64, "AAAA"+sigB64)},
		{name: "signature hex", data: repl(sigB64, vectors[0].sigHex)},
		{name: "signature huge", data: repl(sigB64, strings.Repeat("A", 8000))},
		{name: "key raw 32 bytes", data: repl(keyB64, base64.StdEncoding.EncodeToString(mustHex(t, vectorPublicHex)))},
		{name: "key truncated", data: repl(keyB64, keyB64[:40])},
		{name: "key bad prefix", data: repl(keyB64, "MCsw"+keyB64[4:])},
		{name: "key not canonical", data: repl(keyB64, keyB64[:len(keyB64)-2]+"p=")},
		{name: "key RSA", data: repl(keyB64, rsaSPKI), unsupported: true},
		{name: "key ECDSA", data: repl(keyB64, ecSPKI), unsupported: true},
		{name: "key Ed448", data: repl(keyB64, ed448SPKI), unsupported: true},
		{name: "invalid UTF-8 name", data: repl(`"debug": false,`, "\"debug\": false, \"\xff\": 1,")},
		{name: "comment", data: "// c\n" + good},
	}
	for _, tc := range cases {
		mf, err := ParseManifest([]byte(tc.data))
		if !errors.Is(err, ErrMalformedManifest) {
			t.Errorf("%s: ParseManifest = %v, %v; want ErrMalformedManifest", tc.name, mf, err)
			continue
		}
		if got := errors.Is(err, ErrUnsupportedKey); got != tc.unsupported {
			t.Errorf("%s: errors.Is(%v, ErrUnsupportedKey) = %v, want %v", tc.name, err, got, tc.unsupported)
		}
		if mf != nil {
			t.Errorf("%s: non-nil manifest with error", tc.name)
		}
		if len(err.Error()) > 400 {
			t.Errorf("%s: error message is %d bytes long: %.100s...", tc.name, len(err.Error()), err)
		}
	}
}

func TestBadManifestValues(t *testing.T) {
	k, m := vectorKey(t), vectorMeasurement(t)
	var nilManifest *Manifest
	for name, mf := range map[string]*Manifest{
		"nil":              nilManifest,
		"zero":             {},
		"zero measurement": {SignerPublicKey: k.Public(), Signature: make([]byte, 64)},
		"short key":        {Measurement: m, SignerPublicKey: k.Public()[:31], Signature: make([]byte, 64)},
		"long signature":   {Measurement: m, SignerPublicKey: k.Public(), Signature: make([]byte, 65)},
	} {
		if _, err := mf.Verify(m); !errors.Is(err, ErrMalformedManifest) {
			t.Errorf("%s: Verify = %v, want ErrMalformedManifest", name, err)
		}
		if b, err := mf.Marshal(); !errors.Is(err, ErrMalformedManifest) || b != nil {
			t.Errorf("%s: Marshal = %q, %v; want ErrMalformedManifest", name, b, err)
		}
	}
}

func TestSignRejects(t *testing.T) {
	m := vectorMeasurement(t)
	if _, err := Sign(nil, m, 1, 1, false); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("Sign(nil key) = %v, want ErrMalformedKey", err)
	}
	if _, err := Sign(&SigningKey{}, m, 1, 1, false); !errors.Is(err, ErrMalformedKey) {
		t.Errorf("Sign(zero key) = %v, want ErrMalformedKey", err)
	}
	if _, err := Sign(vectorKey(t), identity.Measurement{}, 1, 1, false); !errors.Is(err, ErrZeroMeasurement) {
		t.Errorf("Sign(zero measurement) = %v, want ErrZeroMeasurement", err)
	}
}
