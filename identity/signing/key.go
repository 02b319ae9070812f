package signing

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"strings"

	"github.com/asylo-go/asylo/identity"
)

// Signer keys are Ed25519 (RFC 8032): deterministic signatures with no nonce
// to get wrong, one parameter set, 32-byte keys and 64-byte signatures, and a
// constant-time implementation in the standard library. docs/identity.md §6.

// MaxKeyPEMSize bounds the input of ParseSigningKeyPEM. It leaves room for
// large RSA keys so that those are reported as unsupported, not as oversized.
const MaxKeyPEMSize = 64 << 10

// pemTypePrivateKey is the PEM block type of an unencrypted PKCS#8 key.
const pemTypePrivateKey = "PRIVATE KEY"

// spkiEd25519Prefix is the DER of an Ed25519 SubjectPublicKeyInfo up to the
// key bytes (RFC 8410 §4): SEQUENCE { SEQUENCE { OID 1.3.101.112 },
// BIT STRING (0 unused bits) }. The full SPKI is this prefix and the 32-byte key.
var spkiEd25519Prefix = []byte{
	0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
}

// spkiEd25519Size is the size of an Ed25519 SubjectPublicKeyInfo DER.
const spkiEd25519Size = 12 + ed25519.PublicKeySize

// oidEd25519 is id-Ed25519 (RFC 8410 §3).
var oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}

// SigningKey is an Ed25519 private key that signs enclave manifests. Its
// zero value is not a usable key. Formatting a SigningKey with the fmt
// package prints only its signer id, never key bytes.
type SigningKey struct {
	priv ed25519.PrivateKey
}

// GenerateKey returns a new signing key with a seed read from rand. If rand
// is nil, a secure random source (crypto/rand) is used; pass nil outside tests.
func GenerateKey(rand io.Reader) (*SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("signing: generate signing key: reading randomness: %w", err)
	}
	return &SigningKey{priv: priv}, nil
}

// NewSigningKeyFromSeed returns the signing key for a 32-byte RFC 8032 seed
// (the private key as RFC 8032 defines it). It exists for test vectors and
// for keys held elsewhere; prefer GenerateKey.
func NewSigningKeyFromSeed(seed []byte) (*SigningKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrMalformedKey, len(seed), ed25519.SeedSize)
	}
	return &SigningKey{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// valid reports whether k holds a usable key.
func (k *SigningKey) valid() bool {
	return k != nil && len(k.priv) == ed25519.PrivateKeySize
}

// Public returns the key's Ed25519 public key, or nil if k is nil or zero.
func (k *SigningKey) Public() ed25519.PublicKey {
	if !k.valid() {
		return nil
	}
	return k.priv.Public().(ed25519.PublicKey)
}

// SignerID returns the signer id of k (SignerIDOf its public key), or the
// zero SignerID if k is nil or zero.
func (k *SigningKey) SignerID() identity.SignerID {
	return SignerIDOf(k.Public())
}

// MarshalPEM returns k as an unencrypted PKCS#8 PEM block of type
// "PRIVATE KEY" (the format of `openssl genpkey -algorithm ed25519`). The
// result is secret: write it to a file only the signer can read. It returns
// nil if k is nil or zero.
func (k *SigningKey) MarshalPEM() []byte {
	if !k.valid() {
		return nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		// Unreachable: x509 always encodes a well-sized Ed25519 key.
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypePrivateKey, Bytes: der})
}

// Format implements fmt.Formatter so that no verb (%v, %+v, %#v, %x, %s, ...)
// ever prints key bytes, whether k is formatted as a value or a pointer.
func (k SigningKey) Format(f fmt.State, verb rune) {
	if !k.valid() {
		io.WriteString(f, "signing.SigningKey(invalid)")
		return
	}
	fmt.Fprintf(f, "signing.SigningKey(signer %s)", k.SignerID())
}

