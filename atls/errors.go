package atls

import (
	"crypto/subtle"
	"errors"

	"github.com/asylo-go/asylo/attest"
)

// Errors a refused handshake or fresh proof returns (docs/atls.md, "Errors"). Errors from package
// verify and package policy are passed through, wrapped.
var (
	// ErrNoEvidence: the peer sent no certificate, or one without the tagged-evidence extension.
	ErrNoEvidence = errors.New("atls: peer presented no attestation evidence")
	// ErrMalformedExtension: the extension, the claims map or a fresh proof does not parse.
	ErrMalformedExtension = attest.Sentinel("atls: malformed attestation extension", attest.ErrMalformed)
	// ErrKeyMismatch: the claims bind a different key from the one the peer used in the handshake.
	ErrKeyMismatch = errors.New("atls: evidence binds a different key")
	// ErrClaimsMismatch: the evidence's user data is not the hash of the claims map, or a fresh
	// proof comes from another enclave than the certificate.
	ErrClaimsMismatch = attest.Sentinel("atls: evidence does not bind the claims map", attest.ErrNonceMismatch)
	// ErrStale: a certificate outside its validity, evidence too old or from the future, or a
	// fresh proof made for another session.
	ErrStale = errors.New("atls: stale or replayed attestation")
)

func constantTimeEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
