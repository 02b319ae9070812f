package enclave

import (
	"context"
	"crypto/sha256"
	"fmt"
)

// reservedPrefix starts the names of the runtime's own handlers.
const reservedPrefix = "asylo."

// AttestMethod is the runtime's built-in handler that lets a host obtain evidence for any
// enclave (`asylo attest`): its input is a verifier's nonce (at most 64 bytes) and its output
// evidence whose user data is NonceUserData(nonce).
const AttestMethod = "asylo.attest"

// builtinHandlers are served by every enclave.
var builtinHandlers = map[string]HandlerFunc{
	AttestMethod: attestNonce,
}

// nonceDomain separates user data made from a host-supplied nonce from every other use of
// user data. Without it a malicious host could pass the hash of a key of its own as the "nonce"
// and obtain evidence that seems to bind that key to this enclave (the binding attested TLS
// relies on). With it, such evidence binds SHA-256(nonceDomain || key hash), which no key
// binding ever uses.
const nonceDomain = "asylo-go attest nonce v1\x00"

// NonceUserData is the user data the built-in attest handler binds for nonce.
func NonceUserData(nonce []byte) []byte {
	h := sha256.New()
	h.Write([]byte(nonceDomain))
	h.Write(nonce)
	return h.Sum(nil)
}

func attestNonce(ctx context.Context, nonce []byte) ([]byte, error) {
	if len(nonce) > MaxUserData {
		return nil, fmt.Errorf("%w: nonce of %d bytes, at most %d", ErrInvalidArgument, len(nonce), MaxUserData)
	}
	return Attest(ctx, NonceUserData(nonce))
}
