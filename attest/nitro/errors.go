package nitro

import "errors"

// Sentinel errors. Every error returned by [Parse] and [Verify] wraps exactly
// one of them, with the detail of what failed in the message.
var (
	// ErrMalformed: the document is not a COSE_Sign1 attestation document
	// as specified (bad CBOR, a missing, unknown, null or mistyped field, a
	// value out of its allowed range, a certificate that does not parse).
	ErrMalformed = errors.New("nitro: malformed attestation document")

	// ErrUnsupportedAlgorithm: the protected header names a signing
	// algorithm other than ES384, or the leaf certificate does not hold a
	// P-384 ECDSA key.
	ErrUnsupportedAlgorithm = errors.New("nitro: unsupported signature algorithm")

	// ErrUntrustedRoot: the certificate chain does not lead to one of the
	// trusted roots, or cabundle is not the ordered chain the spec requires.
	ErrUntrustedRoot = errors.New("nitro: certificate chain does not lead to a trusted root")

	// ErrCertificateExpired: a certificate in the chain is expired or not
	// yet valid at the verification time.
	ErrCertificateExpired = errors.New("nitro: certificate expired or not yet valid")

	// ErrInvalidCertificate: the chain leads to a trusted root but a
	// certificate in it is not fit for its place (basic constraints, path
	// length, key usage, unhandled critical extension).
	ErrInvalidCertificate = errors.New("nitro: certificate not valid for its place in the chain")

	// ErrBadSignature: the COSE_Sign1 signature does not verify with the key
	// of the leaf certificate.
	ErrBadSignature = errors.New("nitro: bad COSE signature")

	// ErrNonceMismatch: the caller asked for a nonce and the document does
	// not carry that exact nonce.
	ErrNonceMismatch = errors.New("nitro: nonce mismatch")
)
