package tdx

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/attest/internal/evidencetest"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyRealQuote(t *testing.T) {
	raw := realQuote(t)
	for name, opts := range map[string]Options{
		"default roots":  {CurrentTime: realTime},
		"explicit roots": {CurrentTime: realTime, Roots: DefaultRoots()},
	} {
		t.Run(name, func(t *testing.T) {
			q, err := Verify(context.Background(), raw, opts)
			if err != nil {
				t.Fatal(err)
			}
			if q.Version != 4 || q.AttestationKeyType != 2 || q.TEEType != 0x81 {
				t.Errorf("header %d %d %#x", q.Version, q.AttestationKeyType, q.TEEType)
			}
			if !bytes.Equal(q.QEVendorID[:], mustHex(t, "939a7233f79c4ca9940a0db3957f0607")) {
				t.Errorf("QE vendor %x", q.QEVendorID)
			}
			if !bytes.Equal(q.MRTD[:], mustHex(t, "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb")) {
				t.Errorf("MRTD %x", q.MRTD)
			}
			if q.TEETCBSVN != [16]byte{3, 0, 4} || q.TDAttributes.Raw != 0x40000000 || !q.TDAttributes.PKS || q.TDAttributes.Debug || q.XFAM != 0x61ae7 {
				t.Errorf("TEE_TCB_SVN %x, TD_ATTRIBUTES %+v, XFAM %#x", q.TEETCBSVN, q.TDAttributes, q.XFAM)
			}
			if q.PCKInfo.FMSPC != [6]byte{0x50, 0x80, 0x6f} || q.PCKInfo.PCEID != [2]byte{} || q.PCKInfo.PCESVN != 11 ||
				q.PCKInfo.CPUSVN != [16]byte{3, 3, 2, 2, 2, 1, 0, 2} {
				t.Errorf("PCK info %+v", q.PCKInfo)
			}
			if q.PCK.Subject.CommonName != "Intel SGX PCK Certificate" || q.PCKIntermediate.Subject.CommonName != "Intel SGX PCK Platform CA" {
				t.Errorf("chain %q %q", q.PCK.Subject.CommonName, q.PCKIntermediate.Subject.CommonName)
			}
			if !bytes.Equal(q.Raw, raw) {
				t.Error("Raw is not the quote")
			}
		})
	}
}

func TestParseRealQuote(t *testing.T) {
	raw := realQuote(t)
	q, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if q.Claims() != nil {
		t.Error("a parsed quote has claims")
	}
	if q.QEReport.ISVProdID != 2 || q.QEReport.ISVSVN != 4 {
		t.Errorf("QE report %+v", q.QEReport)
	}
	// Parse makes no trust decision: the same quote parses at any time and
	// whatever its signatures.
	bad := bytes.Clone(raw)
	bad[0x27c] ^= 1 // first byte of the quote signature
	if _, err := Parse(bad); err != nil {
		t.Errorf("Parse checked a signature: %v", err)
	}
}

func TestClaims(t *testing.T) {
	q, err := Verify(context.Background(), realQuote(t), Options{CurrentTime: realTime})
	if err != nil {
		t.Fatal(err)
	}
	c := q.Claims()
	if c.Platform != attest.PlatformTDX || !bytes.Equal(c.Measurement, q.MRTD[:]) || !bytes.Equal(c.ConfigHash, q.MRConfigID[:]) ||
		!bytes.Equal(c.UserData, q.ReportData[:]) || c.Debug {
		t.Errorf("claims %+v", c)
	}
	if len(c.Measurements) != 6 || !bytes.Equal(c.Measurements["rtmr3"], q.RTMR[3][:]) || !bytes.Equal(c.Measurements["mrseam"], q.MRSEAM[:]) {
		t.Errorf("measurements %v", c.Measurements)
	}
	if len(c.TCB) != 18 || c.TCB["tdx.tee_tcb_svn.0"] != 3 || c.TCB["tdx.tee_tcb_svn.2"] != 4 || c.TCB["tdx.pce_svn"] != 0 {
		t.Errorf("TCB %v", c.TCB)
	}
	if len(c.PlatformKeyID) != 32 || !c.IssuedAt.IsZero() {
		t.Errorf("platform key %x, issued %v", c.PlatformKeyID, c.IssuedAt)
	}
	// The claims are copies.
	c.Measurement[0] ^= 1
	if q.MRTD[0] == c.Measurement[0] {
		t.Error("claims share memory with the quote")
	}
}

