package signing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/asylo-go/asylo/identity"
)

// This file implements the signature manifest, docs/identity.md §3-§4,
// revision "asylo-signature-manifest/v1".

const (
	// ManifestFormat is the value of the "format" member of a v1 manifest.
	ManifestFormat = "asylo-signature-manifest/v1"

	// MaxManifestSize is the largest manifest ParseManifest accepts, in bytes.
	// A real manifest is under 400 bytes.
	MaxManifestSize = 16 << 10

	// ManifestSuffix is appended to an enclave binary's path to name its
	// manifest (see ManifestPath).
	ManifestSuffix = ".sig"

	// tbsDomain separates manifest signatures from any other use of the key.
	tbsDomain = "asylo-go signature manifest v1\x00"

	// tbsSize is the size of the to-be-signed encoding: domain (31),
	// measurement (32), product id (4), svn (4), flags (1).
	tbsSize = len(tbsDomain) + identity.MeasurementSize + 4 + 4 + 1

	// flagDebug is bit 0 of the TBS flags byte. Bits 1-7 are zero in v1.
	flagDebug = 0x01
)

// Manifest is a signature manifest: a signer's statement that the image with
// Measurement is product ProductID at security version SVN, built for debug
// or not. Its fields are plain data: only Verify says whether they are
// authentic.
type Manifest struct {
	Measurement     identity.Measurement
	ProductID       uint32
	SVN             uint32
	Debug           bool
	SignerPublicKey ed25519.PublicKey // 32 bytes
	Signature       []byte            // 64 bytes, Ed25519 over the TBS encoding
}

// tbs returns the 72-byte to-be-signed encoding of docs/identity.md §3.
func tbs(m identity.Measurement, productID, svn uint32, debug bool) []byte {
	b := make([]byte, 0, tbsSize)
	b = append(b, tbsDomain...)                     // offset 0, 31 bytes
	b = append(b, m[:]...)                          // offset 31, 32 bytes
	b = binary.BigEndian.AppendUint32(b, productID) // offset 63
	b = binary.BigEndian.AppendUint32(b, svn)       // offset 67
	var flags byte
	if debug {
		flags |= flagDebug
	}
	return append(b, flags) // offset 71
}

// Sign returns a manifest in which key vouches that the image with
// measurement m is product productID at security version svn, and whether
// it is a debug build. A debug-signed enclave always has Debug=true in its
// identity, so sign with debug=false for production.
func Sign(key *SigningKey, m identity.Measurement, productID, svn uint32, debug bool) (*Manifest, error) {
	if !key.valid() {
		return nil, fmt.Errorf("signing: sign manifest: %w: key is nil or zero; create it with GenerateKey or ParseSigningKeyPEM", ErrMalformedKey)
	}
	if m.IsZero() {
		return nil, fmt.Errorf("signing: sign manifest: %w; measure the enclave image (MeasureFile) and sign that", ErrZeroMeasurement)
	}
	return &Manifest{
		Measurement:     m,
		ProductID:       productID,
		SVN:             svn,
		Debug:           debug,
		SignerPublicKey: key.Public(),
		Signature:       ed25519.Sign(key.priv, tbs(m, productID, svn, debug)),
	}, nil
}

// checkShape reports whether mf's fields have the sizes the format requires.
func (mf *Manifest) checkShape() error {
	switch {
	case mf == nil:
		return errors.New("manifest is nil")
	case mf.Measurement.IsZero():
		return ErrZeroMeasurement
	case len(mf.SignerPublicKey) != ed25519.PublicKeySize:
		return fmt.Errorf("signer public key is %d bytes, want %d", len(mf.SignerPublicKey), ed25519.PublicKeySize)
	case len(mf.Signature) != ed25519.SignatureSize:
		return fmt.Errorf("signature is %d bytes, want %d", len(mf.Signature), ed25519.SignatureSize)
	}
	return nil
}

