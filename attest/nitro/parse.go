package nitro

import (
	"crypto/x509"
	"fmt"
	"math"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// Limits, all in one place. Each comes from the specification unless said
// otherwise.
const (
	// MaxDocumentSize bounds the whole COSE_Sign1 object before any decoding.
	// Not in the spec: it is the largest payload (§3.1) plus room for the
	// headers, the signature and the CBOR framing.
	MaxDocumentSize = maxPayloadSize + 1024

	maxPayloadSize   = 16384 // §3.1: payload bstr .size (1..16384)
	es384SigSize     = 96    // RFC 9053 §2.1: ES384 signature is r||s, 48 bytes each
	maxCertSize      = 1024  // §2.2 / §3.2.2.2: cert = bytes .size (1..1024)
	maxPublicKeySize = 1024  // §3.2.2.2: public_key length in [1, 1024]
	maxPCRIndex      = 31    // §2.2: index = 0..31
	maxPCRCount      = 32    // §3.2.2.2: $size in [1, 32]

	// maxUserDataSize bounds user_data and nonce. §2.2 defines both as
	// user_data = bytes .size (0..1024); §3.2.2.2 says [0, 512]. Real NSM
	// documents carry 1024-byte user_data and nonce (see testdata), so the
	// type definition of §2.2 is the one that holds.
	maxUserDataSize = 1024

	// digestSHA384 is the only digest value §2.2 allows.
	digestSHA384 = "SHA384"
)

// Field names of the attestation document, as §2.2 spells them.
const (
	fieldModuleID    = "module_id"
	fieldDigest      = "digest"
	fieldTimestamp   = "timestamp"
	fieldPCRs        = "pcrs"
	fieldCertificate = "certificate"
	fieldCABundle    = "cabundle"
	fieldPublicKey   = "public_key"
	fieldUserData    = "user_data"
	fieldNonce       = "nonce"
)

// CBOR major types (RFC 8949 §3.1).
const (
	majorUint  = 0
	majorBytes = 2
	majorText  = 3
	majorArray = 4
	majorMap   = 5
)

// Document is a parsed attestation document (§2.2). Fields carry the spec's
// names. The optional fields PublicKey, UserData and Nonce are nil when
// absent and non-nil (possibly empty) when present.
type Document struct {
	ModuleID    string            // module_id: issuing Nitro hypervisor module
	Digest      string            // digest: always "SHA384"
	Timestamp   time.Time         // timestamp: creation time, millisecond precision, UTC
	PCRs        map[uint][]byte   // pcrs: locked PCRs by index (0..31)
	Certificate *x509.Certificate // certificate: the leaf that signed the document
	CABundle    []*x509.Certificate
	// CABundle is cabundle: the issuing chain, root first (§3.2.3).
	PublicKey []byte // public_key: optional, DER key chosen by the enclave
	UserData  []byte // user_data: optional, protocol-defined
	Nonce     []byte // nonce: optional, chosen by the verifier
}

// payloadDecMode decodes the attestation document payload. The NSM emits
// definite-length, untagged CBOR; anything else is refused, as are duplicate
// map keys.
var payloadDecMode = mustDecMode(cbor.DecOptions{
	DupMapKey:       cbor.DupMapKeyEnforcedAPF,
	IndefLength:     cbor.IndefLengthForbidden,
	TagsMd:          cbor.TagsForbidden,
	UTF8:            cbor.UTF8RejectInvalid,
	MaxNestedLevels: 4, // payload map > pcrs map / cabundle array > bstr
})

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

// Parse decodes an attestation document and checks its structure and every
// field against the specification. It makes no trust decision: neither the
// certificate chain nor the signature is checked, so nothing in the result
// may be relied on. Use [Verify] for that.
func Parse(doc []byte) (*Document, error) {
	d, _, err := parse(doc)
	return d, err
}

// parse returns the document and the decoded COSE message, whose signature
// Verify checks.
func parse(doc []byte) (*Document, *cose.Sign1Message, error) {
	// Step 1 (§3.1): decode the COSE_Sign1 structure, tagged (tag 18) or
	// untagged, both allowed by the spec.
	if len(doc) == 0 || len(doc) > MaxDocumentSize {
		return nil, nil, fmt.Errorf("%w: document is %d bytes, want 1..%d", ErrMalformed, len(doc), MaxDocumentSize)
	}
	var msg cose.Sign1Message
	if doc[0] == 0xd2 { // tag 18 in one byte: COSE_Sign1_Tagged
		if err := msg.UnmarshalCBOR(doc); err != nil {
			return nil, nil, fmt.Errorf("%w: COSE_Sign1: %v", ErrMalformed, err)
		}
	} else {
		if err := (*cose.UntaggedSign1Message)(&msg).UnmarshalCBOR(doc); err != nil {
			return nil, nil, fmt.Errorf("%w: COSE_Sign1: %v", ErrMalformed, err)
		}
	}

	// Step 2 (§3.1): the protected header is {1: -35}, alg ES384, and
	// nothing else; the unprotected header is empty. Unprotected parameters
	// are not covered by the signature, so none is accepted.
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: protected header: %v", ErrUnsupportedAlgorithm, err)
	}
	if alg != cose.AlgorithmES384 {
		return nil, nil, fmt.Errorf("%w: protected header alg is %v, want ES384", ErrUnsupportedAlgorithm, alg)
	}
	if n := len(msg.Headers.Protected); n != 1 {
		return nil, nil, fmt.Errorf("%w: protected header has %d parameters, want only alg", ErrMalformed, n)
	}
	if n := len(msg.Headers.Unprotected); n != 0 {
		return nil, nil, fmt.Errorf("%w: unprotected header has %d parameters, want none", ErrMalformed, n)
	}
	if n := len(msg.Payload); n == 0 || n > maxPayloadSize {
		return nil, nil, fmt.Errorf("%w: payload is %d bytes, want 1..%d", ErrMalformed, n, maxPayloadSize)
	}
	if n := len(msg.Signature); n != es384SigSize {
		return nil, nil, fmt.Errorf("%w: signature is %d bytes, want %d for ES384", ErrMalformed, n, es384SigSize)
	}

	// Step 3 (§3.2.2): the payload, strictly.
	d, err := parsePayload(msg.Payload)
	if err != nil {
		return nil, nil, err
	}
	return d, &msg, nil
}

