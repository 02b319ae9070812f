package snp

import "github.com/asylo-go/asylo/attest"

// Sentinel errors. Every error returned by [Parse] and [Verify] wraps exactly
// one of them, with the detail of what failed in the message.
var (
	// ErrMalformed: the report is not an ATTESTATION_REPORT as specified
	// (wrong length, non-zero reserved bytes, reserved SIGNING_KEY or policy
	// bits), or the endorsement key certificate or certificate table does
	// not parse.
	ErrMalformed = attest.Sentinel("snp: malformed attestation evidence", attest.ErrMalformed)

	// ErrUnsupported: a well-formed report this verifier does not handle: a
	// report VERSION outside 2..5, a SIGNATURE_ALGO other than ECDSA P-384
	// with SHA-384, a report signed by no key (SIGNING_KEY = none), or a
	// product line with no trusted roots.
	ErrUnsupported = attest.Sentinel("snp: unsupported attestation report", attest.ErrUnsupportedFormat)

	// ErrCertificateUnavailable: the evidence carries no endorsement key
	// certificate and none could be fetched (fetching is off unless
	// Options.Getter is set).
	ErrCertificateUnavailable = attest.Sentinel("snp: endorsement key certificate unavailable", nil)

	// ErrCertificateExpired: the endorsement key certificate, or the ASK/ASVK
	// or ARK it chains to, is expired or not yet valid at the verification
	// time.
	ErrCertificateExpired = attest.Sentinel("snp: certificate expired or not yet valid", attest.ErrExpired)

	// ErrUntrustedRoot: the endorsement key certificate does not chain to a
	// trusted AMD root, is not a certificate AMD's KDS issues (subject,
	// issuer, key type, extensions), or does not certify this report's chip
	// and reported TCB.
	ErrUntrustedRoot = attest.Sentinel("snp: endorsement key does not lead to a trusted AMD root", attest.ErrUntrustedRoot)

	// ErrBadSignature: the report's signature does not verify with the key
	// of the endorsement key certificate.
	ErrBadSignature = attest.Sentinel("snp: bad report signature", attest.ErrBadSignature)

	// ErrReportDataMismatch: the caller asked for REPORT_DATA (the nonce or
	// key binding) and the report carries different bytes.
	ErrReportDataMismatch = attest.Sentinel("snp: report_data mismatch", attest.ErrNonceMismatch)

	// ErrDebugNotAllowed: the guest policy allows debugging (the host can
	// read and write guest memory) and Options.AllowDebug is false.
	ErrDebugNotAllowed = attest.Sentinel("snp: guest policy allows debugging", nil)

	// ErrTCBTooLow: the reported TCB is below Options.MinimumTCB in some
	// component, or the committed TCB, build or API version differs from
	// the current one (provisional firmware that could be rolled back).
	ErrTCBTooLow = attest.Sentinel("snp: TCB below the required minimum", nil)
)
