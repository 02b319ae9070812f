package snp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/asylo-go/asylo/attest/internal/evidencetest"
)

func TestVerifyRealReport(t *testing.T) {
	ev := realEvidence(t)
	for name, opts := range map[string]Options{
		"default roots":  {CurrentTime: realTime, AllowDebug: true},
		"explicit roots": {CurrentTime: realTime, AllowDebug: true, Roots: DefaultRoots()},
		"milan only": {CurrentTime: realTime, AllowDebug: true, Roots: func() *Roots {
			r := NewRoots()
			if err := r.AddKDSCertChain(Milan, milanVCEKChain); err != nil {
				t.Fatal(err)
			}
			return r
		}()},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := Verify(context.Background(), ev, opts)
			if err != nil {
				t.Fatal(err)
			}
			if r.Version != 2 || r.SigningKey != VCEK || r.ProductLine != Milan || r.VMPL != 0 {
				t.Errorf("version %d, signing key %v, product line %q, VMPL %d", r.Version, r.SigningKey, r.ProductLine, r.VMPL)
			}
			// The real report comes from a debuggable guest (POLICY 0xb0000:
			// SMT, the must-be-one bit 17, DEBUG).
			if !r.Policy.Debug || !r.Policy.SMT || r.Policy.MigrateMA {
				t.Errorf("policy %+v", r.Policy)
			}
			if r.EndorsementKey == nil || r.EndorsementKey.Subject.CommonName != "SEV-VCEK" {
				t.Errorf("endorsement key %v", r.EndorsementKey)
			}
			if r.ReportedTCB != r.CurrentTCB || r.ReportedTCB.SNP != 5 || r.ReportedTCB.Microcode != 0x44 || r.ReportedTCB.BootLoader != 2 {
				t.Errorf("reported TCB %+v, current %+v", r.ReportedTCB, r.CurrentTCB)
			}
			if !bytes.Equal(r.Raw, ev.Report) {
				t.Error("Raw is not the report")
			}
		})
	}
}

func TestParseRealReport(t *testing.T) {
	ev := realEvidence(t)
	r, err := Parse(ev.Report)
	if err != nil {
		t.Fatal(err)
	}
	if r.EndorsementKey != nil || r.ProductLine != "" {
		t.Error("Parse set verification results")
	}
	if r.SignatureAlgo != 1 || r.Policy.Raw != 0xb0000 || r.CPUIDFamily != 0 {
		t.Errorf("signature algo %d, policy %#x, family %#x", r.SignatureAlgo, r.Policy.Raw, r.CPUIDFamily)
	}
}

func TestVerifyRealReportTimes(t *testing.T) {
	ev := realEvidence(t)
	for name, at := range map[string]time.Time{
		"after VCEK NotAfter":   time.Date(2029, time.September, 24, 0, 55, 29, 0, time.UTC),
		"before VCEK NotBefore": time.Date(2022, time.September, 24, 0, 55, 27, 0, time.UTC),
		"2050":                  time.Date(2050, time.January, 1, 0, 0, 0, 0, time.UTC),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(context.Background(), ev, Options{CurrentTime: at, AllowDebug: true})
			if !errors.Is(err, ErrCertificateExpired) {
				t.Fatalf("got %v, want ErrCertificateExpired", err)
			}
			checkOneSentinel(t, err)
		})
	}
	for _, at := range []time.Time{
		time.Date(2022, time.September, 24, 0, 55, 28, 0, time.UTC),
		time.Date(2029, time.September, 24, 0, 55, 28, 0, time.UTC),
	} {
		if _, err := Verify(context.Background(), ev, Options{CurrentTime: at, AllowDebug: true}); err != nil {
			t.Errorf("at the edge %v: %v", at, err)
		}
	}
}

func TestVerifyRealReportUntrustedRoot(t *testing.T) {
	ev := realEvidence(t)
	genoaOnly := NewRoots()
	if err := genoaOnly.AddKDSCertChain(Genoa, genoaVCEKChain); err != nil {
		t.Fatal(err)
	}
	for name, roots := range map[string]*Roots{
		"test ARK":   newFakeAMD(t).roots(t),
		"empty":      NewRoots(),
		"genoa only": genoaOnly,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(context.Background(), ev, Options{Roots: roots, CurrentTime: realTime, AllowDebug: true})
			if !errors.Is(err, ErrUntrustedRoot) {
				t.Fatalf("got %v, want ErrUntrustedRoot", err)
			}
			checkOneSentinel(t, err)
		})
	}
}

