package atls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/policy"
	"github.com/asylo-go/asylo/verify"
)

// DefaultMaxEvidenceAge is how old evidence (and how long a certificate's validity period) a
// Verifier accepts unless told otherwise.
const DefaultMaxEvidenceAge = 24 * time.Hour

// maxFutureSkew is how far in the future evidence may say it was issued.
const maxFutureSkew = time.Minute

// A Verifier checks a peer's attested certificate in the TLS handshake (docs/atls.md,
// "Verification") and remembers the claims of the certificates it accepted, for PeerClaims.
type Verifier struct {
	opts       verify.Options
	policy     *policy.Policy
	now        func() time.Time
	maxAge     time.Duration
	skipAbsent bool

	mu     sync.Mutex
	claims map[weak.Pointer[x509.Certificate]]*attest.Claims
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier) error

// WithVerifierClock sets the verifier's clock (certificate validity, evidence age, and the time
// passed to verify.Evidence). The default is verify.Options.CurrentTime if set, else time.Now.
func WithVerifierClock(now func() time.Time) VerifierOption {
	return func(v *Verifier) error {
		if now == nil {
			return errors.New("atls: WithVerifierClock: nil clock")
		}
		v.now = now
		return nil
	}
}

// WithMaxEvidenceAge bounds how long ago evidence may have been issued, and how long a
// certificate's validity period may be (default DefaultMaxEvidenceAge).
func WithMaxEvidenceAge(d time.Duration) VerifierOption {
	return func(v *Verifier) error {
		if d <= 0 {
			return fmt.Errorf("atls: WithMaxEvidenceAge: %v is not positive", d)
		}
		v.maxAge = d
		return nil
	}
}

// InsecureSkipAttestation makes the verifier accept a peer that presents no evidence at all (no
// certificate, or a certificate without the extension): such a peer has no claims, and nothing
// about it is verified. Evidence that is present is still verified in full, and refused if it
// fails. Use it only for a server that also serves non-attested clients.
func InsecureSkipAttestation() VerifierOption {
	return func(v *Verifier) error {
		v.skipAbsent = true
		return nil
	}
}