// parsePayload decodes the attestation document map and applies §3.2.2.1
// (required fields, no nulls) and §3.2.2.2 (types and sizes) field by field.
func parsePayload(payload []byte) (*Document, error) {
	if len(payload) == 0 || payload[0]>>5 != majorMap {
		return nil, fmt.Errorf("%w: payload is not a CBOR map", ErrMalformed)
	}
	var fields map[string]cbor.RawMessage
	if err := payloadDecMode.Unmarshal(payload, &fields); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	for k := range fields {
		switch k {
		case fieldModuleID, fieldDigest, fieldTimestamp, fieldPCRs, fieldCertificate,
			fieldCABundle, fieldPublicKey, fieldUserData, fieldNonce:
		default:
			return nil, fmt.Errorf("%w: payload: unknown field %q", ErrMalformed, k)
		}
	}
	for _, k := range []string{fieldModuleID, fieldDigest, fieldTimestamp, fieldPCRs, fieldCertificate, fieldCABundle} {
		if _, ok := fields[k]; !ok {
			return nil, fmt.Errorf("%w: payload: required field %s missing", ErrMalformed, k)
		}
	}

	var d Document
	var err error

	// module_id: text, non-empty.
	if d.ModuleID, err = decodeText(fields, fieldModuleID); err != nil {
		return nil, err
	}
	if d.ModuleID == "" {
		return nil, fmt.Errorf("%w: %s is empty", ErrMalformed, fieldModuleID)
	}

	// digest: text, exactly "SHA384".
	if d.Digest, err = decodeText(fields, fieldDigest); err != nil {
		return nil, err
	}
	if d.Digest != digestSHA384 {
		return nil, fmt.Errorf("%w: %s is %q, want %q", ErrMalformed, fieldDigest, d.Digest, digestSHA384)
	}

	// timestamp: uint, > 0, milliseconds since the Unix epoch.
	raw := fields[fieldTimestamp]
	if err := wantMajor(raw, majorUint, fieldTimestamp); err != nil {
		return nil, err
	}
	var ms uint64
	if err := payloadDecMode.Unmarshal(raw, &ms); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, fieldTimestamp, err)
	}
	if ms == 0 || ms > math.MaxInt64 {
		return nil, fmt.Errorf("%w: %s %d out of range", ErrMalformed, fieldTimestamp, ms)
	}
	d.Timestamp = time.UnixMilli(int64(ms)).UTC()

	// pcrs: map of 1..32 entries, uint index 0..31 -> bstr of 32, 48 or 64.
	if d.PCRs, err = decodePCRs(fields[fieldPCRs]); err != nil {
		return nil, err
	}

	// certificate: bstr 1..1024, DER X.509.
	if d.Certificate, err = decodeCert(fields[fieldCertificate], fieldCertificate); err != nil {
		return nil, err
	}

	// cabundle: non-empty array of bstr 1..1024, DER X.509, root first.
	raw = fields[fieldCABundle]
	if err := wantMajor(raw, majorArray, fieldCABundle); err != nil {
		return nil, err
	}
	var bundle []cbor.RawMessage
	if err := payloadDecMode.Unmarshal(raw, &bundle); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, fieldCABundle, err)
	}
	if len(bundle) == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrMalformed, fieldCABundle)
	}
	for i, b := range bundle {
		c, err := decodeCert(b, fmt.Sprintf("%s[%d]", fieldCABundle, i))
		if err != nil {
			return nil, err
		}
		d.CABundle = append(d.CABundle, c)
	}

	// Optional fields: bstr when present, never null.
	if d.PublicKey, err = decodeOptionalBytes(fields, fieldPublicKey, 1, maxPublicKeySize); err != nil {
		return nil, err
	}
	if d.UserData, err = decodeOptionalBytes(fields, fieldUserData, 0, maxUserDataSize); err != nil {
		return nil, err
	}
	if d.Nonce, err = decodeOptionalBytes(fields, fieldNonce, 0, maxUserDataSize); err != nil {
		return nil, err
	}
	return &d, nil
}

