// Package sim verifies sim attestation evidence (docs/evidence-sim.md, version 1): a COSE_Sign1
// (RFC 9052) over EAT claims (RFC 9711), signed by a sim platform's attestation key and chained
// to that platform's root.
//
// sim evidence is signed by software on the host. Verify accepts it only for roots the caller
// names; there is no default root, by design.
package sim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/asylo-go/asylo/attest"
)

// Profile is the eat_profile of version 1 tokens.
const Profile = "tag:asylo-go,2026:sim-evidence/v1"

// Limits (docs/evidence-sim.md).
const (
	MaxTokenSize   = 16 << 10
	MaxPayloadSize = 4 << 10
	MaxCertSize    = 4 << 10
)

// Errors. Each matches the shared attest error of the same meaning.
var (
	ErrMalformed     = fmt.Errorf("sim evidence: %w", attest.ErrMalformed)
	ErrBadSignature  = fmt.Errorf("sim evidence: %w", attest.ErrBadSignature)
	ErrUntrustedRoot = fmt.Errorf("sim evidence: %w", attest.ErrUntrustedRoot)
	ErrExpired       = fmt.Errorf("sim evidence: %w", attest.ErrExpired)
	ErrNonceMismatch = fmt.Errorf("sim evidence: %w", attest.ErrNonceMismatch)
	// ErrTooOld: iat is older than Options.MaxAge (or in the future beyond the allowed skew).
	ErrTooOld = fmt.Errorf("sim evidence: %w", attest.ErrExpired)
)

// ClaimsSet is the EAT payload of a token, at the keys of docs/evidence-sim.md.
type ClaimsSet struct {
	Profile     string `cbor:"265,keyasint"`
	IssuedAt    uint64 `cbor:"6,keyasint"`
	UEID        []byte `cbor:"256,keyasint"`
	DbgStat     uint64 `cbor:"263,keyasint"`
	Measurement []byte `cbor:"-75001,keyasint"`
	SignerID    []byte `cbor:"-75002,keyasint,omitempty"`
	ProductID   uint64 `cbor:"-75003,keyasint"`
	SVN         uint64 `cbor:"-75004,keyasint"`
	UserData    []byte `cbor:"-75005,keyasint"`
}

