// Package attest is asylo's one attestation vocabulary over every TEE: the Evidence an enclave
// produces, and the Claims a verifier extracts from it once every signature and chain checked out.
//
// Evidence formats live in their own packages (attest/sim, attest/nitro, attest/snp), each parsing
// at the field names of its specification and verifying against its vendor's roots; they all
// report verified Claims in this package's type, so policies are written once.
package attest

import (
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Platform names the kind of TEE that produced evidence.
type Platform string

// Platforms.
const (
	PlatformSim   Platform = "sim"
	PlatformSNP   Platform = "sev-snp"
	PlatformTDX   Platform = "tdx"
	PlatformNitro Platform = "nitro"
)

// Claims is what a verifier vouches for after checking evidence. Fields a platform does not
// define are zero; Measurements holds every measurement register under its native name.
type Claims struct {
	Platform Platform `json:"platform"`
	// Measurement is the primary code measurement: sim: SHA-256 of the image; SEV-SNP:
	// MEASUREMENT; TDX: MRTD; Nitro: PCR0.
	Measurement []byte `json:"measurement"`
	// Measurements holds every measurement register by its native name ("pcr0", "rtmr1", ...).
	Measurements map[string][]byte `json:"measurements,omitempty"`
	// SignerID, ProductID and SVN: the developer identity (sim: the signature manifest;
	// SEV-SNP: author key digest, family id, guest SVN).
	SignerID  []byte `json:"signer_id,omitempty"`
	ProductID uint32 `json:"product_id"`
	SVN       uint32 `json:"svn"`
	// Debug is true when the TEE allows the enclave to be debugged: its secrets are not protected.
	Debug bool `json:"debug"`
	// ConfigHash is load-time configuration the platform measured (SEV-SNP HOST_DATA, TDX
	// MRCONFIGID).
	ConfigHash []byte `json:"config_hash,omitempty"`
	// TCB holds firmware and security versions by name ("snp.bootloader", "sim.platform", ...).
	TCB map[string]uint64 `json:"tcb,omitempty"`
	// UserData is the (up to 64 bytes of) data the enclave bound into the evidence: a nonce, or
	// the hash of a key it holds.
	UserData []byte `json:"user_data,omitempty"`
	// IssuedAt is when the evidence was produced, by the platform's clock where it has one.
	IssuedAt time.Time `json:"issued_at"`
	// PlatformKeyID identifies the key that signed the evidence (sim: the SHA-256 of the
	// platform root's SubjectPublicKeyInfo), so policies can name a sim platform explicitly.
	PlatformKeyID []byte `json:"platform_key_id,omitempty"`
}

// MaxUserData is the most user data evidence can bind (the size of SEV-SNP and TDX REPORT_DATA).
const MaxUserData = 64

// Errors shared by every evidence format. A format package's errors match these with errors.Is
// where they mean the same thing.
var (
	ErrMalformed         = errors.New("attest: malformed evidence")
	ErrUnsupportedFormat = errors.New("attest: unsupported evidence format")
	ErrBadSignature      = errors.New("attest: evidence signature does not verify")
	ErrUntrustedRoot     = errors.New("attest: evidence does not chain to a trusted root")
	ErrExpired           = errors.New("attest: certificate or evidence expired or not yet valid")
	ErrNonceMismatch     = errors.New("attest: evidence does not bind the expected user data")
)

// Format names an evidence format, as a media type.
type Format string

// Formats.
const (
	FormatSim   Format = "application/vnd.asylo.sim-evidence+cose"
	FormatNitro Format = "application/vnd.aws.nitro-enclaves.attestation-document"
	FormatSNP   Format = "application/vnd.amd.sev-snp.attestation"
	FormatTDX   Format = "application/vnd.intel.tdx.quote"
)

// Evidence is evidence in a self-describing envelope: a RATS conceptual message wrapper (CMW)
// in its CBOR array form, [media type, value], so a verifier can dispatch on the format.
type Evidence struct {
	Format Format
	Data   []byte
}

// MaxEvidenceSize bounds an encoded Evidence.
const MaxEvidenceSize = 256 << 10

type cmw struct {
	_     struct{} `cbor:",toarray"`
	Type  string
	Value []byte
}

var decMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxArrayElements: 16,
		MaxMapPairs:      64,
		MaxNestedLevels:  4,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// Marshal encodes e.
func (e Evidence) Marshal() ([]byte, error) {
	if e.Format == "" {
		return nil, fmt.Errorf("%w: no format", ErrMalformed)
	}
	return cbor.Marshal(cmw{Type: string(e.Format), Value: e.Data})
}

// ParseEvidence decodes an envelope made by Marshal. It checks the structure only.
func ParseEvidence(b []byte) (Evidence, error) {
	if len(b) > MaxEvidenceSize {
		return Evidence{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(b), MaxEvidenceSize)
	}
	var w cmw
	if err := decMode.Unmarshal(b, &w); err != nil {
		return Evidence{}, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if w.Type == "" || len(w.Type) > 256 || len(w.Value) == 0 {
		return Evidence{}, fmt.Errorf("%w: envelope without a media type or a value", ErrMalformed)
	}
	return Evidence{Format: Format(w.Type), Data: w.Value}, nil
}

// Sentinel returns a new sentinel error with message msg that also matches shared (one of this
// package's errors, or nil) with errors.Is. Format packages define their errors with it, so a
// caller can test for the specific error or for its shared meaning.
func Sentinel(msg string, shared error) error { return &sentinel{msg: msg, shared: shared} }

type sentinel struct {
	msg    string
	shared error
}

func (e *sentinel) Error() string { return e.msg }

// Is reports whether target is the shared error e stands for (identity with e itself is
// errors.Is's own first test).
func (e *sentinel) Is(target error) bool { return e.shared != nil && target == e.shared }
