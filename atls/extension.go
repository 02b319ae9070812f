package atls

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"fmt"
	"hash"

	"github.com/fxamacker/cbor/v2"

	"github.com/asylo-go/asylo/attest"
)

// OIDTaggedEvidence is the TCG DICE tagged-evidence extension (tcg-dice-conceptual-message-
// wrapper) that carries the evidence in an attested certificate.
var OIDTaggedEvidence = asn1.ObjectIdentifier{2, 23, 133, 5, 4, 9}

// Format tags (docs/atls.md, "Format tags"). TDX uses the Interoperable RA-TLS number for an
// Intel TEE quote; the others are RFC 9277 tags of CoAP content-formats 65000..65002
// (experimental use): TN(cf) = 1668546817 + (cf/255)*256 + cf%255.
const (
	TagTDX   uint64 = 0x1a7501
	TagSim   uint64 = 1668612071
	TagNitro uint64 = 1668612072
	TagSNP   uint64 = 1668612073
)

var tagFormats = map[uint64]attest.Format{
	TagTDX:   attest.FormatTDX,
	TagSim:   attest.FormatSim,
	TagNitro: attest.FormatNitro,
	TagSNP:   attest.FormatSNP,
}

func formatTag(f attest.Format) (uint64, bool) {
	for t, g := range tagFormats {
		if g == f {
			return t, true
		}
	}
	return 0, false
}

// Limits on the extension, in one place.
const (
	// MaxClaimsSize bounds the serialized claims map.
	MaxClaimsSize = 4 << 10
	// MaxExtensionSize bounds the whole extension value.
	MaxExtensionSize = attest.MaxEvidenceSize + MaxClaimsSize + 64
	maxClaimsPairs   = 16
	maxNonce         = 64
)

// Claim keys of the claims map.
const (
	ClaimPubkeyHash = "pubkey-hash"
	ClaimNonce      = "nonce"
)

// Hash algorithm ids of the IANA Named Information Hash Algorithm registry.
const (
	HashSHA256 uint64 = 1
	HashSHA384 uint64 = 7
	HashSHA512 uint64 = 8
)

func newHash(alg uint64) (hash.Hash, bool) {
	switch alg {
	case HashSHA256:
		return sha256.New(), true
	case HashSHA384:
		return sha512.New384(), true
	case HashSHA512:
		return sha512.New(), true
	}
	return nil, false
}

// Extension is the value of the tagged-evidence extension: CBOR #6.<tag>([evidence, claims]).
type Extension struct {
	// Evidence is the platform evidence; its Format is the one the tag names.
	Evidence attest.Evidence
	// Claims is the serialized claims map, exactly the bytes the evidence's user data hashes.
	Claims []byte
}

type extBody struct {
	_        struct{} `cbor:",toarray"`
	Evidence []byte
	Claims   []byte
}

var (
	extDec = mustDec(cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsAllowed,
		MaxArrayElements: 16,
		MaxMapPairs:      maxClaimsPairs,
		MaxNestedLevels:  4,
	})
	claimsDec = mustDec(cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxArrayElements: 16,
		MaxMapPairs:      maxClaimsPairs,
		MaxNestedLevels:  4,
	})
	detEnc = func() cbor.EncMode {
		m, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
)

