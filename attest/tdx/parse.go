package tdx

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// Limits and constants of the specification, all in one place.
const (
	// MinQuoteSize is the smallest version 4 quote go-tdx-guest accepts
	// (0x3FC bytes: header, body, signature data with empty variable parts).
	MinQuoteSize = abi.QuoteMinSize

	// MaxQuoteSize bounds a quote before it is parsed. Not in the spec: a
	// real quote is about 5 KiB (of which the PEM PCK chain is 3.7 KiB); the
	// variable parts (QE authentication data, PCK chain) are bounded by
	// their 16- and 32-bit size fields only.
	MaxQuoteSize = 64 << 10

	quoteVersion       = abi.QuoteVersion       // 4
	attestationKeyType = abi.AttestationKeyType // 2: ECDSA-256-with-P-256
	teeTypeTDX         = abi.TeeTDX             // 0x81

	// Header offsets (Intel 344426, A.3.1), read only to give versions and
	// key types this verifier does not handle their own error before
	// go-tdx-guest parses the quote.
	headerSize          = 0x30
	offVersion          = 0x00 // VERSION, 2 bytes LE
	offAttestationKeyTy = 0x02 // ATTESTATION_KEY_TYPE, 2 bytes LE
	offTEEType          = 0x04 // TEE_TYPE, 4 bytes LE

	// tdAttributesDebug is TD_ATTRIBUTES.TUD.DEBUG (bit 0): the TD runs in
	// debug mode and the host can read and write its memory.
	tdAttributesDebug = 1 << 0
)

// TDAttributes is TD_ATTRIBUTES, decoded (TDX module base spec, "TD
// Attributes Definition").
type TDAttributes struct {
	Raw           uint64
	Debug         bool // bit 0 (TUD.DEBUG): the host can debug the TD
	SEPTVEDisable bool // bit 28: EPT violations do not become #VE
	PKS           bool // bit 30: supervisor protection keys
	KL            bool // bit 31: key locker
	PerfMon       bool // bit 63: the TD may use perfmon
}

func tdAttributesFromRaw(v uint64) TDAttributes {
	return TDAttributes{
		Raw: v, Debug: v&tdAttributesDebug != 0, SEPTVEDisable: v&(1<<28) != 0,
		PKS: v&(1<<30) != 0, KL: v&(1<<31) != 0, PerfMon: v&(1<<63) != 0,
	}
}

// QEReport is the quoting enclave's SGX REPORT body from the QE
// certification data: who made the quote. Field names follow the SGX spec.
type QEReport struct {
	CPUSVN     [16]byte
	MiscSelect uint32
	Attributes [16]byte
	MRENCLAVE  [32]byte
	MRSIGNER   [32]byte
	ISVProdID  uint16
	ISVSVN     uint16
	ReportData [64]byte // SHA-256(attestation key || QE auth data), zero-padded
}

// PCKInfo is what the PCK certificate's SGX extensions say about the
// platform (Intel's PCK certificate profile), as go-tdx-guest's pcs package
// extracts them.
type PCKInfo struct {
	FMSPC  [6]byte  // family-model-stepping-platform-customSKU: selects the TCB info
	PCEID  [2]byte  // provisioning certification enclave ID
	PPID   [16]byte // platform provisioning ID (encrypted form as Intel issues it)
	PCESVN uint16   // PCE SVN the PCK was issued for
	CPUSVN [16]byte // CPU SVN the PCK was issued for
}