// ParseSigningKeyPEM parses a signing key written by MarshalPEM or by
// `openssl genpkey -algorithm ed25519`: exactly one unencrypted PKCS#8 PEM
// block of type "PRIVATE KEY", with only whitespace around it
// (docs/identity.md §2). Keys of other algorithms and encrypted keys are
// refused with ErrUnsupportedKey; anything else unparsable with ErrMalformedKey.
func ParseSigningKeyPEM(data []byte) (*SigningKey, error) {
	const hint = "; write the key with `openssl genpkey -algorithm ed25519` or signing.GenerateKey"
	if len(data) > MaxKeyPEMSize {
		return nil, fmt.Errorf("%w: input is %d bytes, more than the %d-byte limit for a key file", ErrMalformedKey, len(data), MaxKeyPEMSize)
	}
	// Step 1: exactly one PEM block, nothing but whitespace around it.
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return nil, fmt.Errorf("%w: no PEM block at the start of the input"+hint, ErrMalformedKey)
	}
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, fmt.Errorf("%w: PEM block could not be decoded (bad base64 or missing END line)"+hint, ErrMalformedKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the PEM block; a key file holds exactly one key", ErrMalformedKey)
	}
	// Step 2: the block type must be unencrypted PKCS#8.
	switch {
	case block.Type == pemTypePrivateKey:
	case block.Type == "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w: the key is encrypted; decrypt it with `openssl pkey -in KEY -out PLAIN`", ErrUnsupportedKey)
	case strings.HasSuffix(block.Type, " PRIVATE KEY"):
		return nil, fmt.Errorf("%w: PEM block is %q, not an Ed25519 PKCS#8 key"+hint, ErrUnsupportedKey, clip(block.Type))
	default:
		return nil, fmt.Errorf("%w: PEM block is %q, want %q"+hint, ErrMalformedKey, clip(block.Type), pemTypePrivateKey)
	}
	if len(block.Headers) != 0 {
		// Proc-Type/DEK-Info headers mean legacy OpenSSL encryption.
		return nil, fmt.Errorf("%w: PEM headers (legacy encryption) are not supported; write an unencrypted PKCS#8 key"+hint, ErrUnsupportedKey)
	}
	// Step 3: one DER element (crypto/x509 ignores trailing bytes), PKCS#8,
	// and the algorithm must be Ed25519.
	var outer asn1.RawValue
	if rest, err := asn1.Unmarshal(block.Bytes, &outer); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: PEM body is not a single DER structure"+hint, ErrMalformedKey)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if oid, ok := pkcs8Algorithm(block.Bytes); ok && !oid.Equal(oidEd25519) {
			return nil, fmt.Errorf("%w: PKCS#8 key has algorithm %s"+hint, ErrUnsupportedKey, oidName(oid))
		}
		// x509 errors describe structure only, never key bytes.
		return nil, fmt.Errorf("%w: PKCS#8: %v"+hint, ErrMalformedKey, err)
	}
	switch key := key.(type) {
	case ed25519.PrivateKey:
		return &SigningKey{priv: key}, nil
	case *rsa.PrivateKey:
		return nil, fmt.Errorf("%w: this is an RSA key"+hint, ErrUnsupportedKey)
	case *ecdsa.PrivateKey:
		return nil, fmt.Errorf("%w: this is an ECDSA key"+hint, ErrUnsupportedKey)
	case *ecdh.PrivateKey:
		return nil, fmt.Errorf("%w: this is an X25519 (key agreement) key"+hint, ErrUnsupportedKey)
	default:
		return nil, fmt.Errorf("%w: this is a %T key"+hint, ErrUnsupportedKey, key)
	}
}