// wantMajor checks the CBOR major type of a raw value. Tags are forbidden by
// payloadDecMode and null/undefined are major type 7, so this also refuses
// null (§3.2.2.1: no field content can be null).
func wantMajor(raw cbor.RawMessage, major byte, name string) error {
	if len(raw) == 0 {
		return fmt.Errorf("%w: %s: empty value", ErrMalformed, name)
	}
	if got := raw[0] >> 5; got != major {
		return fmt.Errorf("%w: %s has CBOR major type %d, want %d", ErrMalformed, name, got, major)
	}
	return nil
}

func decodeText(fields map[string]cbor.RawMessage, name string) (string, error) {
	raw := fields[name]
	if err := wantMajor(raw, majorText, name); err != nil {
		return "", err
	}
	var s string
	if err := payloadDecMode.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	return s, nil
}

func decodeBytes(raw cbor.RawMessage, name string, minLen, maxLen int) ([]byte, error) {
	if err := wantMajor(raw, majorBytes, name); err != nil {
		return nil, err
	}
	var b []byte
	if err := payloadDecMode.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	if len(b) < minLen || len(b) > maxLen {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d..%d", ErrMalformed, name, len(b), minLen, maxLen)
	}
	if b == nil {
		b = []byte{} // present but empty: keep it distinguishable from absent
	}
	return b, nil
}

func decodeOptionalBytes(fields map[string]cbor.RawMessage, name string, minLen, maxLen int) ([]byte, error) {
	raw, ok := fields[name]
	if !ok {
		return nil, nil
	}
	return decodeBytes(raw, name, minLen, maxLen)
}

func decodePCRs(raw cbor.RawMessage) (map[uint][]byte, error) {
	if err := wantMajor(raw, majorMap, fieldPCRs); err != nil {
		return nil, err
	}
	// Keys decode into uint64 only from CBOR major type 0 (negative
	// integers, floats, text and bytes are refused by the decoder).
	var m map[uint64]cbor.RawMessage
	if err := payloadDecMode.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, fieldPCRs, err)
	}
	if len(m) < 1 || len(m) > maxPCRCount {
		return nil, fmt.Errorf("%w: %s has %d entries, want 1..%d", ErrMalformed, fieldPCRs, len(m), maxPCRCount)
	}
	pcrs := make(map[uint][]byte, len(m))
	for idx, v := range m {
		if idx > maxPCRIndex {
			return nil, fmt.Errorf("%w: %s index %d, want 0..%d", ErrMalformed, fieldPCRs, idx, maxPCRIndex)
		}
		name := fmt.Sprintf("%s[%d]", fieldPCRs, idx)
		b, err := decodeBytes(v, name, 32, 64)
		if err != nil {
			return nil, err
		}
		if n := len(b); n != 32 && n != 48 && n != 64 {
			return nil, fmt.Errorf("%w: %s is %d bytes, want 32, 48 or 64", ErrMalformed, name, n)
		}
		pcrs[uint(idx)] = b
	}
	return pcrs, nil
}

func decodeCert(raw cbor.RawMessage, name string) (*x509.Certificate, error) {
	der, err := decodeBytes(raw, name, 1, maxCertSize)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	return c, nil
}