// Quote is a parsed version 4 TDX quote. Field names follow the
// specification's. A Quote returned by [Parse] is unverified; one returned
// by [Verify] has been checked as docs/evidence-tdx.md describes.
type Quote struct {
	// Header.
	Version            uint16   // VERSION: 4
	AttestationKeyType uint16   // ATTESTATION_KEY_TYPE: 2 = ECDSA P-256
	TEEType            uint32   // TEE_TYPE: 0x81 = TDX
	QESVN              uint16   // QE_SVN
	PCESVN             uint16   // PCE_SVN
	QEVendorID         [16]byte // QE_VENDOR_ID: 939a7233f79c4ca9940a0db3957f0607 for Intel's QE
	UserData           [20]byte // USER_DATA: set by the QE (platform identifier)

	// TD quote body (the TDREPORT fields the quote repeats).
	TEETCBSVN      [16]byte     // TEE_TCB_SVN: TDX module SVNs
	MRSEAM         [48]byte     // MRSEAM: measurement of the TDX module
	MRSignerSEAM   [48]byte     // MRSIGNERSEAM: signer of the TDX module (zero for Intel's)
	SEAMAttributes uint64       // SEAMATTRIBUTES
	TDAttributes   TDAttributes // TDATTRIBUTES
	XFAM           uint64       // XFAM: extended features available to the TD
	MRTD           [48]byte     // MRTD: measurement of the initial TD contents
	MRConfigID     [48]byte     // MRCONFIGID: set by the host at TD creation
	MROwner        [48]byte     // MROWNER: set by the host at TD creation
	MROwnerConfig  [48]byte     // MROWNERCONFIG: set by the host at TD creation
	RTMR           [4][48]byte  // RTMR0..RTMR3: runtime measurement registers
	ReportData     [64]byte     // REPORTDATA: chosen by the TD (nonce, key hash)

	// Signature data.
	AttestationKey [64]byte // ECDSA P-256 public key (X || Y) that signed the quote
	QEReport       QEReport // the quoting enclave's report, signed by the PCK key

	// PCK is the leaf of the PCK certificate chain the quote carries, and
	// PCKInfo its SGX extensions. PCKIntermediate and PCKRoot are the other
	// two certificates as carried; trust comes from [Options.Roots], not
	// from PCKRoot.
	PCK             *x509.Certificate
	PCKIntermediate *x509.Certificate
	PCKRoot         *x509.Certificate
	PCKInfo         PCKInfo

	// Raw is the quote exactly as given.
	Raw []byte

	verified bool // set by Verify only
}

// Parse decodes a version 4 TDX quote and checks its structure against the
// specification. It makes no trust decision: neither the certificate chain
// nor any signature is checked, so nothing in the result may be relied on.
// Use [Verify] for that.
func Parse(quote []byte) (*Quote, error) {
	q, _, err := parse(quote)
	return q, err
}

