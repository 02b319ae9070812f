package enclave

import (
	"context"
	"fmt"

	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/wire"
	"github.com/asylo-go/asylo/seal"
)

// Sealer returns this enclave's sealer (package seal, docs/sealing.md), created on first use.
// Its root is the platform's: on sim, the software platform's secret, which derives keys only
// for the identity the loader measured (so the host-reported identity cannot be used to obtain
// another enclave's keys, though on sim the host can read the platform secret itself); on
// hardware back-ends, the CPU's derived keys or a key broker. It fails with an error wrapping
// ErrUnsupported on back-ends without a sealing root (inprocess).
func Sealer(ctx context.Context) (*seal.Sealer, error) {
	s := serverFrom(ctx)
	if s == nil {
		return nil, fmt.Errorf("enclave: Sealer called outside an enclave call")
	}
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	if s.sealer != nil {
		return s.sealer, nil
	}
	kid, err := s.hostCall(ctx, wire.OpSealKeyID, nil)
	if err != nil {
		return nil, fmt.Errorf("enclave: sealing root: %w", err)
	}
	r := &hostSealRoot{s: s, id: s.identity()}
	if len(kid) != len(r.keyID) {
		return nil, fmt.Errorf("enclave: %w: sealing key id of %d bytes", wire.ErrProtocol, len(kid))
	}
	copy(r.keyID[:], kid)
	sl, err := seal.New(ctx, r)
	if err != nil {
		return nil, err
	}
	s.sealer = sl
	return sl, nil
}

// SealToMeasurement seals plaintext so that only an enclave with this exact measurement (on the
// same platform) can unseal it. additionalData is authenticated, not encrypted.
func SealToMeasurement(ctx context.Context, plaintext, additionalData []byte) ([]byte, error) {
	sl, err := Sealer(ctx)
	if err != nil {
		return nil, err
	}
	return sl.SealToMeasurement(plaintext, additionalData)
}

// SealToSigner seals plaintext so that enclaves of the same signer and product id, at this SVN
// or a later one, can unseal it: data survives upgrades, and a rollback to an older SVN cannot
// read it. The enclave must be signed.
func SealToSigner(ctx context.Context, plaintext, additionalData []byte) ([]byte, error) {
	sl, err := Sealer(ctx)
	if err != nil {
		return nil, err
	}
	return sl.SealToSigner(plaintext, additionalData)
}

// Unseal opens a blob sealed by SealToMeasurement or SealToSigner. Blobs come back through the
// host: tampering is detected (seal.ErrAuthentication), as is a blob for another identity or a
// higher SVN (seal.ErrWrongIdentity, seal.ErrSVNTooHigh).
func Unseal(ctx context.Context, blob, additionalData []byte) ([]byte, error) {
	sl, err := Sealer(ctx)
	if err != nil {
		return nil, err
	}
	return sl.Unseal(ctx, blob, additionalData)
}

// hostSealRoot is a seal.Root whose key source is the platform, reached by host calls. It checks
// each request itself before asking, so a misbehaving caller inside the enclave fails fast; the
// platform checks again, against the identity it measured, and that check is the one that counts.
type hostSealRoot struct {
	s     *server
	id    identity.Identity
	keyID seal.KeyID
}

func (r *hostSealRoot) Identity() identity.Identity { return r.id }
func (r *hostSealRoot) KeyID() seal.KeyID           { return r.keyID }

func (r *hostSealRoot) DeriveKey(ctx context.Context, req seal.KeyRequest) ([]byte, error) {
	if err := seal.CheckKeyRequest(r.id, req); err != nil {
		return nil, err
	}
	b, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	key, err := r.s.hostCall(ctx, wire.OpSealKey, b)
	if err != nil {
		return nil, fmt.Errorf("enclave: deriving a sealing key: %w", err)
	}
	if len(key) != seal.PolicyKeySize {
		return nil, fmt.Errorf("enclave: %w: sealing key of %d bytes", wire.ErrProtocol, len(key))
	}
	return key, nil
}
