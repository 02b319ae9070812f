package seal

import "errors"

// Errors returned by this package. Callers test for them with errors.Is; the
// returned errors wrap them with the function that failed and what to do.
// No error message contains key material or plaintext.
var (
	// ErrMalformed means a blob or header does not follow docs/sealing.md:
	// wrong magic, reserved bits set, fields the policy forbids, or too short.
	ErrMalformed = errors.New("malformed sealed blob")

	// ErrUnsupportedVersion means the blob uses a format version or cipher
	// suite this code does not implement (it may come from a newer asylo).
	ErrUnsupportedVersion = errors.New("unsupported sealed blob version or cipher suite")

	// ErrAuthentication means the AES-GCM tag did not verify: the blob or the
	// additional data was changed, or the key is not the one it was sealed with.
	ErrAuthentication = errors.New("sealed blob failed authentication")

	// ErrWrongIdentity means the blob is bound to another enclave: another
	// measurement, signer, product or debug flag; or the enclave has no
	// identity for the policy (an unsigned enclave cannot seal to a signer).
	// It is detected from the header before any decryption, and the Root
	// refuses such key requests as well.
	ErrWrongIdentity = errors.New("sealed blob bound to another enclave identity")

	// ErrSVNTooHigh means the blob was sealed at a higher SVN than the
	// enclave's own: an older enclave version never unseals newer data.
	ErrSVNTooHigh = errors.New("sealed blob SVN above the enclave's SVN")

	// ErrUnknownKey means the blob was sealed under a root key this Root does
	// not hold: another machine's platform secret, or a retired broker key.
	ErrUnknownKey = errors.New("sealed blob key id not held by this root")

	// ErrTooLarge means a plaintext above MaxPlaintextSize, or a blob that
	// would hold one.
	ErrTooLarge = errors.New("plaintext too large to seal")

	// ErrInvalidSecret means a root secret is not exactly 32 bytes or is all zero.
	ErrInvalidSecret = errors.New("invalid sealing root secret")
)
