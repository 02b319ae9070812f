package seal

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/asylo-go/asylo/identity"
)

// Format constants of docs/sealing.md §2.
const (
	// Version is the format version this package writes and reads.
	Version = 1
	// HeaderSize is the size of the authenticated header in bytes.
	HeaderSize = 88
	// SaltSize is the size of the per-blob random salt.
	SaltSize = 32
	// TagSize is the size of the AES-GCM authentication tag.
	TagSize = 16
	// Overhead is how many bytes a blob is longer than its plaintext.
	Overhead = HeaderSize + TagSize
	// MaxPlaintextSize is the largest plaintext Seal accepts (1 GiB).
	// Sealing is for secrets and small state; bulk data belongs in secure
	// storage, which has random access.
	MaxPlaintextSize = 1 << 30
)

// magic is the first four bytes of every blob: ASCII "ASLD" (asylo sealed).
var magic = [4]byte{'A', 'S', 'L', 'D'}

// Header field offsets (docs/sealing.md §2).
const (
	offMagic     = 0
	offVersion   = 4
	offPolicy    = 5
	offSuite     = 6
	offFlags     = 7
	offIdentity  = 8
	offProductID = 40
	offSVN       = 44
	offKeyID     = 48
	offSalt      = 56
)

const flagDebug = 0x01

// Policy says which identity a blob is bound to. The zero value is invalid.
type Policy uint8

const (
	// PolicyMeasurement binds to the exact enclave image: same measurement
	// and debug flag (SGX MRENCLAVE policy).
	PolicyMeasurement Policy = 1
	// PolicySigner binds to the signer id, product id and debug flag, and to
	// the SVN: an enclave at SVN n unseals blobs sealed at SVN <= n (SGX
	// MRSIGNER policy).
	PolicySigner Policy = 2
)

func (p Policy) valid() bool { return p == PolicyMeasurement || p == PolicySigner }

// String returns "measurement", "signer" or "Policy(n)".
func (p Policy) String() string {
	switch p {
	case PolicyMeasurement:
		return "measurement"
	case PolicySigner:
		return "signer"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// Suite names the key derivation and AEAD of a blob. The zero value is invalid.
type Suite uint8

// SuiteHKDFSHA256AES256GCM is HKDF-SHA-256 per-blob keys with AES-256-GCM
// (docs/sealing.md §3), the only suite of format version 1.
const SuiteHKDFSHA256AES256GCM Suite = 1

// KeyID names the root key (platform secret, broker master key) a blob's keys
// were derived from. It is a one-way fingerprint, not key material.
type KeyID [8]byte

// String returns the key id in lower-case hex.
func (k KeyID) String() string { return hex.EncodeToString(k[:]) }

// Header is the parsed, authenticated header of a sealed blob. ParseHeader
// does not authenticate it: its fields are only trustworthy after Unseal
// succeeded on the same blob.
type Header struct {
	Version uint8
	Policy  Policy
	Suite   Suite
	// Debug reports whether a debug enclave sealed the blob.
	Debug bool
	// Measurement is the bound measurement (PolicyMeasurement only).
	Measurement identity.Measurement
	// SignerID and ProductID are the bound signer identity, and SVN is the
	// SVN the blob was sealed at (PolicySigner only).
	SignerID  identity.SignerID
	ProductID uint32
	SVN       uint32
	KeyID     KeyID
	Salt      [SaltSize]byte
}

// ParseHeader parses the header at the start of a sealed blob, for
// inspection (which policy, identity and SVN a blob needs). It checks the
// rules of docs/sealing.md §2 and returns ErrMalformed or
// ErrUnsupportedVersion; it does not authenticate anything.
func ParseHeader(blob []byte) (*Header, error) {
	h := new(Header)
	if err := h.parse(blob); err != nil {
		return nil, err
	}
	return h, nil
}

// parse follows the parsing rules of docs/sealing.md §2, in order.
func (h *Header) parse(b []byte) error {
	// Rule 1: length and magic.
	if len(b) < HeaderSize {
		return fmt.Errorf("seal: parse header: %w: %d bytes, need at least %d", ErrMalformed, len(b), HeaderSize)
	}
	if [4]byte(b[offMagic:offMagic+4]) != magic {
		return fmt.Errorf("seal: parse header: %w: bad magic, not a sealed blob", ErrMalformed)
	}
	// Rule 2: version.
	h.Version = b[offVersion]
	if h.Version != Version {
		return fmt.Errorf("seal: parse header: %w: version %d, this code reads version %d", ErrUnsupportedVersion, h.Version, Version)
	}
	// Rule 3: policy.
	h.Policy = Policy(b[offPolicy])
	if !h.Policy.valid() {
		return fmt.Errorf("seal: parse header: %w: unknown policy %d", ErrMalformed, b[offPolicy])
	}
	// Rule 4: cipher suite.
	h.Suite = Suite(b[offSuite])
	if h.Suite != SuiteHKDFSHA256AES256GCM {
		return fmt.Errorf("seal: parse header: %w: cipher suite %d", ErrUnsupportedVersion, b[offSuite])
	}
	// Rule 5: flags.
	flags := b[offFlags]
	if flags&^flagDebug != 0 {
		return fmt.Errorf("seal: parse header: %w: reserved flag bits set (0x%02x)", ErrMalformed, flags)
	}
	h.Debug = flags&flagDebug != 0
	ident := [32]byte(b[offIdentity : offIdentity+32])
	h.ProductID = binary.BigEndian.Uint32(b[offProductID:])
	h.SVN = binary.BigEndian.Uint32(b[offSVN:])
	h.KeyID = KeyID(b[offKeyID : offKeyID+8])
	h.Salt = [SaltSize]byte(b[offSalt : offSalt+SaltSize])
	switch h.Policy {
	case PolicyMeasurement:
		// Rule 6.
		h.Measurement = identity.Measurement(ident)
		if h.ProductID != 0 || h.SVN != 0 {
			return fmt.Errorf("seal: parse header: %w: product id and svn must be 0 under the measurement policy", ErrMalformed)
		}
		if h.Measurement.IsZero() && !h.Debug {
			return fmt.Errorf("seal: parse header: %w: zero measurement without the debug flag", ErrMalformed)
		}
	case PolicySigner:
		// Rule 7.
		h.SignerID = identity.SignerID(ident)
		if h.SignerID.IsZero() {
			return fmt.Errorf("seal: parse header: %w: zero signer id", ErrMalformed)
		}
	}
	return nil
}

// appendTo appends the 88-byte encoding of h to b.
func (h *Header) appendTo(b []byte) []byte {
	b = append(b, magic[:]...)
	b = append(b, h.Version, byte(h.Policy), byte(h.Suite), h.flags())
	b = append(b, h.boundIdentity()...)
	b = binary.BigEndian.AppendUint32(b, h.ProductID)
	b = binary.BigEndian.AppendUint32(b, h.SVN)
	b = append(b, h.KeyID[:]...)
	return append(b, h.Salt[:]...)
}

func (h *Header) flags() byte {
	if h.Debug {
		return flagDebug
	}
	return 0
}

func (h *Header) boundIdentity() []byte {
	if h.Policy == PolicySigner {
		return h.SignerID[:]
	}
	return h.Measurement[:]
}

// keyRequest returns the request for the policy key h was sealed under.
func (h *Header) keyRequest() KeyRequest {
	return KeyRequest{
		Policy:      h.Policy,
		Debug:       h.Debug,
		Measurement: h.Measurement,
		SignerID:    h.SignerID,
		ProductID:   h.ProductID,
		SVN:         h.SVN,
		KeyID:       h.KeyID,
	}
}
