package nitro

import "github.com/asylo-go/asylo/attest"

// Sentinel errors. Every error returned by [Parse] and [Verify] wraps exactly
// one of them, with the detail of what failed in the message.
var (
	// ErrMalformed: the document is not a COSE_Sign1 attestation document
	// as specified (bad CBOR, a missing, unknown, null or mistyped field, a
	// value out of its allowed range, a certificate that does not parse).
	ErrMalformed = attest.Sentinel("nitro: malformed attestation document", attest.ErrMalformed)

	// ErrUnsupportedAlgorithm: the protected header names a signing
	// algorithm other than ES384, or the leaf certificate does not hold a
	// P-384 ECDSA key.
	ErrUnsupportedAlgorithm = attest.Sentinel("nitro: unsupported signature algorithm", attest.ErrMalformed)

	// ErrUntrustedRoot: the certificate chain does not lead to one of the
	// trusted roots, or cabundle is not the ordered chain the spec requires.
	ErrUntrustedRoot = attest.Sentinel("nitro: certificate chain does not lead to a trusted root", attest.ErrUntrustedRoot)

	// ErrCertificateExpired: a certificate in the chain is expired or not
	// yet valid at the verification time.
	ErrCertificateExpired = attest.Sentinel("nitro: certificate expired or not yet valid", attest.ErrExpired)

	// ErrInvalidCertificate: the chain leads to a trusted root but a
	// certificate in it is not fit for its place (basic constraints, path
	// length, key usage, unhandled critical extension).
	ErrInvalidCertificate = attest.Sentinel("nitro: certificate not valid for its place in the chain", attest.ErrUntrustedRoot)

	// ErrBadSignature: the COSE_Sign1 signature does not verify with the key
	// of the leaf certificate.
	ErrBadSignature = attest.Sentinel("nitro: bad COSE signature", attest.ErrBadSignature)

	// ErrNonceMismatch: the caller asked for a nonce and the document does
	// not carry that exact nonce.
	ErrNonceMismatch = attest.Sentinel("nitro: nonce mismatch", attest.ErrNonceMismatch)
)