func TestVerifyRealReportPolicy(t *testing.T) {
	ev := realEvidence(t)
	r, err := Parse(ev.Report)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The real report's REPORT_DATA, as the guest set it.
	if _, err := Verify(ctx, ev, Options{CurrentTime: realTime, AllowDebug: true, ReportData: &r.ReportData}); err != nil {
		t.Errorf("own report_data: %v", err)
	}
	other := r.ReportData
	other[63] ^= 1
	if _, err := Verify(ctx, ev, Options{CurrentTime: realTime, AllowDebug: true, ReportData: &other}); !errors.Is(err, ErrReportDataMismatch) {
		t.Errorf("other report_data: got %v, want ErrReportDataMismatch", err)
	}
	min := r.ReportedTCB
	if _, err := Verify(ctx, ev, Options{CurrentTime: realTime, AllowDebug: true, MinimumTCB: min}); err != nil {
		t.Errorf("minimum TCB = reported: %v", err)
	}
	min.SNP++
	if _, err := Verify(ctx, ev, Options{CurrentTime: realTime, AllowDebug: true, MinimumTCB: min}); !errors.Is(err, ErrTCBTooLow) {
		t.Errorf("minimum SNP SVN above reported: got %v, want ErrTCBTooLow", err)
	}
}

func TestVerifyRealReportDebug(t *testing.T) {
	_, err := Verify(context.Background(), realEvidence(t), Options{CurrentTime: realTime})
	if !errors.Is(err, ErrDebugNotAllowed) {
		t.Fatalf("got %v, want ErrDebugNotAllowed", err)
	}
	checkOneSentinel(t, err)
}

func TestVerifyMissingCertificate(t *testing.T) {
	ev := realEvidence(t)
	ev.EndorsementKeyCert = nil
	_, err := Verify(context.Background(), ev, Options{CurrentTime: realTime, AllowDebug: true})
	if !errors.Is(err, ErrCertificateUnavailable) {
		t.Fatalf("offline: got %v, want ErrCertificateUnavailable", err)
	}
	// With a getter (a fake KDS on a map, no network), the VCEK is fetched.
	vcek := realEvidence(t).EndorsementKeyCert
	getter := &mapGetter{}
	if _, err := Verify(context.Background(), ev, Options{CurrentTime: realTime, AllowDebug: true, Getter: getter}); !errors.Is(err, ErrCertificateUnavailable) {
		t.Fatalf("empty KDS: got %v, want ErrCertificateUnavailable", err)
	}
	getter.vcek = vcek
	r, err := Verify(context.Background(), ev, Options{CurrentTime: realTime, AllowDebug: true, Getter: getter})
	if err != nil {
		t.Fatalf("fetched VCEK: %v", err)
	}
	if !bytes.Equal(r.EndorsementKey.Raw, vcek) {
		t.Error("not the fetched VCEK")
	}
	for _, u := range getter.asked {
		if !strings.HasPrefix(u, "https://kdsintf.amd.com/vcek/v1/Milan/") {
			t.Errorf("asked for %s", u)
		}
	}
}

// mapGetter is a KDS that serves the Milan cert_chain and any VCEK request
// with vcek, if set.
type mapGetter struct {
	vcek  []byte
	asked []string
}

func (g *mapGetter) Get(url string) ([]byte, error) {
	g.asked = append(g.asked, url)
	switch {
	case strings.HasSuffix(url, "/cert_chain"):
		return trust.AskArkMilanVcekBytes, nil
	case g.vcek != nil:
		return g.vcek, nil
	}
	return nil, errors.New("404")
}