// Marshal encodes mf as the JSON document of docs/identity.md §4, in the
// documented member order and layout, ending in a newline. It does not
// check the signature.
func (mf *Manifest) Marshal() ([]byte, error) {
	if err := mf.checkShape(); err != nil {
		return nil, fmt.Errorf("signing: marshal manifest: %w: %w", ErrMalformedManifest, err)
	}
	b := make([]byte, 0, 384)
	b = append(b, "{\n"...)
	b = append(b, `  "format": "`+ManifestFormat+`",`+"\n"...)
	b = append(b, `  "measurement": "`+mf.Measurement.String()+`",`+"\n"...)
	b = append(b, `  "product_id": `+strconv.FormatUint(uint64(mf.ProductID), 10)+",\n"...)
	b = append(b, `  "svn": `+strconv.FormatUint(uint64(mf.SVN), 10)+",\n"...)
	b = append(b, `  "debug": `+strconv.FormatBool(mf.Debug)+",\n"...)
	b = append(b, `  "signer_public_key": "`+base64.StdEncoding.EncodeToString(marshalSPKI(mf.SignerPublicKey))+`",`+"\n"...)
	b = append(b, `  "signature": "`+base64.StdEncoding.EncodeToString(mf.Signature)+`"`+"\n"...)
	b = append(b, "}\n"...)
	return b, nil
}

// Manifest member names (docs/identity.md §4).
const (
	memberFormat          = "format"
	memberMeasurement     = "measurement"
	memberProductID       = "product_id"
	memberSVN             = "svn"
	memberDebug           = "debug"
	memberSignerPublicKey = "signer_public_key"
	memberSignature       = "signature"
)

var allMembers = [...]string{memberFormat, memberMeasurement, memberProductID, memberSVN, memberDebug, memberSignerPublicKey, memberSignature}

// ParseManifest parses a manifest strictly by the rules of docs/identity.md
// §4: at most MaxManifestSize bytes, one JSON object with exactly the seven
// members (no unknown or duplicate members), the v1 format string, and
// canonical hex and base64 of the right lengths. Every failure wraps
// ErrMalformedManifest; a signer key of another algorithm also wraps
// ErrUnsupportedKey. It does not check the signature: call Verify.
func ParseManifest(data []byte) (*Manifest, error) {
	mf, err := parseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedManifest, err)
	}
	return mf, nil
}

func parseManifest(data []byte) (*Manifest, error) {
	// Rule 1: size.
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("input is %d bytes, more than the %d-byte limit", len(data), MaxManifestSize)
	}
	// Rule 2: one JSON object. The decoder checks the JSON syntax; this
	// function checks the structure token by token, which is how it sees
	// duplicate and differently-cased member names that json.Unmarshal
	// would silently accept.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var mf Manifest
	seen := make(map[string]bool, len(allMembers))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok { // Unreachable: the decoder only yields strings as names.
			return nil, errors.New("invalid JSON member name")
		}
		// Rule 3: each known member exactly once.
		if seen[name] {
			return nil, fmt.Errorf("duplicate member %q", clip(name))
		}
		seen[name] = true
		value, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %v", err)
		}
		if err := mf.setMember(name, value); err != nil {
			return nil, err
		}
	}
	if tok, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	} else if tok != json.Delim('}') { // Unreachable: More said the object ended.
		return nil, errors.New("invalid JSON: object not closed")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	for _, name := range allMembers {
		if !seen[name] {
			return nil, fmt.Errorf("member %q is missing", name)
		}
	}
	return &mf, nil
}