func mustDec(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

// Marshal encodes e as the extension value.
func (e *Extension) Marshal() ([]byte, error) {
	tag, ok := formatTag(e.Evidence.Format)
	if !ok {
		return nil, fmt.Errorf("atls: %w: no tag for %q", attest.ErrUnsupportedFormat, e.Evidence.Format)
	}
	if len(e.Evidence.Data) == 0 || len(e.Evidence.Data) > attest.MaxEvidenceSize || len(e.Claims) > MaxClaimsSize {
		return nil, fmt.Errorf("%w: evidence of %d bytes, claims of %d bytes", ErrMalformedExtension, len(e.Evidence.Data), len(e.Claims))
	}
	return detEnc.Marshal(cbor.Tag{Number: tag, Content: extBody{Evidence: e.Evidence.Data, Claims: e.Claims}})
}

// ParseExtension decodes an extension value. It checks the structure and the format tag only; the
// claims map is parsed by ParseClaims and the evidence by package verify.
func ParseExtension(b []byte) (*Extension, error) {
	if len(b) > MaxExtensionSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformedExtension, len(b), MaxExtensionSize)
	}
	// The outer item: one tag, nothing after it.
	var raw cbor.RawTag
	if err := extDec.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedExtension, err)
	}
	// Its content: an array of exactly two byte strings.
	var items []cbor.RawMessage
	if err := extDec.Unmarshal(raw.Content, &items); err != nil {
		return nil, fmt.Errorf("%w: content of tag %d: %v", ErrMalformedExtension, raw.Number, err)
	}
	if len(items) != 2 {
		return nil, fmt.Errorf("%w: content of tag %d is not a 2-element array", ErrMalformedExtension, raw.Number)
	}
	evidence, err := byteString(extDec, items[0])
	if err != nil {
		return nil, fmt.Errorf("%w: evidence: %v", ErrMalformedExtension, err)
	}
	claims, err := byteString(extDec, items[1])
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformedExtension, err)
	}
	if len(evidence) == 0 || len(claims) == 0 {
		return nil, fmt.Errorf("%w: empty evidence or claims", ErrMalformedExtension)
	}
	if len(claims) > MaxClaimsSize {
		return nil, fmt.Errorf("%w: claims of %d bytes, limit %d", ErrMalformedExtension, len(claims), MaxClaimsSize)
	}
	// The tag names the format.
	f, ok := tagFormats[raw.Number]
	if !ok {
		return nil, fmt.Errorf("atls: %w: evidence tag %d", attest.ErrUnsupportedFormat, raw.Number)
	}
	return &Extension{Evidence: attest.Evidence{Format: f, Data: evidence}, Claims: claims}, nil
}

// byteString decodes raw, which must be a CBOR byte string (major type 2): the decoder alone
// would also turn an array of small integers into a []byte.
func byteString(dm cbor.DecMode, raw cbor.RawMessage) ([]byte, error) {
	if len(raw) == 0 || raw[0]>>5 != 2 {
		return nil, fmt.Errorf("not a byte string")
	}
	var b []byte
	if err := dm.Unmarshal(raw, &b); err != nil {
		return nil, err
	}
	return b, nil
}

// PubkeyHash is the value of the "pubkey-hash" claim.
type PubkeyHash struct {
	Alg    uint64 // HashSHA256, HashSHA384 or HashSHA512
	Digest []byte
}

type pubkeyHashBody struct {
	_      struct{} `cbor:",toarray"`
	Alg    uint64
	Digest []byte
}

// Claims is a parsed claims map. Keys asylo does not know are ignored.
type Claims struct {
	PubkeyHash *PubkeyHash // nil when absent
	Nonce      []byte      // nil when absent
}

// HashSPKI returns the "pubkey-hash" claim for a DER SubjectPublicKeyInfo, with SHA-256.
func HashSPKI(spki []byte) *PubkeyHash {
	d := sha256.Sum256(spki)
	return &PubkeyHash{Alg: HashSHA256, Digest: d[:]}
}

// Matches reports whether h is the hash of spki.
func (h *PubkeyHash) Matches(spki []byte) bool {
	hh, ok := newHash(h.Alg)
	if !ok {
		return false
	}
	hh.Write(spki)
	return constantTimeEqual(hh.Sum(nil), h.Digest)
}