// TestLibraryExtraBytes: go-tdx-guest's testdata quote has 39 bytes
// appended after the signed data, which nothing signs; they are refused.
func TestLibraryExtraBytes(t *testing.T) {
	for _, f := range []func([]byte) (*Quote, error){
		Parse,
		func(b []byte) (*Quote, error) { return Verify(context.Background(), b, Options{CurrentTime: realTime}) },
	} {
		if _, err := f(libraryQuote(t)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v, want ErrMalformed", err)
		}
	}
	if _, err := Parse(append(realQuote(t), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("one trailing NUL: got %v, want ErrMalformed", err)
	}
}

func TestVerifyRealQuoteTimes(t *testing.T) {
	raw := realQuote(t)
	for name, at := range map[string]time.Time{
		"after PCK NotAfter":   time.Date(2029, time.September, 20, 13, 20, 32, 0, time.UTC),
		"before PCK NotBefore": time.Date(2022, time.September, 20, 13, 20, 30, 0, time.UTC),
		"2050":                 time.Date(2050, time.January, 1, 0, 0, 0, 0, time.UTC),
		"2000":                 time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(context.Background(), raw, Options{CurrentTime: at})
			if !errors.Is(err, ErrCertificateExpired) || !errors.Is(err, attest.ErrExpired) {
				t.Fatalf("got %v, want ErrCertificateExpired", err)
			}
			checkOneSentinel(t, err)
		})
	}
	for _, at := range []time.Time{
		time.Date(2022, time.September, 20, 13, 20, 31, 0, time.UTC),
		time.Date(2029, time.September, 20, 13, 20, 31, 0, time.UTC),
	} {
		if _, err := Verify(context.Background(), raw, Options{CurrentTime: at}); err != nil {
			t.Errorf("at the edge %v: %v", at, err)
		}
	}
}

func TestVerifyRealQuoteUntrustedRoot(t *testing.T) {
	raw := realQuote(t)
	fresh := newFakeIntel(t) // a freshly generated CA, with Intel's names
	for name, roots := range map[string]*x509.CertPool{
		"fresh CA": fresh.roots(),
		"empty":    x509.NewCertPool(),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(context.Background(), raw, Options{Roots: roots, CurrentTime: realTime})
			if !errors.Is(err, ErrUntrustedRoot) || !errors.Is(err, attest.ErrUntrustedRoot) {
				t.Fatalf("got %v, want ErrUntrustedRoot", err)
			}
			checkOneSentinel(t, err)
		})
	}
}

func TestVerifyRealQuoteReportData(t *testing.T) {
	raw := realQuote(t)
	q, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := Verify(ctx, raw, Options{CurrentTime: realTime, ReportData: &q.ReportData}); err != nil {
		t.Errorf("own report_data: %v", err)
	}
	other := q.ReportData
	other[63] ^= 1
	_, err = Verify(ctx, raw, Options{CurrentTime: realTime, ReportData: &other})
	if !errors.Is(err, ErrReportDataMismatch) || !errors.Is(err, attest.ErrNonceMismatch) {
		t.Fatalf("other report_data: got %v, want ErrReportDataMismatch", err)
	}
	checkOneSentinel(t, err)
}