// parse returns the quote and go-tdx-guest's form of it, which verify and
// validate take.
func parse(raw []byte) (*Quote, *pb.QuoteV4, error) {
	// Step 1: size bounds and the header fields that select the format.
	if len(raw) < MinQuoteSize || len(raw) > MaxQuoteSize {
		return nil, nil, fmt.Errorf("%w: quote is %d bytes, want %d to %d", ErrMalformed, len(raw), MinQuoteSize, MaxQuoteSize)
	}
	if v := binary.LittleEndian.Uint16(raw[offVersion:]); v != quoteVersion {
		return nil, nil, fmt.Errorf("%w: quote VERSION %d, want %d", ErrUnsupported, v, quoteVersion)
	}
	if k := binary.LittleEndian.Uint16(raw[offAttestationKeyTy:]); k != attestationKeyType {
		return nil, nil, fmt.Errorf("%w: ATTESTATION_KEY_TYPE %d, want %d (ECDSA P-256)", ErrUnsupported, k, attestationKeyType)
	}
	if tee := binary.LittleEndian.Uint32(raw[offTEEType:]); tee != teeTypeTDX {
		return nil, nil, fmt.Errorf("%w: TEE_TYPE %#x, want %#x (TDX)", ErrUnsupported, tee, teeTypeTDX)
	}

	// Step 2: every field at the spec's offsets, sizes checked, by abi.
	p, err := quoteToProto(raw)
	if err != nil {
		return nil, nil, err
	}
	// Nothing may follow the signed data: those bytes are covered by no
	// signature. (abi keeps them as ExtraBytes and verify ignores them.)
	if len(p.GetExtraBytes()) != 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes after QUOTE_SIGNATURE_DATA (its length field says %d)", ErrMalformed, len(p.GetExtraBytes()), p.GetSignedDataSize())
	}
	// The quote must be the canonical encoding of its fields: go-tdx-guest
	// checks signatures over bytes it re-encodes from the decoded fields,
	// so a byte the decoding dropped or normalised would be malleable.
	again, err := abi.QuoteToAbiBytes(p)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !bytes.Equal(again, raw) {
		return nil, nil, fmt.Errorf("%w: quote is not in canonical form", ErrMalformed)
	}

	// Step 3: the PCK certificate chain (certification data type 5): the
	// PCK leaf, the PCK Platform CA, the Root CA, PEM, as go-tdx-guest's
	// verify package reads it (exactly three CERTIFICATE blocks, then at
	// most one NUL byte), and the leaf's SGX extensions.
	qe := p.GetSignedData().GetCertificationData().GetQeReportCertificationData()
	chain, err := parsePCKChain(qe.GetPckCertificateChainData().GetPckCertChain())
	if err != nil {
		return nil, nil, err
	}
	ext, err := pcs.PckCertificateExtensions(chain[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: PCK certificate SGX extensions: %v", ErrMalformed, err)
	}

	h, b, r := p.GetHeader(), p.GetTdQuoteBody(), qe.GetQeReport()
	q := &Quote{
		Version:            uint16(h.GetVersion()),
		AttestationKeyType: uint16(h.GetAttestationKeyType()),
		TEEType:            h.GetTeeType(),
		QESVN:              binary.LittleEndian.Uint16(h.GetQeSvn()),
		PCESVN:             binary.LittleEndian.Uint16(h.GetPceSvn()),
		SEAMAttributes:     binary.LittleEndian.Uint64(b.GetSeamAttributes()),
		TDAttributes:       tdAttributesFromRaw(binary.LittleEndian.Uint64(b.GetTdAttributes())),
		XFAM:               binary.LittleEndian.Uint64(b.GetXfam()),
		QEReport: QEReport{
			MiscSelect: r.GetMiscSelect(),
			ISVProdID:  uint16(r.GetIsvProdId()),
			ISVSVN:     uint16(r.GetIsvSvn()),
		},
		PCK:             chain[0],
		PCKIntermediate: chain[1],
		PCKRoot:         chain[2],
		PCKInfo:         PCKInfo{PCESVN: ext.TCB.PCESvn},
		Raw:             bytes.Clone(raw),
	}
	copy(q.QEVendorID[:], h.GetQeVendorId())
	copy(q.UserData[:], h.GetUserData())
	copy(q.TEETCBSVN[:], b.GetTeeTcbSvn())
	copy(q.MRSEAM[:], b.GetMrSeam())
	copy(q.MRSignerSEAM[:], b.GetMrSignerSeam())
	copy(q.MRTD[:], b.GetMrTd())
	copy(q.MRConfigID[:], b.GetMrConfigId())
	copy(q.MROwner[:], b.GetMrOwner())
	copy(q.MROwnerConfig[:], b.GetMrOwnerConfig())
	for i, rtmr := range b.GetRtmrs() {
		copy(q.RTMR[i][:], rtmr)
	}
	copy(q.ReportData[:], b.GetReportData())
	copy(q.AttestationKey[:], p.GetSignedData().GetEcdsaAttestationKey())
	copy(q.QEReport.CPUSVN[:], r.GetCpuSvn())
	copy(q.QEReport.Attributes[:], r.GetAttributes())
	copy(q.QEReport.MRENCLAVE[:], r.GetMrEnclave())
	copy(q.QEReport.MRSIGNER[:], r.GetMrSigner())
	copy(q.QEReport.ReportData[:], r.GetReportData())
	// pcs returns the octet-string extensions as hex; its sizes are checked.
	for _, f := range []struct {
		dst []byte
		hex string
	}{{q.PCKInfo.FMSPC[:], ext.FMSPC}, {q.PCKInfo.PCEID[:], ext.PCEID}, {q.PCKInfo.PPID[:], ext.PPID}} {
		if n, err := hex.Decode(f.dst, []byte(f.hex)); err != nil || n != len(f.dst) {
			return nil, nil, fmt.Errorf("%w: PCK certificate SGX extension %q", ErrMalformed, f.hex)
		}
	}
	copy(q.PCKInfo.CPUSVN[:], ext.TCB.CPUSvn)
	return q, p, nil
}

// quoteToProto is abi.QuoteToProto, made safe for hostile input:
// go-tdx-guest v0.3.1 slices past the end of its buffers, and so panics,
// when QUOTE_SIGNATURE_DATA_LEN is under 0x86 or the QE authentication
// data's size field points past the data (see docs/evidence-tdx.md). A
// panic there is a malformed quote.
func quoteToProto(raw []byte) (p *pb.QuoteV4, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("%w: a length field points outside the quote (go-tdx-guest: %v)", ErrMalformed, r)
		}
	}()
	v, err := abi.QuoteToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	p, ok := v.(*pb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("%w: go-tdx-guest returned %T, want a version 4 quote", ErrUnsupported, v)
	}
	return p, nil
}

// parsePCKChain decodes the PEM chain of certification data type 5 the way
// go-tdx-guest's verify package does, so that Parse refuses what Verify
// would: three CERTIFICATE blocks (leaf, intermediate, root), optionally
// followed by one NUL byte.
func parsePCKChain(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := b
	for i := 0; i < 3; i++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PCK certificate chain: want 3 PEM certificates (PCK, intermediate CA, root CA), found %d", ErrMalformed, i)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PCK certificate chain, certificate %d: %v", ErrMalformed, i, err)
		}
		certs = append(certs, c)
	}
	if len(rest) != 0 && !bytes.Equal(rest, []byte{0}) {
		return nil, fmt.Errorf("%w: PCK certificate chain: %d bytes after the third certificate", ErrMalformed, len(rest))
	}
	return certs, nil
}