// Marshal serializes c in deterministic CBOR.
func (c Claims) Marshal() ([]byte, error) {
	m := map[string][]byte{}
	if c.PubkeyHash != nil {
		if hh, ok := newHash(c.PubkeyHash.Alg); !ok || hh.Size() != len(c.PubkeyHash.Digest) {
			return nil, fmt.Errorf("%w: pubkey-hash algorithm %d with a %d-byte digest", ErrMalformedExtension, c.PubkeyHash.Alg, len(c.PubkeyHash.Digest))
		}
		b, err := detEnc.Marshal(pubkeyHashBody{Alg: c.PubkeyHash.Alg, Digest: c.PubkeyHash.Digest})
		if err != nil {
			return nil, err
		}
		m[ClaimPubkeyHash] = b
	}
	if c.Nonce != nil {
		if len(c.Nonce) == 0 || len(c.Nonce) > maxNonce {
			return nil, fmt.Errorf("%w: nonce of %d bytes", ErrMalformedExtension, len(c.Nonce))
		}
		m[ClaimNonce] = c.Nonce
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: empty claims map", ErrMalformedExtension)
	}
	return detEnc.Marshal(m)
}

// ParseClaims decodes a serialized claims map and type-checks the claims asylo knows.
func ParseClaims(b []byte) (Claims, error) {
	if len(b) > MaxClaimsSize {
		return Claims{}, fmt.Errorf("%w: claims of %d bytes", ErrMalformedExtension, len(b))
	}
	// A map with text keys; values are any CBOR item until we know the key.
	var m map[string]cbor.RawMessage
	if err := claimsDec.Unmarshal(b, &m); err != nil {
		return Claims{}, fmt.Errorf("%w: claims map: %v", ErrMalformedExtension, err)
	}
	if m == nil {
		return Claims{}, fmt.Errorf("%w: claims are not a map", ErrMalformedExtension)
	}
	var c Claims
	if v, ok := m[ClaimPubkeyHash]; ok {
		// A byte string wrapping [hash-alg-id, digest].
		inner, err := byteString(claimsDec, v)
		if err != nil {
			return Claims{}, fmt.Errorf("%w: pubkey-hash: %v", ErrMalformedExtension, err)
		}
		var items []cbor.RawMessage
		if err := claimsDec.Unmarshal(inner, &items); err != nil || len(items) != 2 {
			return Claims{}, fmt.Errorf("%w: pubkey-hash is not [hash-alg-id, digest]", ErrMalformedExtension)
		}
		var ph PubkeyHash
		if len(items[0]) == 0 || items[0][0]>>5 != 0 || claimsDec.Unmarshal(items[0], &ph.Alg) != nil {
			return Claims{}, fmt.Errorf("%w: pubkey-hash algorithm is not an unsigned integer", ErrMalformedExtension)
		}
		if ph.Digest, err = byteString(claimsDec, items[1]); err != nil {
			return Claims{}, fmt.Errorf("%w: pubkey-hash digest: %v", ErrMalformedExtension, err)
		}
		hh, ok := newHash(ph.Alg)
		if !ok {
			return Claims{}, fmt.Errorf("%w: pubkey-hash algorithm %d not supported", ErrMalformedExtension, ph.Alg)
		}
		if len(ph.Digest) != hh.Size() {
			return Claims{}, fmt.Errorf("%w: pubkey-hash digest of %d bytes for algorithm %d", ErrMalformedExtension, len(ph.Digest), ph.Alg)
		}
		c.PubkeyHash = &ph
	}
	if v, ok := m[ClaimNonce]; ok {
		n, err := byteString(claimsDec, v)
		if err != nil {
			return Claims{}, fmt.Errorf("%w: nonce is not a byte string: %v", ErrMalformedExtension, err)
		}
		if len(n) == 0 || len(n) > maxNonce {
			return Claims{}, fmt.Errorf("%w: nonce of %d bytes", ErrMalformedExtension, len(n))
		}
		c.Nonce = n
	}
	return c, nil
}

// ClaimsUserData is the user data evidence binds for a serialized claims map: its SHA-256.
func ClaimsUserData(claims []byte) []byte {
	h := sha256.Sum256(claims)
	return h[:]
}
