package snp

import (
	"bytes"
	"crypto/x509"
	"fmt"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
)

// Limits and constants of the specification, all in one place.
const (
	// ReportSize is the size of an ATTESTATION_REPORT (0x4A0 bytes). The
	// evidence must carry exactly this many bytes.
	ReportSize = abi.ReportSize

	// MaxCertificateSize bounds the endorsement key certificate before it is
	// parsed. Not in the spec: real VCEKs are about 1.4 KiB.
	MaxCertificateSize = 8192

	// MaxCertTableSize bounds a GHCB certificate table given to
	// [EvidenceFromCertTable]. Not in the spec: a table of VCEK, ASK, ARK
	// and a few extras is under 16 KiB.
	MaxCertTableSize = 64 << 10

	minReportVersion = abi.MinSupportedReportVersion // 2
	maxReportVersion = abi.MaxSupportedReportVersion // 5
	sigAlgoP384      = abi.SignEcdsaP384Sha384       // SIGNATURE_ALGO 1
)

// SigningKey is the key that signed the report, from SIGNER_INFO.SIGNING_KEY.
type SigningKey uint8

const (
	// VCEK is the Versioned Chip Endorsement Key, unique to the chip and
	// TCB, certified by AMD's KDS under the ASK.
	VCEK SigningKey = SigningKey(abi.VcekReportSigner)
	// VLEK is the Versioned Loaded Endorsement Key, provisioned to a cloud
	// provider, certified under the ASVK.
	VLEK SigningKey = SigningKey(abi.VlekReportSigner)
	// NoSigningKey: the report is not signed. Parse accepts it; Verify
	// refuses it with ErrUnsupported.
	NoSigningKey SigningKey = SigningKey(abi.NoneReportSigner)
)

func (k SigningKey) String() string { return abi.ReportSigner(k).String() }

// TCB is a TCB_VERSION. Raw is the 64-bit value as the report carries it;
// the named parts are decoded with the Milan/Genoa layout, as go-sev-guest
// v0.15.0 decodes them (BootLoader byte 0, TEE byte 1, SNP byte 6,
// Microcode byte 7). Turin places FMC, BootLoader, TEE and SNP in bytes 0-3,
// so for Turin the named parts other than Microcode are not meaningful; use
// Raw.
type TCB struct {
	Raw        uint64
	BootLoader uint8
	TEE        uint8
	SNP        uint8
	Microcode  uint8
}

func tcbFromRaw(v uint64) TCB {
	p := kds.DecomposeTCBVersion(kds.TCBVersion(v))
	return TCB{Raw: v, BootLoader: p.BlSpl, TEE: p.TeeSpl, SNP: p.SnpSpl, Microcode: p.UcodeSpl}
}

// Policy is the guest POLICY the guest owner set at launch, decoded.
type Policy struct {
	Raw                  uint64
	ABIMinor, ABIMajor   uint8
	SMT                  bool // symmetric multithreading allowed
	MigrateMA            bool // a migration agent may be associated
	Debug                bool // the host may debug (read/write) the guest
	SingleSocket         bool
	CXLAllowed           bool
	MemAES256XTS         bool
	RAPLDisabled         bool
	CipherTextHidingDRAM bool
	PageSwapDisabled     bool
}

// PlatformInfo is PLATFORM_INFO, decoded.
type PlatformInfo struct {
	Raw                         uint64
	SMTEnabled                  bool
	TSMEEnabled                 bool
	ECCEnabled                  bool
	RAPLDisabled                bool
	CiphertextHidingDRAMEnabled bool
	AliasCheckComplete          bool
	TIOEnabled                  bool
}

// Report is a parsed ATTESTATION_REPORT. Field names follow the
// specification's. A Report returned by [Parse] is unverified; one returned
// by [Verify] has been checked as docs/evidence-snp.md describes.
type Report struct {
	Version         uint32 // VERSION: 2..5
	GuestSVN        uint32 // GUEST_SVN
	Policy          Policy // POLICY
	FamilyID        [16]byte
	ImageID         [16]byte
	VMPL            uint32 // VMPL the report was requested from (0..3)
	SignatureAlgo   uint32 // SIGNATURE_ALGO: 1 = ECDSA P-384 with SHA-384
	CurrentTCB      TCB
	PlatformInfo    PlatformInfo
	SigningKey      SigningKey // SIGNER_INFO.SIGNING_KEY
	MaskChipKey     bool       // SIGNER_INFO.MASK_CHIP_KEY: CHIP_ID is zero
	AuthorKeyEn     bool       // SIGNER_INFO.AUTHOR_KEY_EN
	ReportData      [64]byte   // REPORT_DATA: chosen by the guest (nonce, key hash)
	Measurement     [48]byte   // MEASUREMENT: launch digest
	HostData        [32]byte   // HOST_DATA: chosen by the host at launch
	IDKeyDigest     [48]byte   // ID_KEY_DIGEST: SHA-384 of the ID block key
	AuthorKeyDigest [48]byte   // AUTHOR_KEY_DIGEST
	ReportID        [32]byte
	ReportIDMA      [32]byte
	ReportedTCB     TCB
	// CPUIDFamily, CPUIDModel, CPUIDStepping: CPUID_FAM_ID, CPUID_MOD_ID,
	// CPUID_STEP (report version 3 and later; zero in version 2).
	CPUIDFamily, CPUIDModel, CPUIDStepping         uint8
	ChipID                                         [64]byte
	CommittedTCB                                   TCB
	CurrentBuild, CurrentMinor, CurrentMajor       uint8
	CommittedBuild, CommittedMinor, CommittedMajor uint8
	LaunchTCB                                      TCB
	// LaunchMitVector, CurrentMitVector: mitigation vectors (version 5).
	LaunchMitVector, CurrentMitVector uint64

	// Raw is the report exactly as given, 1184 bytes.
	Raw []byte

	// Set by Verify only: the endorsement key certificate (VCEK or VLEK)
	// whose key signed the report, and the product line of the root it
	// chains to.
	EndorsementKey *x509.Certificate
	ProductLine    string
}

