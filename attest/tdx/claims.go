package tdx

import (
	"bytes"
	"crypto/sha256"
	"strconv"

	"github.com/asylo-go/asylo/attest"
)

// Claims maps a verified quote to asylo's shared claims: Measurement is
// MRTD; Measurements holds "mrtd", "rtmr0".."rtmr3" and "mrseam";
// ConfigHash is MRCONFIGID; Debug is TD_ATTRIBUTES.DEBUG; UserData is
// REPORTDATA; TCB holds "tdx.tee_tcb_svn.0".."tdx.tee_tcb_svn.15" (the
// bytes of TEE_TCB_SVN), "tdx.qe_svn" and "tdx.pce_svn" (from the header);
// PlatformKeyID is the SHA-256 of the PCK certificate's
// SubjectPublicKeyInfo. A quote has no timestamp, signer identity, product
// ID or SVN of the TD: IssuedAt, SignerID, ProductID and SVN are zero.
//
// Claims returns nil for a quote that did not come from [Verify]: a parsed
// quote vouches for nothing.
func (q *Quote) Claims() *attest.Claims {
	if q == nil || !q.verified {
		return nil
	}
	c := &attest.Claims{
		Platform:    attest.PlatformTDX,
		Measurement: bytes.Clone(q.MRTD[:]),
		Measurements: map[string][]byte{
			"mrtd":   bytes.Clone(q.MRTD[:]),
			"mrseam": bytes.Clone(q.MRSEAM[:]),
		},
		Debug:      q.TDAttributes.Debug,
		ConfigHash: bytes.Clone(q.MRConfigID[:]),
		TCB: map[string]uint64{
			"tdx.qe_svn":  uint64(q.QESVN),
			"tdx.pce_svn": uint64(q.PCESVN),
		},
		UserData: bytes.Clone(q.ReportData[:]),
	}
	for i := range q.RTMR {
		c.Measurements["rtmr"+strconv.Itoa(i)] = bytes.Clone(q.RTMR[i][:])
	}
	for i, svn := range q.TEETCBSVN {
		c.TCB["tdx.tee_tcb_svn."+strconv.Itoa(i)] = uint64(svn)
	}
	spki := sha256.Sum256(q.PCK.RawSubjectPublicKeyInfo)
	c.PlatformKeyID = spki[:]
	return c
}