func TestVerifyMalformedCertificate(t *testing.T) {
	ev := realEvidence(t)
	for name, cert := range map[string][]byte{
		"garbage":   []byte("not a certificate"),
		"truncated": ev.EndorsementKeyCert[:len(ev.EndorsementKeyCert)-1],
		"too large": make([]byte, MaxCertificateSize+1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(context.Background(), Evidence{Report: ev.Report, EndorsementKeyCert: cert}, Options{CurrentTime: realTime, AllowDebug: true})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	// A certificate of the right chain that is not the VCEK: the ASK.
	ask := DefaultRoots().byLine[Milan][0].ProductCerts.Ask.Raw
	_, err := Verify(context.Background(), Evidence{Report: ev.Report, EndorsementKeyCert: ask}, Options{CurrentTime: realTime, AllowDebug: true})
	if !errors.Is(err, ErrUntrustedRoot) {
		t.Fatalf("ASK as VCEK: got %v, want ErrUntrustedRoot", err)
	}
}

// TestByteFlips flips each byte of the real report (XOR 0xff), one at a
// time: none may verify, none may panic, each error wraps one sentinel.
func TestByteFlips(t *testing.T) {
	ev := realEvidence(t)
	step := 1
	if testing.Short() || raceDetector {
		step = 7
	}
	// cold: a fresh Roots for every report, so the whole chain is checked;
	// warm: one Roots that has verified the genuine report, so its
	// certificate is cached and only the report's own checks remain.
	warm := DefaultRoots()
	if _, err := Verify(context.Background(), ev, Options{Roots: warm, CurrentTime: realTime, AllowDebug: true}); err != nil {
		t.Fatal(err)
	}
	for name, roots := range map[string]func() *Roots{"cold": DefaultRoots, "warm": func() *Roots { return warm }} {
		t.Run(name, func(t *testing.T) {
			evidencetest.Flips(t, ev.Report, step, func(report []byte) error {
				_, err := Verify(context.Background(), Evidence{Report: report, EndorsementKeyCert: ev.EndorsementKeyCert}, Options{Roots: roots(), CurrentTime: realTime, AllowDebug: true})
				return err
			}, sentinels)
		})
	}
}

// TestVerifyChainCache checks that a Roots which has verified a certificate
// reuses that answer only where it holds: the report's own signature and
// policy are still checked, the certificate's validity still bounds it, and
// other certificate bytes are not taken for it.
func TestVerifyChainCache(t *testing.T) {
	ev := realEvidence(t)
	ctx := context.Background()
	roots := DefaultRoots()
	opts := Options{Roots: roots, CurrentTime: realTime, AllowDebug: true}
	first, err := Verify(ctx, ev, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(roots.chains.m); n != 1 {
		t.Fatalf("after one verification the cache holds %d certificates, want 1", n)
	}
	second, err := Verify(ctx, ev, opts)
	if err != nil {
		t.Fatalf("cached: %v", err)
	}
	if second.ProductLine != first.ProductLine || !second.EndorsementKey.Equal(first.EndorsementKey) || second.ProductLine != Milan {
		t.Errorf("cached verification gives product line %q and certificate %v; first gave %q", second.ProductLine, second.EndorsementKey.Subject, first.ProductLine)
	}

	// The signature: each byte of R and S, and the signed bytes of the report.
	for i := signedSize; i < signedSize+2*0x48; i++ {
		report := bytes.Clone(ev.Report)
		report[i] ^= 0x01
		_, err := Verify(ctx, Evidence{Report: report, EndorsementKeyCert: ev.EndorsementKeyCert}, opts)
		if err == nil {
			t.Fatalf("cached certificate: signature byte %#x flipped verifies", i)
		}
		checkOneSentinel(t, err)
	}
	report := bytes.Clone(ev.Report)
	report[0x50] ^= 0x01 // MEASUREMENT
	if _, err := Verify(ctx, Evidence{Report: report, EndorsementKeyCert: ev.EndorsementKeyCert}, opts); !errors.Is(err, ErrBadSignature) {
		t.Errorf("cached certificate, measurement changed: got %v, want ErrBadSignature", err)
	}

	// The policy is the caller's, not the cache's.
	var other [64]byte
	if _, err := Verify(ctx, ev, Options{Roots: roots, CurrentTime: realTime, AllowDebug: true, ReportData: &other}); !errors.Is(err, ErrReportDataMismatch) {
		t.Errorf("cached certificate, other REPORT_DATA: got %v, want ErrReportDataMismatch", err)
	}
	if _, err := Verify(ctx, ev, Options{Roots: roots, CurrentTime: realTime}); !errors.Is(err, ErrDebugNotAllowed) {
		t.Errorf("cached certificate, debug refused: got %v, want ErrDebugNotAllowed", err)
	}

	// Time: the certificate expires whatever the cache holds.
	late := time.Date(2029, time.September, 24, 0, 55, 29, 0, time.UTC)
	if _, err := Verify(ctx, ev, Options{Roots: roots, CurrentTime: late, AllowDebug: true}); !errors.Is(err, ErrCertificateExpired) {
		t.Errorf("cached certificate after its NotAfter: got %v, want ErrCertificateExpired", err)
	}

	// Other certificate bytes are another entry: a flipped signature bit in
	// the VCEK is still refused after the genuine one was cached.
	cert := bytes.Clone(ev.EndorsementKeyCert)
	cert[len(cert)-5] ^= 0x01
	if _, err := Verify(ctx, Evidence{Report: ev.Report, EndorsementKeyCert: cert}, opts); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("cached genuine certificate, forged one: got %v, want ErrUntrustedRoot", err)
	}

	// A Roots that never verified it has nothing cached and trusts only its roots.
	genoaOnly := NewRoots()
	if err := genoaOnly.AddKDSCertChain(Genoa, genoaVCEKChain); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, ev, Options{Roots: genoaOnly, CurrentTime: realTime, AllowDebug: true}); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("other Roots: got %v, want ErrUntrustedRoot", err)
	}
}

