package signing

import "errors"

// Errors returned by this package. Every error it returns for one of these
// conditions wraps the matching sentinel, so callers test with errors.Is; the
// message of the returned error adds what exactly failed. Messages never hold
// private key bytes.
var (
	// ErrMalformedManifest means a signature manifest does not follow
	// docs/identity.md §4: too large, not JSON, a missing, duplicate or unknown
	// member, a wrong format string, or a field of the wrong type or length.
	ErrMalformedManifest = errors.New("signing: malformed signature manifest")

	// ErrBadSignature means a well-formed manifest's Ed25519 signature does not
	// verify under its signer key: the manifest was altered after signing.
	ErrBadSignature = errors.New("signing: signature manifest signature does not verify")

	// ErrMeasurementMismatch means an authentic manifest vouches for a
	// different measurement than the image being checked: it belongs to
	// another build.
	ErrMeasurementMismatch = errors.New("signing: signature manifest is for a different measurement")

	// ErrUnsupportedKey means a key is not an unencrypted Ed25519 key (for
	// example RSA, ECDSA, or an encrypted PKCS#8 file).
	ErrUnsupportedKey = errors.New("signing: unsupported key (only unencrypted Ed25519 keys are supported)")

	// ErrMalformedKey means a signing key could not be parsed or is unusable
	// (not PEM, not PKCS#8, a nil or zero SigningKey, a seed of the wrong size).
	ErrMalformedKey = errors.New("signing: malformed signing key")

	// ErrZeroMeasurement means an all-zero measurement was given to sign or
	// verify; all zero means "no measurement" and is never signed.
	ErrZeroMeasurement = errors.New("signing: measurement is all zero")
)