// pkcs8Algorithm returns the algorithm OID of a PKCS#8 PrivateKeyInfo
// (RFC 5208 §5: SEQUENCE { version, AlgorithmIdentifier, ... }), so that keys
// the x509 package does not know (Ed448, ...) are reported as unsupported.
func pkcs8Algorithm(der []byte) (asn1.ObjectIdentifier, bool) {
	var seq asn1.RawValue
	if _, err := asn1.Unmarshal(der, &seq); err != nil || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, false
	}
	var version int
	rest, err := asn1.Unmarshal(seq.Bytes, &version)
	if err != nil {
		return nil, false
	}
	var algo pkix.AlgorithmIdentifier
	if _, err := asn1.Unmarshal(rest, &algo); err != nil {
		return nil, false
	}
	return algo.Algorithm, true
}

// SignerIDOf returns the signer id of an Ed25519 public key: the SHA-256 of
// its PKIX SubjectPublicKeyInfo DER (docs/identity.md §2), equal to
// `openssl pkey -pubout -outform DER | sha256sum`. It returns the zero
// SignerID if pub is not ed25519.PublicKeySize bytes.
func SignerIDOf(pub ed25519.PublicKey) identity.SignerID {
	if len(pub) != ed25519.PublicKeySize {
		return identity.SignerID{}
	}
	return identity.SignerID(sha256.Sum256(marshalSPKI(pub)))
}

// marshalSPKI returns the SubjectPublicKeyInfo DER of a 32-byte Ed25519 key.
func marshalSPKI(pub ed25519.PublicKey) []byte {
	der := make([]byte, 0, spkiEd25519Size)
	der = append(der, spkiEd25519Prefix...)
	return append(der, pub...)
}

// parseSPKI parses an Ed25519 SubjectPublicKeyInfo. DER is unique, so the
// only valid encoding is the fixed prefix and 32 key bytes. A valid SPKI of
// another algorithm is reported with ErrUnsupportedKey.
func parseSPKI(der []byte) (ed25519.PublicKey, error) {
	if len(der) == spkiEd25519Size && bytes.HasPrefix(der, spkiEd25519Prefix) {
		return ed25519.PublicKey(bytes.Clone(der[len(spkiEd25519Prefix):])), nil
	}
	// Only on this error path: find out whether it is another algorithm.
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		var alg string
		switch pub.(type) {
		case *rsa.PublicKey:
			alg = "RSA"
		case *ecdsa.PublicKey:
			alg = "ECDSA"
		case *ecdh.PublicKey:
			alg = "X25519"
		default:
			alg = fmt.Sprintf("%T", pub)
		}
		return nil, fmt.Errorf("%w: signer public key is %s", ErrUnsupportedKey, alg)
	}
	if oid, ok := spkiAlgorithm(der); ok && !oid.Equal(oidEd25519) {
		return nil, fmt.Errorf("%w: signer public key has algorithm %s", ErrUnsupportedKey, oidName(oid))
	}
	return nil, fmt.Errorf("signer public key is not a %d-byte Ed25519 SubjectPublicKeyInfo (got %d bytes)", spkiEd25519Size, len(der))
}

// spkiAlgorithm returns the algorithm OID of a SubjectPublicKeyInfo.
func spkiAlgorithm(der []byte) (asn1.ObjectIdentifier, bool) {
	var seq asn1.RawValue
	if _, err := asn1.Unmarshal(der, &seq); err != nil || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, false
	}
	var algo pkix.AlgorithmIdentifier
	if _, err := asn1.Unmarshal(seq.Bytes, &algo); err != nil {
		return nil, false
	}
	return algo.Algorithm, true
}

// oidName names the RFC 8410 algorithms crypto/x509 does not parse.
func oidName(oid asn1.ObjectIdentifier) string {
	switch oid.String() {
	case "1.3.101.110":
		return "X25519 (1.3.101.110)"
	case "1.3.101.111":
		return "X448 (1.3.101.111)"
	case "1.3.101.113":
		return "Ed448 (1.3.101.113)"
	}
	return oid.String()
}

// clip shortens untrusted text quoted in an error message.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