var (
	encMode = func() cbor.EncMode {
		m, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
	decMode = func() cbor.DecMode {
		m, err := cbor.DecOptions{
			DupMapKey:         cbor.DupMapKeyEnforcedAPF,
			IndefLength:       cbor.IndefLengthForbidden,
			TagsMd:            cbor.TagsForbidden,
			ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
			MaxNestedLevels:   4,
			MaxMapPairs:       32,
			MaxArrayElements:  16,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
)

// Marshal encodes the claims set deterministically.
func (c *ClaimsSet) Marshal() ([]byte, error) { return encMode.Marshal(c) }

// Token is a parsed, not yet verified, sim token.
type Token struct {
	Claims      ClaimsSet
	Certificate *x509.Certificate
	msg         *cose.Sign1Message
}

// Parse decodes a token (the COSE_Sign1 inside the evidence envelope) and checks its structure
// and every claim's type and size. It makes no trust decision: use it to inspect evidence.
func Parse(token []byte) (*Token, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: token of %d bytes exceeds %d", ErrMalformed, len(token), MaxTokenSize)
	}
	// 1. A tagged COSE_Sign1.
	if len(token) == 0 || token[0] != 0xd2 {
		return nil, fmt.Errorf("%w: not a tagged COSE_Sign1", ErrMalformed)
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(token); err != nil {
		return nil, fmt.Errorf("%w: COSE_Sign1: %v", ErrMalformed, err)
	}
	// 2. Protected header: alg EdDSA and x5chain, nothing else; unprotected header empty.
	if len(msg.Headers.Unprotected) != 0 {
		return nil, fmt.Errorf("%w: unprotected header must be empty", ErrMalformed)
	}
	if len(msg.Headers.Protected) != 2 {
		return nil, fmt.Errorf("%w: protected header must hold exactly alg and x5chain", ErrMalformed)
	}
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil || alg != cose.AlgorithmEdDSA {
		return nil, fmt.Errorf("%w: algorithm must be EdDSA", ErrMalformed)
	}
	der, ok := msg.Headers.Protected[cose.HeaderLabelX5Chain].([]byte)
	if !ok || len(der) == 0 || len(der) > MaxCertSize {
		return nil, fmt.Errorf("%w: x5chain must be one DER certificate of at most %d bytes", ErrMalformed, MaxCertSize)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: attestation certificate: %v", ErrMalformed, err)
	}
	// 3. Claims.
	if len(msg.Payload) == 0 || len(msg.Payload) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: payload of %d bytes", ErrMalformed, len(msg.Payload))
	}
	t := &Token{Certificate: cert, msg: &msg}
	if err := decMode.Unmarshal(msg.Payload, &t.Claims); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if err := t.Claims.check(); err != nil {
		return nil, err
	}
	return t, nil
}

func (c *ClaimsSet) check() error {
	bad := func(what string) error { return fmt.Errorf("%w: claim %s", ErrMalformed, what) }
	switch {
	case c.Profile != Profile:
		return bad("eat_profile: want " + Profile)
	case c.IssuedAt == 0:
		return bad("iat missing")
	case len(c.UEID) != 33 || c.UEID[0] != 0x01:
		return bad("ueid: want 0x01 followed by 32 bytes")
	case c.DbgStat > 1:
		return bad("dbgstat: want 0 or 1")
	case len(c.Measurement) != 32:
		return bad("measurement: want 32 bytes")
	case c.SignerID != nil && len(c.SignerID) != 32:
		return bad("signer_id: want 32 bytes")
	case c.ProductID > 1<<32-1 || c.SVN > 1<<32-1:
		return bad("product_id or svn over 32 bits")
	case c.SignerID == nil && (c.ProductID != 0 || c.SVN != 0):
		return bad("product_id/svn without signer_id")
	case len(c.UserData) > attest.MaxUserData:
		return bad("user_data: more than 64 bytes")
	}
	return nil
}

// Options controls Verify. Roots is required.
type Options struct {
	// Roots are the sim platform roots to accept (for example from `asylo platform
	// export-root`). Empty means nothing is accepted.
	Roots []*x509.Certificate
	// CurrentTime is the verification time; zero means time.Now().
	CurrentTime time.Time
	// UserData, if non-nil, must equal the token's user data exactly.
	UserData []byte
	// MaxAge, if positive, refuses tokens issued longer ago than that (or more than a minute in
	// the future).
	MaxAge time.Duration
}

// Verify checks a token in spec order and returns its claims.
func Verify(token []byte, opts Options) (*attest.Claims, error) {
	now := opts.CurrentTime
	if now.IsZero() {
		now = time.Now()
	}
	// 1. Structure.
	t, err := Parse(token)
	if err != nil {
		return nil, err
	}
	// 2. Chain: the attestation certificate must be issued by one of the caller's roots, and
	// both must be valid now.
	root, err := chain(t.Certificate, opts.Roots, now)
	if err != nil {
		return nil, err
	}
	// 3. Signature by the attestation key.
	pub, ok := t.Certificate.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: attestation key is not Ed25519", ErrMalformed)
	}
	v, err := cose.NewVerifier(cose.AlgorithmEdDSA, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := t.msg.Verify(nil, v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	// 4. The ueid names the root that vouched for the key.
	keyID := sha256.Sum256(root.RawSubjectPublicKeyInfo)
	if !bytes.Equal(t.Claims.UEID[1:], keyID[:]) {
		return nil, fmt.Errorf("%w: ueid names another platform than the root that signed", ErrUntrustedRoot)
	}
	// 5. Freshness and binding.
	iat := time.Unix(int64(min(t.Claims.IssuedAt, 1<<62)), 0)
	if opts.MaxAge > 0 && (now.Sub(iat) > opts.MaxAge || iat.Sub(now) > time.Minute) {
		return nil, fmt.Errorf("%w: issued at %v, verification time %v, max age %v", ErrTooOld, iat.UTC(), now.UTC(), opts.MaxAge)
	}
	if opts.UserData != nil && !bytes.Equal(opts.UserData, t.Claims.UserData) {
		return nil, fmt.Errorf("%w: token binds %x", ErrNonceMismatch, t.Claims.UserData)
	}
	return t.ToClaims(keyID), nil
}

// ToClaims maps the token's claims to attest.Claims, with the given platform key id.
func (t *Token) ToClaims(keyID [32]byte) *attest.Claims {
	c := &t.Claims
	return &attest.Claims{
		Platform:      attest.PlatformSim,
		Measurement:   c.Measurement,
		Measurements:  map[string][]byte{"sha256": c.Measurement},
		SignerID:      c.SignerID,
		ProductID:     uint32(c.ProductID),
		SVN:           uint32(c.SVN),
		Debug:         c.DbgStat == 0,
		UserData:      c.UserData,
		IssuedAt:      time.Unix(int64(min(c.IssuedAt, 1<<62)), 0).UTC(),
		PlatformKeyID: keyID[:],
	}
}

func chain(leaf *x509.Certificate, roots []*x509.Certificate, now time.Time) (*x509.Certificate, error) {
	if len(roots) == 0 {
		return nil, fmt.Errorf("%w: no sim platform root given (sim evidence is never trusted by default)", ErrUntrustedRoot)
	}
	valid := func(c *x509.Certificate) bool { return !now.Before(c.NotBefore) && !now.After(c.NotAfter) }
	for _, r := range roots {
		if !bytes.Equal(leaf.RawIssuer, r.RawSubject) || leaf.CheckSignatureFrom(r) != nil {
			continue
		}
		if !valid(r) || !valid(leaf) {
			return nil, fmt.Errorf("%w: at %v (root %v..%v, attestation key %v..%v)", ErrExpired, now.UTC(),
				r.NotBefore.UTC(), r.NotAfter.UTC(), leaf.NotBefore.UTC(), leaf.NotAfter.UTC())
		}
		if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 || leaf.IsCA {
			return nil, fmt.Errorf("%w: attestation certificate is not a signing leaf", ErrUntrustedRoot)
		}
		return r, nil
	}
	return nil, fmt.Errorf("%w: attestation certificate %q is not issued by a given root", ErrUntrustedRoot, leaf.Subject.CommonName)
}
