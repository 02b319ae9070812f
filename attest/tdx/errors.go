package tdx

import "github.com/asylo-go/asylo/attest"

// Sentinel errors. Every error returned by [Parse] and [Verify] wraps exactly
// one of them, with the detail of what failed in the message. Where the
// meaning is the same, a sentinel also matches the shared one in package
// attest (noted on each), so format-independent callers can test for those.
var (
	// ErrMalformed: the quote is not a version 4 quote as specified (too
	// short or too long, a size field that disagrees with the data, a
	// certification data type other than 6 (QE report) carrying type 5
	// (PCK certificate chain), bytes after the signed data, a PCK chain
	// that is not three PEM certificates or whose leaf lacks the SGX
	// extensions). Also matches attest.ErrMalformed.
	ErrMalformed = newError("tdx: malformed quote", attest.ErrMalformed)

	// ErrUnsupported: a well-formed quote this verifier does not handle:
	// a quote VERSION other than 4, an attestation key type other than 2
	// (ECDSA P-256), a TEE type other than TDX (0x81, e.g. an SGX quote),
	// or TD_ATTRIBUTES / XFAM bits go-tdx-guest's validate package does not
	// allow.
	ErrUnsupported = newError("tdx: unsupported quote", nil)

	// ErrCertificateExpired: a certificate of the PCK chain is expired or
	// not yet valid at the verification time. Also matches attest.ErrExpired.
	ErrCertificateExpired = newError("tdx: certificate expired or not yet valid", attest.ErrExpired)

	// ErrUntrustedRoot: the PCK certificate chain does not lead to a trusted
	// Intel SGX Root CA, or a certificate in it is not as Intel's PCK
	// profile says (names, ECDSA P-256 with SHA-256). Also matches
	// attest.ErrUntrustedRoot.
	ErrUntrustedRoot = newError("tdx: PCK certificate chain does not lead to a trusted Intel root", attest.ErrUntrustedRoot)

	// ErrBadSignature: the chain is good, but the QE report's signature does
	// not verify with the PCK key, the QE report does not bind the
	// attestation key, or the quote's signature does not verify with the
	// attestation key. Also matches attest.ErrBadSignature.
	ErrBadSignature = newError("tdx: bad quote signature", attest.ErrBadSignature)

	// ErrReportDataMismatch: the caller asked for REPORT_DATA (the nonce or
	// key binding) and the quote carries different bytes. Also matches
	// attest.ErrNonceMismatch.
	ErrReportDataMismatch = newError("tdx: report_data mismatch", attest.ErrNonceMismatch)

	// ErrDebugNotAllowed: TD_ATTRIBUTES.DEBUG is set (the host can read and
	// write the TD's memory) and Options.AllowDebug is false.
	ErrDebugNotAllowed = newError("tdx: TD is debuggable", nil)

	// ErrCollateral: Options.Getter is set and the collateral (TCB info, QE
	// identity, CRLs) could not be fetched, does not verify to the trusted
	// root, is expired, revokes the PCK chain, or does not rate the
	// platform's TCB and the quoting enclave UpToDate.
	ErrCollateral = newError("tdx: collateral check failed", nil)
)

// sentinelError is a package sentinel that also matches, with errors.Is, the
// shared sentinel of package attest with the same meaning.
type sentinelError struct {
	msg    string
	shared error
}

func newError(msg string, shared error) error { return &sentinelError{msg: msg, shared: shared} }

func (e *sentinelError) Error() string { return e.msg }

// Is reports whether target is the shared attest sentinel e stands for.
// (Identity with e itself is errors.Is's own first test.)
func (e *sentinelError) Is(target error) bool { return e.shared != nil && target == e.shared }