// Parse decodes an ATTESTATION_REPORT and checks its structure against the
// specification. It makes no trust decision: neither the certificate chain
// nor the signature is checked, so nothing in the result may be relied on.
// Use [Verify] for that.
func Parse(report []byte) (*Report, error) {
	r, _, err := parse(report)
	return r, err
}

// parse returns the report and go-sev-guest's form of it, which verify and
// validate take.
func parse(raw []byte) (*Report, *spb.Report, error) {
	// Exactly 1184 bytes. (abi.ReportToProto ignores trailing bytes, so the
	// length is checked here.)
	if len(raw) != ReportSize {
		return nil, nil, fmt.Errorf("%w: report is %d bytes, want %d", ErrMalformed, len(raw), ReportSize)
	}
	// Fields at the spec's offsets; reserved bytes, the reserved policy bits
	// and the reserved SIGNING_KEY values are refused by abi.
	p, err := abi.ReportToProto(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// Versions and algorithms this verifier knows.
	if p.Version < minReportVersion || p.Version > maxReportVersion {
		return nil, nil, fmt.Errorf("%w: report VERSION %d, want %d..%d", ErrUnsupported, p.Version, minReportVersion, maxReportVersion)
	}
	if p.SignatureAlgo != sigAlgoP384 {
		return nil, nil, fmt.Errorf("%w: SIGNATURE_ALGO %d, want %d (ECDSA P-384 with SHA-384)", ErrUnsupported, p.SignatureAlgo, sigAlgoP384)
	}
	// The report must be the canonical encoding of its fields: go-sev-guest
	// checks the signature over the bytes it re-encodes from the decoded
	// fields, so any byte the decoding drops or normalises would otherwise
	// be malleable.
	again, err := abi.ReportToAbiBytes(p)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !bytes.Equal(again, raw) {
		return nil, nil, fmt.Errorf("%w: report is not in canonical form (a byte outside every field is set)", ErrMalformed)
	}
	info, err := abi.ParseSignerInfo(p.SignerInfo)
	if err != nil { // already checked by ReportToProto
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	pol, err := abi.ParseSnpPolicy(p.Policy)
	if err != nil { // already checked by ReportToProto
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	plat, err := abi.ParseSnpPlatformInfo(p.PlatformInfo)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: PLATFORM_INFO: %v", ErrMalformed, err)
	}

	r := &Report{
		Version:       p.Version,
		GuestSVN:      p.GuestSvn,
		VMPL:          p.Vmpl,
		SignatureAlgo: p.SignatureAlgo,
		CurrentTCB:    tcbFromRaw(p.CurrentTcb),
		SigningKey:    SigningKey(info.SigningKey),
		MaskChipKey:   info.MaskChipKey,
		AuthorKeyEn:   info.AuthorKeyEn,
		ReportedTCB:   tcbFromRaw(p.ReportedTcb),
		CommittedTCB:  tcbFromRaw(p.CommittedTcb),
		LaunchTCB:     tcbFromRaw(p.LaunchTcb),
		Policy: Policy{
			Raw: p.Policy, ABIMinor: pol.ABIMinor, ABIMajor: pol.ABIMajor,
			SMT: pol.SMT, MigrateMA: pol.MigrateMA, Debug: pol.Debug, SingleSocket: pol.SingleSocket,
			CXLAllowed: pol.CXLAllowed, MemAES256XTS: pol.MemAES256XTS, RAPLDisabled: pol.RAPLDis,
			CipherTextHidingDRAM: pol.CipherTextHidingDRAM, PageSwapDisabled: pol.PageSwapDisable,
		},
		PlatformInfo: PlatformInfo{
			Raw: p.PlatformInfo, SMTEnabled: plat.SMTEnabled, TSMEEnabled: plat.TSMEEnabled,
			ECCEnabled: plat.ECCEnabled, RAPLDisabled: plat.RAPLDisabled,
			CiphertextHidingDRAMEnabled: plat.CiphertextHidingDRAMEnabled,
			AliasCheckComplete:          plat.AliasCheckComplete, TIOEnabled: plat.TIOEnabled,
		},
		CurrentBuild: uint8(p.CurrentBuild), CurrentMinor: uint8(p.CurrentMinor), CurrentMajor: uint8(p.CurrentMajor),
		CommittedBuild: uint8(p.CommittedBuild), CommittedMinor: uint8(p.CommittedMinor), CommittedMajor: uint8(p.CommittedMajor),
		LaunchMitVector:  p.LaunchMitVector,
		CurrentMitVector: p.CurrentMitVector,
		Raw:              bytes.Clone(raw),
	}
	if p.Version >= abi.ReportVersion3 {
		r.CPUIDFamily, r.CPUIDModel, r.CPUIDStepping = abi.FmsFromCpuid1Eax(p.Cpuid1EaxFms)
	}
	copy(r.FamilyID[:], p.FamilyId)
	copy(r.ImageID[:], p.ImageId)
	copy(r.ReportData[:], p.ReportData)
	copy(r.Measurement[:], p.Measurement)
	copy(r.HostData[:], p.HostData)
	copy(r.IDKeyDigest[:], p.IdKeyDigest)
	copy(r.AuthorKeyDigest[:], p.AuthorKeyDigest)
	copy(r.ReportID[:], p.ReportId)
	copy(r.ReportIDMA[:], p.ReportIdMa)
	copy(r.ChipID[:], p.ChipId)
	return r, p, nil
}
