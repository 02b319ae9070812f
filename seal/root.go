package seal

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"

	"github.com/asylo-go/asylo/identity"
)

// PolicyKeySize is the size of the policy keys a Root derives.
const PolicyKeySize = 32

// A Root is the trusted key source of one enclave (docs/sealing.md §4): the
// sim platform secret, a key broker reached over an attested channel, or (in
// the future) the SEV-SNP firmware.
//
// The Root, not the format code, is the security boundary: DeriveKey must
// refuse every request that is not for the enclave it serves, so that code
// inside the enclave that calls it directly still cannot obtain another
// identity's key or a newer SVN's key (as SGX EGETKEY refuses an ISVSVN above
// the enclave's). CheckKeyRequest implements those checks.
type Root interface {
	// Identity returns the identity of the enclave the root serves.
	Identity() identity.Identity

	// KeyID names the root key new blobs are sealed under.
	KeyID() KeyID

	// DeriveKey returns the PolicyKeySize-byte policy key for req. It refuses
	// a debug flag, measurement, signer or product id that is not the
	// enclave's own (ErrWrongIdentity), an SVN above the enclave's own
	// (ErrSVNTooHigh), and a key id it does not hold (ErrUnknownKey).
	DeriveKey(ctx context.Context, req KeyRequest) ([]byte, error)
}

// KeyRequest names the inputs of a policy key (docs/sealing.md §4). Fields
// that the policy does not bind must be zero.
type KeyRequest struct {
	Policy Policy
	Debug  bool
	// Measurement is the bound measurement (PolicyMeasurement only).
	Measurement identity.Measurement
	// SignerID, ProductID and SVN are bound by PolicySigner only.
	SignerID  identity.SignerID
	ProductID uint32
	SVN       uint32
	// KeyID selects the root key.
	KeyID KeyID
}

// requestSize is the length of the request encoding of docs/sealing.md §4.1.
const requestSize = 50

