package snp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
)

// Reports made fresh by go-sev-guest's test signer (fake ARK, ASK, VCEK),
// with a report_data chosen here, verified against the fake roots.

func freshNonce(t *testing.T) [64]byte {
	t.Helper()
	var n [64]byte
	if _, err := rand.Read(n[:]); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFakeReport(t *testing.T) {
	amd := newFakeAMD(t)
	roots := amd.roots(t)
	ctx := context.Background()
	for _, key := range []abi.ReportSigner{abi.VcekReportSigner, abi.VlekReportSigner} {
		for _, version := range []uint32{2, 3, 5} {
			t.Run(key.String()+"/v"+string(rune('0'+version)), func(t *testing.T) {
				nonce := freshNonce(t)
				ev := amd.report(t, reportOpts{reportData: nonce, key: key, version: version, policy: abi.SnpPolicy{SMT: true}})
				r, err := Verify(ctx, ev, Options{Roots: roots, CurrentTime: fakeTime, ReportData: &nonce, MinimumTCB: TCB{BootLoader: 3, SNP: 14, Microcode: 209}})
				if err != nil {
					t.Fatal(err)
				}
				if r.ReportData != nonce || r.SigningKey != SigningKey(key) || r.ProductLine != Milan || r.Version != version {
					t.Errorf("report_data, signing key %v, product line %q, version %d", r.SigningKey, r.ProductLine, r.Version)
				}
				if r.Measurement != [48]byte(bytes.Repeat([]byte{0x4d}, 48)) {
					t.Error("measurement")
				}
				if version >= 3 && (r.CPUIDFamily != 0x19 || r.CPUIDModel != 0x01 || r.CPUIDStepping != 0x01) {
					t.Errorf("CPUID %#x %#x %#x", r.CPUIDFamily, r.CPUIDModel, r.CPUIDStepping)
				}
				// The fake report does not verify against AMD's real roots.
				_, err = Verify(ctx, ev, Options{CurrentTime: fakeTime, ReportData: &nonce})
				if !errors.Is(err, ErrUntrustedRoot) {
					t.Fatalf("against the AMD roots: got %v, want ErrUntrustedRoot", err)
				}
				checkOneSentinel(t, err)
			})
		}
	}
}

func TestFakeReportDataMismatch(t *testing.T) {
	amd := newFakeAMD(t)
	nonce := freshNonce(t)
	ev := amd.report(t, reportOpts{reportData: nonce, policy: abi.SnpPolicy{SMT: true}})
	other := freshNonce(t)
	_, err := Verify(context.Background(), ev, Options{Roots: amd.roots(t), CurrentTime: fakeTime, ReportData: &other})
	if !errors.Is(err, ErrReportDataMismatch) {
		t.Fatalf("got %v, want ErrReportDataMismatch", err)
	}
	checkOneSentinel(t, err)
	var zero [64]byte
	if _, err := Verify(context.Background(), ev, Options{Roots: amd.roots(t), CurrentTime: fakeTime, ReportData: &zero}); !errors.Is(err, ErrReportDataMismatch) {
		t.Fatalf("zero report_data: got %v, want ErrReportDataMismatch", err)
	}
}

func TestFakeDebugPolicy(t *testing.T) {
	amd := newFakeAMD(t)
	roots := amd.roots(t)
	nonce := freshNonce(t)
	ev := amd.report(t, reportOpts{reportData: nonce, policy: abi.SnpPolicy{SMT: true, Debug: true}})
	_, err := Verify(context.Background(), ev, Options{Roots: roots, CurrentTime: fakeTime, ReportData: &nonce})
	if !errors.Is(err, ErrDebugNotAllowed) {
		t.Fatalf("got %v, want ErrDebugNotAllowed", err)
	}
	checkOneSentinel(t, err)
	r, err := Verify(context.Background(), ev, Options{Roots: roots, CurrentTime: fakeTime, ReportData: &nonce, AllowDebug: true})
	if err != nil {
		t.Fatalf("AllowDebug: %v", err)
	}
	if !r.Policy.Debug {
		t.Error("Policy.Debug not set")
	}
}

func TestFakeTCB(t *testing.T) {
	amd := newFakeAMD(t)
	roots := amd.roots(t)
	ctx := context.Background()
	ev := amd.report(t, reportOpts{policy: abi.SnpPolicy{SMT: true}})
	for name, min := range map[string]TCB{
		"bootloader": {BootLoader: 4},
		"tee":        {TEE: 1},
		"snp":        {SNP: 15},
		"microcode":  {Microcode: 210},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(ctx, ev, Options{Roots: roots, CurrentTime: fakeTime, MinimumTCB: min})
			if !errors.Is(err, ErrTCBTooLow) {
				t.Fatalf("got %v, want ErrTCBTooLow", err)
			}
			checkOneSentinel(t, err)
		})
	}
	// Provisional firmware: committed below current.
	lower := fakeTCB
	lower.SnpSpl--
	ev = amd.report(t, reportOpts{policy: abi.SnpPolicy{SMT: true}, committed: &lower})
	if _, err := Verify(ctx, ev, Options{Roots: roots, CurrentTime: fakeTime}); !errors.Is(err, ErrTCBTooLow) {
		t.Fatalf("provisional: got %v, want ErrTCBTooLow", err)
	}
	if _, err := Verify(ctx, ev, Options{Roots: roots, CurrentTime: fakeTime, PermitProvisionalFirmware: true}); err != nil {
		t.Fatalf("provisional permitted: %v", err)
	}
	// A report whose REPORTED_TCB is not the TCB the VCEK certifies.
	higher := fakeTCB
	higher.SnpSpl++
	ev = amd.report(t, reportOpts{policy: abi.SnpPolicy{SMT: true}, tcb: &higher})
	if _, err := Verify(ctx, ev, Options{Roots: roots, CurrentTime: fakeTime}); !errors.Is(err, ErrUntrustedRoot) {
		t.Fatalf("TCB not the VCEK's: got %v, want ErrUntrustedRoot", err)
	}
}

