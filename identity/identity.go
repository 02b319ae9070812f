// Package identity defines who an enclave is: the measurement of the exact
// image that runs, the signer that vouches for it, and the product and
// security version the signer assigned (docs/identity.md). Signer keys and the
// signature manifest that binds those together are in package
// identity/signing, which enclaves do not link: this package, which they do,
// depends on nothing beyond SHA-256 and hex.
package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// MeasurementSize is the size of a measurement in bytes (SHA-256).
const MeasurementSize = sha256.Size

// Measurement is the SHA-256 digest of the exact bytes of an enclave image.
// It equals `sha256sum enclave-binary`, so anyone can recompute it.
type Measurement [MeasurementSize]byte

// String returns the measurement in lower-case hex.
func (m Measurement) String() string { return hex.EncodeToString(m[:]) }

// IsZero reports whether m is all zero bytes (no measurement).
func (m Measurement) IsZero() bool { return m == Measurement{} }

// SignerID identifies a signing key: the SHA-256 of its PKIX (SubjectPublicKeyInfo) DER.
type SignerID [sha256.Size]byte

// String returns the signer id in lower-case hex.
func (s SignerID) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether s is all zero bytes (no signer).
func (s SignerID) IsZero() bool { return s == SignerID{} }

// Identity is what a host learns about an enclave when it loads it.
type Identity struct {
	// Backend names the back-end the enclave runs on ("sim", "inprocess", ...).
	Backend string `json:"backend"`
	// Measurement is the hash of the executed image. Zero for in-process enclaves.
	Measurement Measurement `json:"measurement"`
	// Signed reports whether a valid signature manifest vouched for the measurement.
	Signed bool `json:"signed"`
	// SignerID, ProductID and SVN come from the signature manifest; zero when unsigned.
	SignerID  SignerID `json:"signer_id"`
	ProductID uint32   `json:"product_id"`
	SVN       uint32   `json:"svn"`
	// Debug is true for enclaves signed as debug, unsigned enclaves loaded in
	// debug mode, and every in-process enclave. A debug enclave's secrets are
	// not protected; verifiers refuse it unless a policy allows debug.
	Debug bool `json:"debug"`
}

// MarshalText encodes m as hex, so JSON shows measurements readably.
func (m Measurement) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText decodes hex into m.
func (m *Measurement) UnmarshalText(b []byte) error { return decodeHex(m[:], b, "measurement") }

// MarshalText encodes s as hex.
func (s SignerID) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes hex into s.
func (s *SignerID) UnmarshalText(b []byte) error { return decodeHex(s[:], b, "signer id") }

func decodeHex(dst, src []byte, what string) error {
	if len(src) != 2*len(dst) {
		return fmt.Errorf("identity: %s must be %d hex characters, got %d", what, 2*len(dst), len(src))
	}
	if _, err := hex.Decode(dst, src); err != nil {
		return fmt.Errorf("identity: %s: %w", what, err)
	}
	return nil
}

// Measure hashes everything r yields and returns the measurement and the
// number of bytes read.
func Measure(r io.Reader) (Measurement, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return Measurement{}, n, fmt.Errorf("identity: measure: %w", err)
	}
	var m Measurement
	h.Sum(m[:0])
	return m, n, nil
}
