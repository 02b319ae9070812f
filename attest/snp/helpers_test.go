package snp

import (
	"bytes"
	"encoding/pem"
	"os"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	test "github.com/google/go-sev-guest/testing"

	"github.com/asylo-go/asylo/attest/internal/evidencetest"
)

// realTime is inside the validity of the real VCEK in testdata
// (2022-09-24T00:55:28Z to 2029-09-24T00:55:28Z) and of the Milan ASK/ARK.
var realTime = time.Date(2023, time.June, 1, 0, 0, 0, 0, time.UTC)

// realEvidence returns the real Milan report and VCEK from testdata.
func realEvidence(tb testing.TB) Evidence {
	tb.Helper()
	report, err := os.ReadFile("testdata/milan_attestation.bin")
	if err != nil {
		tb.Fatal(err)
	}
	vcek, err := os.ReadFile("testdata/milan_vcek.der")
	if err != nil {
		tb.Fatal(err)
	}
	return Evidence{Report: report, EndorsementKeyCert: vcek}
}

var sentinels = []error{
	ErrMalformed, ErrUnsupported, ErrCertificateUnavailable, ErrCertificateExpired, ErrUntrustedRoot,
	ErrBadSignature, ErrReportDataMismatch, ErrDebugNotAllowed, ErrTCBTooLow,
}

// checkOneSentinel fails unless err wraps exactly one of the package's
// sentinel errors.
func checkOneSentinel(tb testing.TB, err error) {
	tb.Helper()
	evidencetest.OneSentinel(tb, err, sentinels)
}

// fakeTime is inside the validity of the fake chain made at fakeCreation.
var (
	fakeCreation = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)
	fakeTime     = time.Date(2024, time.June, 1, 0, 0, 0, 0, time.UTC)
	fakeTCB      = kds.TCBParts{BlSpl: 3, TeeSpl: 0, SnpSpl: 14, UcodeSpl: 209}
	fakeHWID     = func() (h [abi.ChipIDSize]byte) {
		for i := range h {
			h[i] = byte(i + 1)
		}
		return h
	}()
	// Milan B1: family 0x19, model 0x01, stepping 1.
	fakeFMS = abi.FmsToCpuid1Eax(0x19, 0x01, 0x01)
)

// fakeAMD is go-sev-guest's test-only AMD: a fake ARK, ASK, ASVK, VCEK and
// VLEK (fixed test keys from github.com/google/go-sev-guest/testing), for a
// Milan chip with fakeHWID at fakeTCB.
type fakeAMD struct {
	signer *test.AmdSigner
}

func newFakeAMD(tb testing.TB) *fakeAMD {
	tb.Helper()
	tcb, err := kds.ComposeTCBParts(fakeTCB)
	if err != nil {
		tb.Fatal(err)
	}
	b := &test.AmdSignerBuilder{
		Keys:             test.DefaultAmdKeys(),
		ProductName:      "Milan-B1",
		CSPID:            "asylo-test",
		ArkCreationTime:  fakeCreation,
		AskCreationTime:  fakeCreation,
		AsvkCreationTime: fakeCreation,
		VcekCreationTime: fakeCreation,
		VlekCreationTime: fakeCreation,
		HWID:             fakeHWID,
		TCB:              tcb,
		// The builder leaves the TCB and HWID extensions zero; set them.
		VcekCustom: test.CertOverride{Extensions: test.CustomExtensions(fakeTCB, fakeHWID[:], "", "Milan-B1")},
		VlekCustom: test.CertOverride{Extensions: test.CustomExtensions(fakeTCB, nil, "asylo-test", "Milan-B1")},
	}
	s, err := b.TestOnlyCertChain()
	if err != nil {
		tb.Fatal(err)
	}
	return &fakeAMD{signer: s}
}

// roots returns Roots that trust only the fake ARK (with its ASK and ASVK).
func (f *fakeAMD) roots(tb testing.TB) *Roots {
	tb.Helper()
	r := NewRoots()
	for _, inter := range [][]byte{f.signer.Ask.Raw, f.signer.Asvk.Raw} {
		chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter}),
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.signer.Ark.Raw})...)
		if err := r.AddKDSCertChain(Milan, chain); err != nil {
			tb.Fatal(err)
		}
	}
	return r
}

// reportOpts shapes a fake report.
type reportOpts struct {
	reportData [64]byte
	policy     abi.SnpPolicy
	key        abi.ReportSigner
	version    uint32 // 0 means 3
	tcb        *kds.TCBParts
	committed  *kds.TCBParts
}

// report makes a fresh report as the AMD secure processor would and signs
// it with the fake VCEK (or VLEK), returning the evidence.
func (f *fakeAMD) report(tb testing.TB, o reportOpts) Evidence {
	tb.Helper()
	version := o.version
	if version == 0 {
		version = 3
	}
	raw := test.CreateRawReport(&test.TestReportOptions{
		ReportData: o.reportData[:],
		SignerInfo: abi.SignerInfo{SigningKey: o.key},
		FMS:        fakeFMS,
		Version:    version,
	})
	p, err := abi.ReportToProto(raw[:abi.ReportSize])
	if err != nil {
		tb.Fatal(err)
	}
	o.policy.ABIMajor, o.policy.ABIMinor = 1, 51
	p.Policy = abi.SnpPolicyToBytes(o.policy)
	tcb := fakeTCB
	if o.tcb != nil {
		tcb = *o.tcb
	}
	t, _ := kds.ComposeTCBParts(tcb)
	committed := t
	if o.committed != nil {
		committed, _ = kds.ComposeTCBParts(*o.committed)
	}
	p.CurrentTcb, p.ReportedTcb, p.LaunchTcb, p.CommittedTcb = uint64(t), uint64(t), uint64(t), uint64(committed)
	p.CurrentMajor, p.CurrentMinor, p.CurrentBuild = 1, 55, 21
	p.CommittedMajor, p.CommittedMinor, p.CommittedBuild = 1, 55, 21
	p.ChipId = bytes.Clone(fakeHWID[:])
	p.Measurement = bytes.Repeat([]byte{0x4d}, abi.MeasurementSize)
	p.PlatformInfo = 1 // SMT enabled
	if o.key == abi.VlekReportSigner {
		p.ChipId = make([]byte, abi.ChipIDSize) // VLEK reports do not identify the chip
	}
	report, err := abi.ReportToAbiBytes(p)
	if err != nil {
		tb.Fatal(err)
	}
	r, s, err := f.signer.Sign(abi.SignedComponent(report))
	if err != nil {
		tb.Fatal(err)
	}
	if err := abi.SetSignature(r, s, report); err != nil {
		tb.Fatal(err)
	}
	cert := f.signer.Vcek.Raw
	if o.key == abi.VlekReportSigner {
		cert = f.signer.Vlek.Raw
	}
	return Evidence{Report: report, EndorsementKeyCert: cert}
}

// sign re-signs a modified report with the fake VCEK.
func (f *fakeAMD) sign(tb testing.TB, report []byte) {
	tb.Helper()
	r, s, err := f.signer.Sign(abi.SignedComponent(report))
	if err != nil {
		tb.Fatal(err)
	}
	if err := abi.SetSignature(r, s, report); err != nil {
		tb.Fatal(err)
	}
}