func TestFakeChipIDMismatch(t *testing.T) {
	amd := newFakeAMD(t)
	ev := amd.report(t, reportOpts{policy: abi.SnpPolicy{SMT: true}})
	ev.Report[0x1A0] ^= 1 // CHIP_ID
	amd.sign(t, ev.Report)
	_, err := Verify(context.Background(), ev, Options{Roots: amd.roots(t), CurrentTime: fakeTime})
	if !errors.Is(err, ErrUntrustedRoot) {
		t.Fatalf("got %v, want ErrUntrustedRoot", err)
	}
}

func TestFakeWrongKey(t *testing.T) {
	amd := newFakeAMD(t)
	roots := amd.roots(t)
	ev := amd.report(t, reportOpts{policy: abi.SnpPolicy{SMT: true}})
	// A VLEK certificate for a VCEK-signed report, and vice versa.
	ev.EndorsementKeyCert = amd.signer.Vlek.Raw
	if _, err := Verify(context.Background(), ev, Options{Roots: roots, CurrentTime: fakeTime}); err == nil {
		t.Fatal("VLEK certificate accepted for a VCEK-signed report")
	} else {
		checkOneSentinel(t, err)
	}
	// Signed by a key that is not the certificate's.
	ev = amd.report(t, reportOpts{policy: abi.SnpPolicy{SMT: true}})
	other := newFakeAMD(t)
	other.signer.Keys.Vcek = amd.signer.Keys.Vlek
	other.sign(t, ev.Report)
	_, err := Verify(context.Background(), ev, Options{Roots: roots, CurrentTime: fakeTime})
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v, want ErrBadSignature", err)
	}
}

// TestFakeNonCanonical sets bits that go-sev-guest's decoding drops (the
// high nibble of CPUID_STEP, which it keeps in 4 bits) and re-signs: the
// signature is good, but the report is not the encoding of its fields.
// Without the canonical check, flipping those bits in a genuine report would
// leave the signature valid, since go-sev-guest verifies the re-encoded
// bytes.
func TestFakeNonCanonical(t *testing.T) {
	amd := newFakeAMD(t)
	ev := amd.report(t, reportOpts{policy: abi.SnpPolicy{SMT: true}})
	_, p, err := parse(ev.Report)
	if err != nil {
		t.Fatal(err)
	}
	ev.Report[0x18A] |= 0x10 // CPUID_STEP
	again, err := abi.ReportToAbiBytes(mustProto(t, ev.Report))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again, ev.Report) {
		t.Skip("go-sev-guest now keeps the whole stepping byte")
	}
	_ = p
	amd.sign(t, ev.Report)
	if _, err := Verify(context.Background(), ev, Options{Roots: amd.roots(t), CurrentTime: fakeTime}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
	// And the same bit on a genuinely signed report (signature over the
	// original bytes) is refused too.
	ev = amd.report(t, reportOpts{policy: abi.SnpPolicy{SMT: true}})
	ev.Report[0x18A] |= 0x10
	if _, err := Verify(context.Background(), ev, Options{Roots: amd.roots(t), CurrentTime: fakeTime}); err == nil {
		t.Fatal("non-canonical stepping verifies")
	}
}

func mustProto(t *testing.T, raw []byte) *spb.Report {
	t.Helper()
	p, err := abi.ReportToProto(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFakeCertTable(t *testing.T) {
	amd := newFakeAMD(t)
	table, err := amd.signer.CertTableBytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []abi.ReportSigner{abi.VcekReportSigner, abi.VlekReportSigner} {
		nonce := freshNonce(t)
		ev := amd.report(t, reportOpts{reportData: nonce, key: key, policy: abi.SnpPolicy{SMT: true}})
		got, err := EvidenceFromCertTable(ev.Report, table)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.EndorsementKeyCert, ev.EndorsementKeyCert) {
			t.Fatalf("%v: wrong certificate taken from the table", key)
		}
		if _, err := Verify(context.Background(), got, Options{Roots: amd.roots(t), CurrentTime: fakeTime, ReportData: &nonce}); err != nil {
			t.Fatal(err)
		}
	}
	ev := amd.report(t, reportOpts{policy: abi.SnpPolicy{SMT: true}})
	for n := 0; n < len(table); n += 97 {
		if _, err := EvidenceFromCertTable(ev.Report, table[:n]); err == nil && n < 6*abi.CertTableEntrySize {
			t.Errorf("table truncated to %d bytes accepted", n)
		} else if err != nil {
			checkOneSentinel(t, err)
		}
	}
	_ = kds.TCBParts{}
}