// TestVerifyChainCacheConcurrent verifies from several goroutines against one
// Roots, cold, for the race detector.
func TestVerifyChainCacheConcurrent(t *testing.T) {
	ev := realEvidence(t)
	roots := DefaultRoots()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 3 {
				if _, err := Verify(context.Background(), ev, Options{Roots: roots, CurrentTime: realTime, AllowDebug: true}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// TestByteFlipsSingleBit flips single bits of the signed part, which reach
// values a whole-byte flip skips (e.g. VERSION 3, a single policy bit).
// Bits 0 and 7 of every byte and one more bit chosen by the offset; -short
// samples every 13th byte.
func TestByteFlipsSingleBit(t *testing.T) {
	ev := realEvidence(t)
	step := 1
	if testing.Short() || raceDetector {
		step = 13
	}
	for i := 0; i < signedSize; i += step {
		for _, bit := range []int{0, 7, i % 8} {
			report := bytes.Clone(ev.Report)
			report[i] ^= 1 << bit
			_, err := Verify(context.Background(), Evidence{Report: report, EndorsementKeyCert: ev.EndorsementKeyCert}, Options{CurrentTime: realTime, AllowDebug: true})
			if err == nil {
				t.Errorf("flip of byte %#x bit %d verifies", i, bit)
				continue
			}
			checkOneSentinel(t, err)
		}
	}
}

// signedSize is the length of the signed part of a report (0x2A0 bytes).
var signedSize = len(abi.SignedComponent(make([]byte, ReportSize)))

func TestTruncations(t *testing.T) {
	ev := realEvidence(t)
	for n := 0; n < len(ev.Report); n++ {
		if _, err := Parse(ev.Report[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Parse of %d bytes: got %v, want ErrMalformed", n, err)
		}
		_, err := Verify(context.Background(), Evidence{Report: ev.Report[:n], EndorsementKeyCert: ev.EndorsementKeyCert}, Options{CurrentTime: realTime, AllowDebug: true})
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("Verify of %d bytes: got %v, want ErrMalformed", n, err)
		}
	}
	if _, err := Parse(append(bytes.Clone(ev.Report), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: got %v, want ErrMalformed", err)
	}
	// Truncated certificates: every length.
	step := 1
	if testing.Short() || raceDetector {
		step = 11
	}
	for n := 0; n < len(ev.EndorsementKeyCert); n += step {
		_, err := Verify(context.Background(), Evidence{Report: ev.Report, EndorsementKeyCert: ev.EndorsementKeyCert[:n]}, Options{CurrentTime: realTime, AllowDebug: true})
		if err == nil {
			t.Fatalf("certificate truncated to %d bytes verifies", n)
		}
		checkOneSentinel(t, err)
	}
}

func TestDefaultRootsPinned(t *testing.T) {
	r := DefaultRoots()
	if got := strings.Join(r.ProductLines(), ","); got != "Genoa,Milan,Turin" {
		t.Fatalf("product lines %s", got)
	}
	want := map[string]string{
		Milan: "69D063B45344D26A2E94E1F4210DE49EF555308287D4C174445C95639A540BCD",
		Genoa: "4C6598D19C18719C5DFD4A7D335F674E5BFE1D8F800CEA2CF270C10D103DB2F1",
		Turin: "1F084161A44BB6D93778A904877D4819CAFA5D05EF4193B2DED9DD9C73DD3F6A",
	}
	for line, roots := range r.byLine {
		if len(roots) != 1 {
			t.Fatalf("%s: %d roots, want 1 (VCEK and VLEK chains share the ARK)", line, len(roots))
		}
		pc := roots[0].ProductCerts
		if pc.Ask == nil || pc.Asvk == nil || pc.Ark == nil {
			t.Fatalf("%s: missing ASK, ASVK or ARK", line)
		}
		sum := sha256.Sum256(pc.Ark.Raw)
		if got := strings.ToUpper(hex.EncodeToString(sum[:])); got != want[line] {
			t.Errorf("%s ARK SHA-256 %s, want %s", line, got, want[line])
		}
		// The embedded ARK and ASK are go-sev-guest's.
		lib, err := trust.GetDefaultRootCerts(line)
		if err != nil {
			t.Fatal(err)
		}
		if !lib.ProductCerts.Ark.Equal(pc.Ark) || !lib.ProductCerts.Ask.Equal(pc.Ask) {
			t.Errorf("%s: embedded chain differs from go-sev-guest's", line)
		}
	}
	// Each call is a fresh set.
	DefaultRoots().byLine[Milan] = nil
	if DefaultRoots().byLine[Milan] == nil {
		t.Error("DefaultRoots shares state between calls")
	}
	// The embedded files are the ones in go-sev-guest, byte for byte.
	for file, lib := range map[string][]byte{
		"trust/ask_ark_milan.pem":      trust.AskArkMilanVcekBytes,
		"trust/ask_ark_milan_vlek.pem": trust.AskArkMilanVlekBytes,
		"trust/ask_ark_genoa.pem":      trust.AskArkGenoaVcekBytes,
		"trust/ask_ark_genoa_vlek.pem": trust.AskArkGenoaVlekBytes,
		"trust/ask_ark_turin_vcek.pem": trust.AskArkTurinVcekBytes,
		"trust/ask_ark_turin_vlek.pem": trust.AskArkTurinVlekBytes,
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, lib) {
			t.Errorf("%s differs from go-sev-guest's copy", file)
		}
	}
}

func TestAddKDSCertChain(t *testing.T) {
	for name, tc := range map[string]struct {
		line  string
		chain []byte
	}{
		"unknown line":  {"Naples", milanVCEKChain},
		"wrong line":    {Genoa, milanVCEKChain},
		"empty":         {Milan, nil},
		"one cert":      {Milan, milanVCEKChain[:bytes.Index(milanVCEKChain, []byte("-----END CERTIFICATE-----"))+26]},
		"three certs":   {Milan, append(bytes.Clone(milanVCEKChain), milanVCEKChain[:bytes.Index(milanVCEKChain, []byte("-----END CERTIFICATE-----"))+26]...)},
		"root first":    {Milan, swapPEM(t, milanVCEKChain)},
		"foreign ASK":   {Milan, append(bytes.Clone(genoaVCEKChain[:bytes.Index(genoaVCEKChain, []byte("-----END CERTIFICATE-----"))+26]), milanVCEKChain[bytes.Index(milanVCEKChain, []byte("-----END CERTIFICATE-----"))+26:]...)},
		"trailing junk": {Milan, append(bytes.Clone(milanVCEKChain), "junk"...)},
	} {
		t.Run(name, func(t *testing.T) {
			if err := NewRoots().AddKDSCertChain(tc.line, tc.chain); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func swapPEM(t *testing.T, chain []byte) []byte {
	t.Helper()
	i := bytes.Index(chain, []byte("-----END CERTIFICATE-----")) + 26
	return append(bytes.Clone(chain[i:]), chain[:i]...)
}

func TestUnsupportedReports(t *testing.T) {
	ev := realEvidence(t)
	set := func(off int, v ...byte) []byte {
		r := bytes.Clone(ev.Report)
		copy(r[off:], v)
		return r
	}
	for name, tc := range map[string]struct {
		report []byte
		want   error
	}{
		"version 1":         {set(0, 1), ErrUnsupported},
		"version 6":         {set(0, 6), ErrUnsupported},
		"signature algo 2":  {set(0x34, 2), ErrUnsupported},
		"unsigned report":   {set(0x48, 7<<2), ErrUnsupported},
		"reserved signer":   {set(0x48, 3<<2), ErrMalformed},
		"policy bit 17 off": {set(0x0a, 0x09), ErrMalformed},
		"reserved 0x4c":     {set(0x4c, 1), ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(context.Background(), Evidence{Report: tc.report, EndorsementKeyCert: ev.EndorsementKeyCert}, Options{CurrentTime: realTime, AllowDebug: true})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestValidateOptionsCheckedAgainstLibrary makes sure the TCB parts we pass
// map to the library's as named.
func TestTCBFromRaw(t *testing.T) {
	v, _ := kds.ComposeTCBParts(kds.TCBParts{BlSpl: 1, TeeSpl: 2, SnpSpl: 3, UcodeSpl: 4})
	got := tcbFromRaw(uint64(v))
	if got != (TCB{Raw: uint64(v), BootLoader: 1, TEE: 2, SNP: 3, Microcode: 4}) {
		t.Fatalf("%+v", got)
	}
	_ = abi.ReportSize
}

// BenchmarkVerify measures Verify with every check the zero Options make
// plus REPORT_DATA, on the real Milan report:
//
//   - cold: a fresh Roots each time (certificate parsing, three RSA-4096
//     checks and chain building by go-sev-guest, then the report);
//   - cached: one Roots, as a long-lived verifier keeps it;
//   - p384-floor: go-sev-guest's SnpReportSignature alone, the one ECDSA
//     P-384 verification every report needs, measured in the same run;
//   - ratio: cached and p384-floor alternating in blocks, reporting x =
//     cached/floor;
//   - parallel: cached on every core (RunParallel), reporting verifications
//     per second.
func BenchmarkVerify(b *testing.B) {
	ev := realEvidence(b)
	r, _ := Parse(ev.Report)
	rd := r.ReportData
	ctx := context.Background()
	opts := func(roots *Roots) Options {
		return Options{CurrentTime: realTime, AllowDebug: true, Roots: roots, ReportData: &rd}
	}
	vcek, err := x509.ParseCertificate(ev.EndorsementKeyCert)
	if err != nil {
		b.Fatal(err)
	}
	cached := opts(DefaultRoots())
	verifyCached := func(b *testing.B) {
		if _, err := Verify(ctx, ev, cached); err != nil {
			b.Fatal(err)
		}
	}
	floor := func(b *testing.B) {
		if err := verify.SnpReportSignature(ev.Report, vcek); err != nil {
			b.Fatal(err)
		}
	}
	verifyCached(b)
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Verify(ctx, ev, opts(DefaultRoots())); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			verifyCached(b)
		}
	})
	b.Run("p384-floor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			floor(b)
		}
	})
	b.Run("ratio", func(b *testing.B) {
		const block = 20
		var tc, tf time.Duration
		for i := 0; i < b.N; i += block {
			t0 := time.Now()
			for range block {
				verifyCached(b)
			}
			t1 := time.Now()
			for range block {
				floor(b)
			}
			tc, tf = tc+t1.Sub(t0), tf+time.Since(t1)
		}
		b.ReportMetric(float64(tc)/float64(tf), "x")
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := Verify(ctx, ev, cached); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
	})
}

func BenchmarkParse(b *testing.B) {
	ev := realEvidence(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(ev.Report); err != nil {
			b.Fatal(err)
		}
	}
}
