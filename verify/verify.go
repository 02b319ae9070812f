// Package verify is the relying party's one entry point: it takes evidence in its envelope
// (attest.Evidence), dispatches on the format to the verifier of that platform, and returns the
// verified claims in the shared attest.Claims form, ready for a policy (package policy).
//
// Every platform verifier is strict and offline by default: vendor roots are embedded (AMD,
// Intel, AWS), nothing is fetched, and sim evidence is refused unless the caller names a sim
// platform root.
package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/attest/nitro"
	simev "github.com/asylo-go/asylo/attest/sim"
	"github.com/asylo-go/asylo/attest/snp"
	"github.com/asylo-go/asylo/attest/tdx"
)

// Options are the verifier's inputs besides the evidence. The zero value verifies hardware
// evidence against the embedded vendor roots, now, without any user-data expectation, refuses
// debug TEEs, and refuses all sim evidence.
type Options struct {
	// SimRoots are the sim platform roots to accept (`asylo platform export-root`). Empty
	// refuses sim evidence.
	SimRoots []*x509.Certificate
	// NitroRoots, SNPRoots and TDXRoots replace the embedded vendor roots when non-nil.
	NitroRoots *x509.CertPool
	SNPRoots   *snp.Roots
	TDXRoots   *x509.CertPool
	// CurrentTime is the verification time; zero means time.Now().
	CurrentTime time.Time
	// UserData, if non-nil, must be what the enclave bound into the evidence (at most 64 bytes;
	// for SEV-SNP and TDX compared against REPORT_DATA padded with zeros to 64 bytes).
	UserData []byte
	// AllowDebug lets platform verifiers accept debug TEEs (SEV-SNP, TDX); the claims still say
	// Debug, and policies still refuse debug unless they allow it.
	AllowDebug bool
}

// Evidence verifies raw (an encoded attest.Evidence) and returns its claims.
func Evidence(ctx context.Context, raw []byte, opts Options) (*attest.Claims, error) {
	ev, err := attest.ParseEvidence(raw)
	if err != nil {
		return nil, err
	}
	if len(opts.UserData) > attest.MaxUserData {
		return nil, fmt.Errorf("verify: expected user data of %d bytes exceeds %d", len(opts.UserData), attest.MaxUserData)
	}
	now := opts.CurrentTime
	if now.IsZero() {
		now = time.Now()
	}
	switch ev.Format {
	case attest.FormatSim:
		return simev.Verify(ev.Data, simev.Options{Roots: opts.SimRoots, CurrentTime: now, UserData: opts.UserData})
	case attest.FormatNitro:
		d, err := nitro.Verify(ev.Data, nitro.Options{Roots: opts.NitroRoots, CurrentTime: now})
		if err != nil {
			return nil, err
		}
		c := NitroClaims(d)
		if opts.UserData != nil && !bytes.Equal(opts.UserData, d.UserData) {
			return nil, fmt.Errorf("verify: %w: nitro user_data %x", attest.ErrNonceMismatch, d.UserData)
		}
		return c, nil
	case attest.FormatSNP:
		sev, err := DecodeSNP(ev.Data)
		if err != nil {
			return nil, err
		}
		r, err := snp.Verify(ctx, sev, snp.Options{Roots: opts.SNPRoots, CurrentTime: now, ReportData: reportData(opts.UserData), AllowDebug: opts.AllowDebug})
		if err != nil {
			return nil, err
		}
		return SNPClaims(r), nil
	case attest.FormatTDX:
		q, err := tdx.Verify(ctx, ev.Data, tdx.Options{Roots: opts.TDXRoots, CurrentTime: now, ReportData: reportData(opts.UserData), AllowDebug: opts.AllowDebug})
		if err != nil {
			return nil, err
		}
		return q.Claims(), nil
	}
	return nil, fmt.Errorf("%w: %q", attest.ErrUnsupportedFormat, ev.Format)
}

func reportData(ud []byte) *[64]byte {
	if ud == nil {
		return nil
	}
	var rd [64]byte
	copy(rd[:], ud)
	return &rd
}

// snpEvidence is the SEV-SNP value inside the envelope: [report, endorsement key certificate].
type snpEvidence struct {
	_      struct{} `cbor:",toarray"`
	Report []byte
	Cert   []byte
}

// EncodeSNP encodes SEV-SNP evidence as the envelope's value (docs/evidence-snp.md).
func EncodeSNP(ev snp.Evidence) ([]byte, error) {
	return cbor.Marshal(snpEvidence{Report: ev.Report, Cert: ev.EndorsementKeyCert})
}

var snpDec = func() cbor.DecMode {
	m, err := cbor.DecOptions{IndefLength: cbor.IndefLengthForbidden, TagsMd: cbor.TagsForbidden, MaxArrayElements: 16}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// DecodeSNP decodes the SEV-SNP value of an envelope.
func DecodeSNP(b []byte) (snp.Evidence, error) {
	var e snpEvidence
	if err := snpDec.Unmarshal(b, &e); err != nil {
		return snp.Evidence{}, fmt.Errorf("%w: SEV-SNP evidence: %v", attest.ErrMalformed, err)
	}
	return snp.Evidence{Report: e.Report, EndorsementKeyCert: e.Cert}, nil
}

// NitroClaims maps a verified Nitro attestation document to claims. PCR0 (the enclave image) is
// the measurement; a Nitro enclave in debug mode reports all-zero PCRs.
func NitroClaims(d *nitro.Document) *attest.Claims {
	c := &attest.Claims{
		Platform:     attest.PlatformNitro,
		Measurements: map[string][]byte{},
		UserData:     d.UserData,
		IssuedAt:     d.Timestamp,
	}
	for i, v := range d.PCRs {
		c.Measurements[fmt.Sprintf("pcr%d", i)] = v
	}
	c.Measurement = d.PCRs[0]
	c.Debug = len(c.Measurement) > 0 && bytes.Count(c.Measurement, []byte{0}) == len(c.Measurement)
	if len(d.CABundle) > 0 {
		id := sha256.Sum256(d.CABundle[0].RawSubjectPublicKeyInfo)
		c.PlatformKeyID = id[:]
	}
	return c
}

// SNPClaims maps a verified SEV-SNP report to claims: MEASUREMENT, the ID key digest as signer,
// GUEST_SVN, the DEBUG policy bit, HOST_DATA as the configuration hash, REPORT_DATA, and the
// reported TCB.
func SNPClaims(r *snp.Report) *attest.Claims {
	c := &attest.Claims{
		Platform:    attest.PlatformSNP,
		Measurement: r.Measurement[:],
		Measurements: map[string][]byte{
			"measurement": r.Measurement[:],
			"family_id":   r.FamilyID[:],
			"image_id":    r.ImageID[:],
		},
		SignerID:   r.IDKeyDigest[:],
		SVN:        r.GuestSVN,
		Debug:      r.Policy.Debug,
		ConfigHash: r.HostData[:],
		UserData:   r.ReportData[:],
		TCB: map[string]uint64{
			"snp.reported_tcb": r.ReportedTCB.Raw,
			"snp.bootloader":   uint64(r.ReportedTCB.BootLoader),
			"snp.tee":          uint64(r.ReportedTCB.TEE),
			"snp.snp":          uint64(r.ReportedTCB.SNP),
			"snp.microcode":    uint64(r.ReportedTCB.Microcode),
		},
	}
	chip := sha256.Sum256(r.ChipID[:])
	c.PlatformKeyID = chip[:]
	return c
}