// setMember decodes one member's JSON value into mf.
func (mf *Manifest) setMember(name string, value json.Token) error {
	switch name {
	case memberFormat:
		s, ok := value.(string)
		if !ok {
			return typeError(name, "a string")
		}
		if s != ManifestFormat {
			return fmt.Errorf("format is %q, want %q; the manifest was written by an incompatible tool", clip(s), ManifestFormat)
		}
	case memberMeasurement:
		s, ok := value.(string)
		if !ok {
			return typeError(name, "a string")
		}
		if err := decodeLowerHex(mf.Measurement[:], s); err != nil {
			return fmt.Errorf("measurement: %w", err)
		}
		if mf.Measurement.IsZero() {
			return fmt.Errorf("measurement: %w", ErrZeroMeasurement)
		}
	case memberProductID, memberSVN:
		n, ok := value.(json.Number)
		if !ok {
			return typeError(name, "a number")
		}
		// ParseUint refuses signs, fractions, exponents and values > 2^32-1.
		v, err := strconv.ParseUint(string(n), 10, 32)
		if err != nil {
			return fmt.Errorf("%s is %s, want an integer from 0 to 4294967295", name, clip(string(n)))
		}
		if name == memberProductID {
			mf.ProductID = uint32(v)
		} else {
			mf.SVN = uint32(v)
		}
	case memberDebug:
		b, ok := value.(bool)
		if !ok {
			return typeError(name, "true or false")
		}
		mf.Debug = b
	case memberSignerPublicKey:
		s, ok := value.(string)
		if !ok {
			return typeError(name, "a string")
		}
		der, err := decodeCanonicalBase64(s, MaxManifestSize)
		if err != nil {
			return fmt.Errorf("signer_public_key: %w", err)
		}
		pub, err := parseSPKI(der)
		if err != nil {
			return err
		}
		mf.SignerPublicKey = pub
	case memberSignature:
		s, ok := value.(string)
		if !ok {
			return typeError(name, "a string")
		}
		sig, err := decodeCanonicalBase64(s, ed25519.SignatureSize)
		if err != nil {
			return fmt.Errorf("signature: %w", err)
		}
		if len(sig) != ed25519.SignatureSize {
			return fmt.Errorf("signature is %d bytes, want %d", len(sig), ed25519.SignatureSize)
		}
		mf.Signature = sig
	default:
		return fmt.Errorf("unknown member %q; this tool reads %s only", clip(name), ManifestFormat)
	}
	return nil
}

func typeError(name, want string) error {
	return fmt.Errorf("member %q must be %s", name, want)
}

// decodeLowerHex decodes exactly 2*len(dst) lower-case hex digits.
func decodeLowerHex(dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("want %d hex characters, got %d", 2*len(dst), len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("character %d is not a lower-case hex digit", i)
		}
	}
	for i := range dst {
		dst[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
	}
	return nil
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// decodeCanonicalBase64 decodes standard padded base64 (RFC 4648 §4) that
// re-encodes to the same string: no line breaks, no non-zero padding bits.
// It refuses input that would decode to more than max bytes.
func decodeCanonicalBase64(s string, max int) ([]byte, error) {
	if base64.StdEncoding.DecodedLen(len(s)) > max+2 {
		return nil, fmt.Errorf("base64 text is %d characters, too long", len(s))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not canonical standard base64 with padding")
	}
	return b, nil
}

// Verify checks mf against the measurement m of the image being loaded, in
// the order of docs/identity.md §4: the Ed25519 signature over the TBS
// encoding, then that mf is for m. It returns the enclave's identity
// (Signed=true; Backend is left for the caller). Errors wrap ErrBadSignature,
// ErrMeasurementMismatch or ErrMalformedManifest.
func (mf *Manifest) Verify(m identity.Measurement) (identity.Identity, error) {
	// Step 1: shape. ed25519.Verify panics on a public key of the wrong size.
	if err := mf.checkShape(); err != nil {
		return identity.Identity{}, fmt.Errorf("signing: verify manifest: %w: %w", ErrMalformedManifest, err)
	}
	// Step 2: signature over the rebuilt TBS.
	msg := tbs(mf.Measurement, mf.ProductID, mf.SVN, mf.Debug)
	if !ed25519.Verify(mf.SignerPublicKey, msg, mf.Signature) {
		return identity.Identity{}, fmt.Errorf("%w (signer %s): the manifest was altered or corrupted after signing; do not load the enclave, re-sign its image",
			ErrBadSignature, SignerIDOf(mf.SignerPublicKey))
	}
	// Step 3: the manifest is for this image.
	if m.IsZero() {
		return identity.Identity{}, fmt.Errorf("%w: %w: nothing to check the manifest against; measure the enclave image first", ErrMeasurementMismatch, ErrZeroMeasurement)
	}
	if mf.Measurement != m {
		return identity.Identity{}, fmt.Errorf("%w: manifest is for %s, image measures %s; use the manifest signed for this build or re-sign it",
			ErrMeasurementMismatch, mf.Measurement, m)
	}
	// Step 4: the identity, from the manifest.
	return identity.Identity{
		Measurement: m,
		Signed:      true,
		SignerID:    SignerIDOf(mf.SignerPublicKey),
		ProductID:   mf.ProductID,
		SVN:         mf.SVN,
		Debug:       mf.Debug,
	}, nil
}
