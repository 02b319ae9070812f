package atls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/asylo-go/asylo/attest"
)

// Attester returns encoded evidence (an attest.Evidence envelope) that binds userData.
// enclave.Attest is one.
type Attester func(ctx context.Context, userData []byte) ([]byte, error)

// Certificate defaults.
const (
	DefaultCertificateLifetime = time.Hour
	DefaultRefreshMargin       = 10 * time.Minute
	// notBeforeSkew backdates notBefore for peers whose clocks run a little behind.
	notBeforeSkew = time.Minute
)

const certSubject = "asylo attested TLS"

// IssueCertificate makes a new attested certificate (docs/atls.md, "Certificate") valid from
// now for lifetime: a new ECDSA P-256 key, evidence from attester over the hash of the claims
// map that binds the key, and a self-signed certificate carrying both.
func IssueCertificate(ctx context.Context, attester Attester, now time.Time, lifetime time.Duration) (*tls.Certificate, error) {
	if attester == nil {
		return nil, errors.New("atls: IssueCertificate: nil attester")
	}
	// ECDSA P-256: the one certificate key every TLS 1.3 stack must accept (RFC 8446 §9.1),
	// so any RA-TLS verifier can check our CertificateVerify.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("atls: generating the key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	// The claims map binds the key; the evidence binds the claims map.
	claims, err := Claims{PubkeyHash: HashSPKI(spki)}.Marshal()
	if err != nil {
		return nil, err
	}
	raw, err := attester(ctx, ClaimsUserData(claims))
	if err != nil {
		return nil, fmt.Errorf("atls: attesting the certificate key: %w", err)
	}
	ev, err := attest.ParseEvidence(raw)
	if err != nil {
		return nil, fmt.Errorf("atls: attester output: %w", err)
	}
	ext, err := (&Extension{Evidence: ev, Claims: claims}).Marshal()
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         pkix.Name{CommonName: certSubject},
		NotBefore:       now.Add(-notBeforeSkew),
		NotAfter:        now.Add(lifetime),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{{Id: OIDTaggedEvidence, Critical: false, Value: ext}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("atls: creating the certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if !HashSPKI(spki).Matches(leaf.RawSubjectPublicKeyInfo) {
		return nil, errors.New("atls: certificate public key differs from the attested one")
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// certSource serves one attested certificate for its lifetime and issues the next one when the
// clock passes notAfter - margin.
type certSource struct {
	attester Attester
	now      func() time.Time
	lifetime time.Duration
	margin   time.Duration

	mu   sync.Mutex
	cert *tls.Certificate
}

func (s *certSource) get(ctx context.Context) (*tls.Certificate, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cert != nil && now.Before(s.cert.Leaf.NotAfter.Add(-s.margin)) && !now.Before(s.cert.Leaf.NotBefore) {
		return s.cert, nil
	}
	c, err := IssueCertificate(ctx, s.attester, now, s.lifetime)
	if err != nil {
		// Keep serving the old certificate while it is valid; the next handshake retries.
		if s.cert != nil && now.Before(s.cert.Leaf.NotAfter) && !now.Before(s.cert.Leaf.NotBefore) {
			return s.cert, nil
		}
		return nil, err
	}
	s.cert = c
	return c, nil
}