// appendTo appends the 50-byte encoding of docs/sealing.md §4.1 to b.
func (r *KeyRequest) appendTo(b []byte) []byte {
	flags := byte(0)
	if r.Debug {
		flags = flagDebug
	}
	b = append(b, byte(r.Policy), flags)
	if r.Policy == PolicySigner {
		b = append(b, r.SignerID[:]...)
	} else {
		b = append(b, r.Measurement[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, r.ProductID)
	b = binary.BigEndian.AppendUint32(b, r.SVN)
	return append(b, r.KeyID[:]...)
}

// CheckKeyRequest reports whether a root serving the enclave with identity
// enclave may derive the policy key for req. It checks everything of
// docs/sealing.md §4 except the key id, which only the root knows. Roots
// (including remote key brokers, against the identity they verified by
// attestation) must call it before deriving anything.
func CheckKeyRequest(enclave identity.Identity, req KeyRequest) error {
	if err := checkIdentity(enclave); err != nil {
		return err
	}
	if req.Debug != enclave.Debug {
		return fmt.Errorf("seal: key request: %w: debug flag %t, enclave's is %t", ErrWrongIdentity, req.Debug, enclave.Debug)
	}
	switch req.Policy {
	case PolicyMeasurement:
		if !req.SignerID.IsZero() || req.ProductID != 0 || req.SVN != 0 {
			return fmt.Errorf("seal: key request: %w: signer id, product id and svn must be zero under the measurement policy", ErrMalformed)
		}
		if req.Measurement != enclave.Measurement {
			return fmt.Errorf("seal: key request: %w: measurement %s, enclave's is %s", ErrWrongIdentity, req.Measurement, enclave.Measurement)
		}
	case PolicySigner:
		if !req.Measurement.IsZero() {
			return fmt.Errorf("seal: key request: %w: measurement must be zero under the signer policy", ErrMalformed)
		}
		if !enclave.Signed {
			return fmt.Errorf("seal: key request: %w: the enclave is unsigned and has no signer identity; seal to the measurement instead", ErrWrongIdentity)
		}
		if req.SignerID != enclave.SignerID {
			return fmt.Errorf("seal: key request: %w: signer %s, enclave's is %s", ErrWrongIdentity, req.SignerID, enclave.SignerID)
		}
		if req.ProductID != enclave.ProductID {
			return fmt.Errorf("seal: key request: %w: product id %d, enclave's is %d", ErrWrongIdentity, req.ProductID, enclave.ProductID)
		}
		// The SVN rule: keys exist for every SVN up to the enclave's own,
		// never above (an old, vulnerable version must not read what a
		// patched version sealed).
		if req.SVN > enclave.SVN {
			return fmt.Errorf("seal: key request: %w: svn %d, enclave's is %d; only a newer enclave version can unseal this", ErrSVNTooHigh, req.SVN, enclave.SVN)
		}
	default:
		return fmt.Errorf("seal: key request: %w: invalid policy %d", ErrMalformed, uint8(req.Policy))
	}
	return nil
}

// checkIdentity rejects identities that cannot seal consistently.
func checkIdentity(id identity.Identity) error {
	if id.Measurement.IsZero() && !id.Debug {
		return fmt.Errorf("seal: %w: zero measurement on a non-debug enclave", ErrWrongIdentity)
	}
	if id.Signed && id.SignerID.IsZero() {
		return fmt.Errorf("seal: %w: signed enclave with a zero signer id", ErrWrongIdentity)
	}
	if !id.Signed && (!id.SignerID.IsZero() || id.ProductID != 0 || id.SVN != 0) {
		return fmt.Errorf("seal: %w: unsigned enclave with signer fields set", ErrWrongIdentity)
	}
	return nil
}

// secretDeriver derives key ids and policy keys from one 32-byte secret
// (docs/sealing.md §4.2). It is shared by the software root and the
// in-process key broker.
type secretDeriver struct {
	prk   []byte
	keyID KeyID
}

// Labels of docs/sealing.md §4.2.
const (
	labelRootSalt  = "asylo-seal/v1 root"
	labelKeyID     = "asylo-seal/v1 key id"
	labelPolicyKey = "asylo-seal/v1 policy key\x00"
)

// SecretSize is the size of a sealing root secret (platform secret or broker master key).
const SecretSize = 32

func newSecretDeriver(secret []byte) (*secretDeriver, error) {
	if len(secret) != SecretSize {
		return nil, fmt.Errorf("seal: %w: %d bytes, need exactly %d random bytes", ErrInvalidSecret, len(secret), SecretSize)
	}
	if subtle.ConstantTimeCompare(secret, make([]byte, SecretSize)) == 1 {
		return nil, fmt.Errorf("seal: %w: all zero; the platform must generate it with a CSPRNG", ErrInvalidSecret)
	}
	// HKDF-SHA-256 (RFC 5869): a fixed-label salt for domain separation; the
	// secret is the only input keying material. The secret is not kept, only
	// the PRK, from which it cannot be recovered.
	prk, err := hkdf.Extract(sha256.New, secret, []byte(labelRootSalt))
	if err != nil {
		return nil, fmt.Errorf("seal: deriving root key: %w", err)
	}
	kid, err := hkdf.Expand(sha256.New, prk, labelKeyID, len(KeyID{}))
	if err != nil {
		return nil, fmt.Errorf("seal: deriving key id: %w", err)
	}
	return &secretDeriver{prk: prk, keyID: KeyID(kid)}, nil
}

// deriveFor checks req against the enclave identity and the key id, then
// derives the policy key. The checks come first: nothing is derived for a
// request the enclave is not entitled to.
func (d *secretDeriver) deriveFor(ctx context.Context, enclave identity.Identity, req KeyRequest) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("seal: derive key: %w", err)
	}
	if err := CheckKeyRequest(enclave, req); err != nil {
		return nil, err
	}
	if req.KeyID != d.keyID {
		return nil, fmt.Errorf("seal: key request: %w: key id %s, this root holds %s (sealed on another platform or under another broker key?)", ErrUnknownKey, req.KeyID, d.keyID)
	}
	info := make([]byte, 0, len(labelPolicyKey)+requestSize)
	info = append(info, labelPolicyKey...)
	info = req.appendTo(info)
	k, err := hkdf.Expand(sha256.New, d.prk, string(info), PolicyKeySize)
	if err != nil {
		return nil, fmt.Errorf("seal: derive key: %w", err)
	}
	return k, nil
}

// SoftwareRoot is a Root computed in software from a 32-byte platform secret.
// The sim back-end uses it.
//
// On sim the secret lives on the platform (host) side, and the enclave is an
// ordinary process: anyone with root on the host can read the secret and
// unseal everything. Sim sealing is not secure against root; it exercises the
// format and the policies, nothing more.
type SoftwareRoot struct {
	d  *secretDeriver
	id identity.Identity
}

// NewSoftwareRoot returns a root serving the enclave with identity enclave,
// keyed by the 32-byte platform secret. It refuses a secret that is not
// exactly 32 bytes or is all zero (ErrInvalidSecret), and an inconsistent
// identity (ErrWrongIdentity). The secret is not retained.
func NewSoftwareRoot(secret []byte, enclave identity.Identity) (*SoftwareRoot, error) {
	d, err := newSecretDeriver(secret)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(enclave); err != nil {
		return nil, err
	}
	return &SoftwareRoot{d: d, id: enclave}, nil
}

// Identity returns the identity of the enclave the root serves.
func (r *SoftwareRoot) Identity() identity.Identity { return r.id }

// KeyID returns the fingerprint of the platform secret.
func (r *SoftwareRoot) KeyID() KeyID { return r.d.keyID }

// DeriveKey derives the policy key for req after the checks of CheckKeyRequest
// and the key id check.
func (r *SoftwareRoot) DeriveKey(ctx context.Context, req KeyRequest) ([]byte, error) {
	return r.d.deriveFor(ctx, r.id, req)
}