// TestFakeQuotes checks, on quotes signed by a test-only Intel (the real
// quote is from a non-debug TD, so the DEBUG path needs a quote of our
// own), the DEBUG attribute, a fresh REPORTDATA, the trust decision and
// each signature.
func TestFakeQuotes(t *testing.T) {
	f := newFakeIntel(t)
	ctx := context.Background()
	fakeOpts := Options{Roots: f.roots(), CurrentTime: fakeTime}
	var nonce [64]byte
	copy(nonce[:], "fresh challenge")

	fresh := f.quote(t, func(p *pb.QuoteV4) { p.TdQuoteBody.ReportData = bytes.Clone(nonce[:]) })
	o := fakeOpts
	o.ReportData = &nonce
	q, err := Verify(ctx, fresh, o)
	if err != nil {
		t.Fatalf("fresh quote: %v", err)
	}
	if !q.PCK.Equal(f.pck) {
		t.Error("not the fake PCK")
	}
	if _, err := Verify(ctx, fresh, Options{CurrentTime: fakeTime}); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("fake quote against Intel's root: got %v, want ErrUntrustedRoot", err)
	}

	debug := f.quote(t, func(p *pb.QuoteV4) { p.TdQuoteBody.TdAttributes[0] |= 1 })
	_, err = Verify(ctx, debug, fakeOpts)
	if !errors.Is(err, ErrDebugNotAllowed) {
		t.Fatalf("debug TD: got %v, want ErrDebugNotAllowed", err)
	}
	checkOneSentinel(t, err)
	o = fakeOpts
	o.AllowDebug = true
	q, err = Verify(ctx, debug, o)
	if err != nil {
		t.Fatalf("debug TD with AllowDebug: %v", err)
	}
	if !q.TDAttributes.Debug || !q.Claims().Debug {
		t.Error("Debug not reported")
	}

	// TD_ATTRIBUTES and XFAM bits go-tdx-guest validate does not allow.
	for name, edit := range map[string]func(*pb.QuoteV4){
		"TD_ATTRIBUTES bit 1": func(p *pb.QuoteV4) { p.TdQuoteBody.TdAttributes[0] |= 2 },
		"XFAM bit 19":         func(p *pb.QuoteV4) { p.TdQuoteBody.Xfam[2] |= 0x08 },
		"XFAM bit 0 clear":    func(p *pb.QuoteV4) { p.TdQuoteBody.Xfam[0] &^= 1 },
	} {
		_, err := Verify(ctx, f.quote(t, edit), o)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", name, err)
		}
	}

	// Each signature, broken after signing.
	for name, tc := range map[string]struct {
		off  int
		want error
	}{
		"quote signature":      {0x27c + 10, ErrBadSignature},
		"body":                 {0x30 + 0x200, ErrBadSignature},
		"header user data":     {0x1c, ErrBadSignature},
		"attestation key":      {0x27c + 64 + 3, ErrBadSignature},
		"QE report":            {0x27c + 128 + 6 + 0x40, ErrBadSignature},
		"QE report signature":  {0x27c + 128 + 6 + 0x180 + 5, ErrBadSignature},
		"QE auth data":         {0x27c + 128 + 6 + 0x1c0 + 2, ErrBadSignature},
		"PCK signature region": {len(fresh) - 100, ErrUntrustedRoot},
	} {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(fresh)
			b[tc.off] ^= 0x01
			_, err := Verify(ctx, b, fakeOpts)
			// The PCK chain is PEM text generated afresh each run: the flipped byte may land on a
			// PEM delimiter or newline, which makes the chain unparsable rather than untrusted.
			// Either way it must be refused.
			if tc.want == ErrUntrustedRoot && errors.Is(err, ErrMalformed) {
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUnsupportedQuotes(t *testing.T) {
	raw := realQuote(t)
	set := func(off int, v ...byte) []byte {
		b := bytes.Clone(raw)
		copy(b[off:], v)
		return b
	}
	for name, tc := range map[string]struct {
		quote []byte
		want  error
	}{
		"version 3":             {set(0, 3, 0), ErrUnsupported},
		"version 5":             {set(0, 5, 0), ErrUnsupported},
		"key type 3 (P-384)":    {set(2, 3, 0), ErrUnsupported},
		"SGX quote (TEE 0)":     {set(4, 0, 0, 0, 0), ErrUnsupported},
		"certification type 5":  {set(0x27c+128, 5, 0), ErrMalformed},
		"signed data size 0":    {set(0x278, 0, 0, 0, 0), ErrMalformed},
		"signed data size 0x81": {set(0x278, 0x81, 0, 0, 0), ErrMalformed},
		"auth data size 0xffff": {set(0x27c+128+6+0x1c0, 0xff, 0xff), ErrMalformed},
		"too large":             {make([]byte, MaxQuoteSize+1), ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			for _, f := range []func([]byte) (*Quote, error){
				Parse,
				func(b []byte) (*Quote, error) { return Verify(context.Background(), b, Options{CurrentTime: realTime}) },
			} {
				_, err := f(tc.quote)
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				checkOneSentinel(t, err)
			}
		})
	}
}

// TestByteFlips flips each byte of the real quote (XOR 0xff), one at a
// time: none may verify, none may panic, each error wraps one sentinel.
func TestByteFlips(t *testing.T) {
	raw := realQuote(t)
	step := 1
	if testing.Short() || raceDetector {
		step = 7
	}
	evidencetest.Flips(t, raw, step, func(b []byte) error {
		_, err := Verify(context.Background(), b, Options{CurrentTime: realTime})
		return err
	}, sentinels)
}

// TestTruncations: every prefix of the real quote is malformed.
func TestTruncations(t *testing.T) {
	raw := realQuote(t)
	for n := 0; n < len(raw); n++ {
		if _, err := Parse(raw[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Parse of %d bytes: got %v, want ErrMalformed", n, err)
		}
		if _, err := Verify(context.Background(), raw[:n], Options{CurrentTime: realTime}); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Verify of %d bytes: got %v, want ErrMalformed", n, err)
		}
	}
}

func TestDefaultRootsPinned(t *testing.T) {
	root := IntelSGXRootCA()
	if root.Subject.CommonName != "Intel SGX Root CA" || !root.IsCA {
		t.Fatalf("root %v", root.Subject)
	}
	// The embedded root is the one in the real quote's chain.
	q, err := Parse(realQuote(t))
	if err != nil {
		t.Fatal(err)
	}
	if !root.Equal(q.PCKRoot) {
		t.Error("embedded root differs from the real quote's Root CA")
	}
	if !DefaultRoots().Equal(DefaultRoots()) {
		t.Error("DefaultRoots differs between calls")
	}
	p := DefaultRoots()
	p.AddCert(newFakeIntel(t).root)
	if DefaultRoots().Equal(p) {
		t.Error("DefaultRoots shares state between calls")
	}
}

// TestLibraryErrorText pins the go-tdx-guest v0.3.1 messages that
// classifyVerifyError reads: a library upgrade that changes them fails here
// rather than relabelling signature failures as chain failures.
func TestLibraryErrorText(t *testing.T) {
	f := newFakeIntel(t)
	fresh := f.quote(t, nil)
	for name, tc := range map[string]struct {
		off    int
		prefix string
	}{
		"quote signature":     {0x27c + 10, verify.ErrHashVerificationFail.Error()},
		"QE report signature": {0x27c + 128 + 6 + 0x180 + 5, "error verifying QE report signature"},
		"QE auth data":        {0x27c + 128 + 6 + 0x1c0 + 2, "error verifying QE report data"},
	} {
		b := bytes.Clone(fresh)
		b[tc.off] ^= 1
		_, p, err := parse(b)
		if err != nil {
			t.Fatal(err)
		}
		err = verify.TdxQuote(p, &verify.Options{TrustedRoots: f.roots(), Now: fakeTime})
		if err == nil || !strings.HasPrefix(err.Error(), tc.prefix) {
			t.Errorf("%s: library error %v, want prefix %q", name, err, tc.prefix)
		}
	}
	// An attestation key off the curve.
	b := bytes.Clone(fresh)
	binary.BigEndian.PutUint64(b[0x27c+64:], 0)
	_, p, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	err = verify.TdxQuote(p, &verify.Options{TrustedRoots: f.roots(), Now: fakeTime})
	if err == nil || !strings.HasPrefix(err.Error(), "attestation key in the quote is invalid") {
		t.Errorf("attestation key off the curve: library error %v", err)
	}
}

func TestSentinelsMatchShared(t *testing.T) {
	for _, tc := range []struct{ local, shared error }{
		{ErrMalformed, attest.ErrMalformed},
		{ErrBadSignature, attest.ErrBadSignature},
		{ErrUntrustedRoot, attest.ErrUntrustedRoot},
		{ErrCertificateExpired, attest.ErrExpired},
		{ErrReportDataMismatch, attest.ErrNonceMismatch},
	} {
		if !errors.Is(tc.local, tc.shared) || errors.Is(tc.shared, tc.local) {
			t.Errorf("%v and %v", tc.local, tc.shared)
		}
	}
	shared := []error{attest.ErrMalformed, attest.ErrUnsupportedFormat, attest.ErrBadSignature, attest.ErrUntrustedRoot, attest.ErrExpired, attest.ErrNonceMismatch}
	for _, s := range []error{ErrUnsupported, ErrDebugNotAllowed, ErrCollateral} {
		for _, a := range shared {
			if errors.Is(s, a) {
				t.Errorf("%v matches %v", s, a)
			}
		}
	}
	// Distinct sentinels do not match each other.
	for i, a := range sentinels {
		for j, b := range sentinels {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v matches %v", a, b)
			}
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	raw := realQuote(b)
	q, err := Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	rd := q.ReportData
	opts := Options{CurrentTime: realTime, Roots: DefaultRoots(), ReportData: &rd}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(ctx, raw, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	raw := realQuote(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPEMPaddingBits documents the one kind of single-bit change found to
// verify (searched over every bit of the chain): the PCK chain is PEM and
// signed by nothing, and Go's base64 decoder ignores the unused low bits of
// a final base64 character before '=' padding. The root certificate's last
// quantum "qI=" also decodes from "qK=", to the same DER: the certificates,
// and so every signed byte and the trust decision, are unchanged.
func TestPEMPaddingBits(t *testing.T) {
	raw := realQuote(t)
	i := bytes.LastIndex(raw, []byte("qI=\n-----END CERTIFICATE-----"))
	if i < 0 {
		t.Fatal("root certificate's last quantum not found")
	}
	b := bytes.Clone(raw)
	b[i+1] = 'K'
	q, err := Verify(context.Background(), b, Options{CurrentTime: realTime})
	if err != nil {
		t.Fatalf("padding bits: %v", err)
	}
	want, _ := Parse(raw)
	if !q.PCKRoot.Equal(want.PCKRoot) || !q.PCK.Equal(want.PCK) {
		t.Fatal("different certificates")
	}
}