// NewVerifier returns a verifier that accepts peers whose evidence verifies with opts and whose
// claims p accepts. p is required.
func NewVerifier(opts verify.Options, p *policy.Policy, vopts ...VerifierOption) (*Verifier, error) {
	if p == nil {
		return nil, errors.New("atls: NewVerifier: a policy is required")
	}
	v := &Verifier{opts: opts, policy: p, maxAge: DefaultMaxEvidenceAge,
		claims: map[weak.Pointer[x509.Certificate]]*attest.Claims{}}
	if t := opts.CurrentTime; !t.IsZero() {
		v.now = func() time.Time { return t }
	} else {
		v.now = time.Now
	}
	for _, o := range vopts {
		if err := o(v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// VerifyConnection verifies the peer of a TLS connection; it is the tls.Config hook that
// ServerConfig and ClientConfig install. On success the peer's claims are available from
// PeerClaims once the handshake completes.
func (v *Verifier) VerifyConnection(cs tls.ConnectionState) error {
	_, err := v.verifyConnection(context.Background(), cs)
	return err
}

func (v *Verifier) verifyConnection(ctx context.Context, cs tls.ConnectionState) (*attest.Claims, error) {
	// 1. TLS 1.3 only.
	if cs.Version != tls.VersionTLS13 {
		return nil, fmt.Errorf("atls: TLS version %#x, attested TLS needs TLS 1.3", cs.Version)
	}
	// 2. A certificate with the extension.
	if len(cs.PeerCertificates) == 0 {
		if v.skipAbsent {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: no certificate", ErrNoEvidence)
	}
	leaf := cs.PeerCertificates[0]
	ext, err := findExtension(leaf)
	if errors.Is(err, ErrNoEvidence) && v.skipAbsent {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := v.VerifyCertificate(ctx, leaf, ext)
	if err != nil {
		return nil, err
	}
	v.remember(leaf, c)
	return c, nil
}

// findExtension returns the value of the leaf's tagged-evidence extension.
func findExtension(leaf *x509.Certificate) ([]byte, error) {
	for _, e := range leaf.Extensions {
		if e.Id.Equal(OIDTaggedEvidence) {
			if e.Critical {
				return nil, fmt.Errorf("%w: extension %v is marked critical", ErrMalformedExtension, OIDTaggedEvidence)
			}
			return e.Value, nil
		}
	}
	return nil, fmt.Errorf("%w: certificate %q has no extension %v", ErrNoEvidence, leaf.Subject, OIDTaggedEvidence)
}

// VerifyCertificate runs steps 3 to 9 of docs/atls.md on leaf, whose tagged-evidence extension
// value is ext, and returns the verified claims. It does not prove that anyone holds leaf's key:
// in a handshake, TLS 1.3's CertificateVerify does.
func (v *Verifier) VerifyCertificate(ctx context.Context, leaf *x509.Certificate, ext []byte) (*attest.Claims, error) {
	now := v.now()
	// 3. The certificate is valid now, for no longer than the maximum evidence age.
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%w: %w: certificate valid %v..%v, now %v", ErrStale, attest.ErrExpired,
			leaf.NotBefore.UTC(), leaf.NotAfter.UTC(), now.UTC())
	}
	if leaf.NotAfter.Sub(leaf.NotBefore) > v.maxAge {
		return nil, fmt.Errorf("%w: certificate valid for %v, longer than the maximum evidence age %v",
			ErrStale, leaf.NotAfter.Sub(leaf.NotBefore), v.maxAge)
	}
	// 4. The extension and the claims map parse.
	e, err := ParseExtension(ext)
	if err != nil {
		return nil, err
	}
	cm, err := ParseClaims(e.Claims)
	if err != nil {
		return nil, err
	}
	if cm.PubkeyHash == nil {
		return nil, fmt.Errorf("%w: claims map without %q", ErrMalformedExtension, ClaimPubkeyHash)
	}
	// 5. The claims bind the key of this certificate.
	if !cm.PubkeyHash.Matches(leaf.RawSubjectPublicKeyInfo) {
		return nil, fmt.Errorf("%w: pubkey-hash is not the hash of the certificate's public key", ErrKeyMismatch)
	}
	// 6 to 9: the evidence, its binding of the claims, its age, the policy.
	return v.verifyEvidence(ctx, e, now)
}

// verifyEvidence runs steps 6 to 9: the evidence verifies, binds the claims map, is not too old,
// and the policy accepts it.
func (v *Verifier) verifyEvidence(ctx context.Context, e *Extension, now time.Time) (*attest.Claims, error) {
	// 6. The evidence verifies.
	raw, err := e.Evidence.Marshal()
	if err != nil {
		return nil, err
	}
	opts := v.opts
	opts.CurrentTime = now
	opts.UserData = nil // checked below, against the claims map, with our own error
	c, err := verify.Evidence(ctx, raw, opts)
	if err != nil {
		if errors.Is(err, attest.ErrExpired) {
			return nil, fmt.Errorf("%w: evidence: %w", ErrStale, err)
		}
		return nil, fmt.Errorf("atls: evidence: %w", err)
	}
	// 7. Its user data is the hash of the claims map (SEV-SNP and TDX pad it with zeros).
	if !bindsClaims(c.UserData, ClaimsUserData(e.Claims)) {
		return nil, fmt.Errorf("%w: user data %x", ErrClaimsMismatch, c.UserData)
	}
	// 8. It is not too old, nor from the future, where the format says when it was issued.
	if !c.IssuedAt.IsZero() {
		if now.Sub(c.IssuedAt) > v.maxAge || c.IssuedAt.Sub(now) > maxFutureSkew {
			return nil, fmt.Errorf("%w: evidence issued at %v, now %v, maximum age %v", ErrStale,
				c.IssuedAt.UTC(), now.UTC(), v.maxAge)
		}
	}
	// 9. The policy accepts the claims.
	if r := v.policy.Evaluate(c); !r.Allowed() {
		err := r.Err
		if err == nil {
			err = fmt.Errorf("status %v", r.Status)
		}
		return nil, fmt.Errorf("atls: policy %q refused the peer: %w", v.policy.ID(), err)
	}
	return c, nil
}

func bindsClaims(userData, want []byte) bool {
	if len(userData) == len(want) {
		return constantTimeEqual(userData, want)
	}
	return len(userData) == attest.MaxUserData &&
		constantTimeEqual(userData[:len(want)], want) &&
		bytes.Count(userData[len(want):], []byte{0}) == attest.MaxUserData-len(want)
}

// remember records c as the claims of leaf until leaf is garbage collected.
func (v *Verifier) remember(leaf *x509.Certificate, c *attest.Claims) {
	k := weak.Make(leaf)
	v.mu.Lock()
	_, had := v.claims[k]
	v.claims[k] = c
	v.mu.Unlock()
	if !had {
		runtime.AddCleanup(leaf, func(k weak.Pointer[x509.Certificate]) {
			v.mu.Lock()
			delete(v.claims, k)
			v.mu.Unlock()
		}, k)
	}
}

// PeerClaims returns the verified claims of the peer of a connection whose handshake this
// verifier accepted (tls.Conn.ConnectionState). It returns an error wrapping ErrNoEvidence for a
// connection it did not verify, and for a peer InsecureSkipAttestation let in without evidence.
// The claims are shared: do not modify them.
func (v *Verifier) PeerClaims(cs tls.ConnectionState) (*attest.Claims, error) {
	if !cs.HandshakeComplete {
		return nil, fmt.Errorf("%w: handshake not complete", ErrNoEvidence)
	}
	if len(cs.PeerCertificates) == 0 {
		return nil, fmt.Errorf("%w: no peer certificate", ErrNoEvidence)
	}
	v.mu.Lock()
	c, ok := v.claims[weak.Make(cs.PeerCertificates[0])]
	v.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: this verifier did not accept the peer's certificate", ErrNoEvidence)
	}
	return c, nil
}
