package atls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// Option configures ServerConfig and ClientConfig.
type Option func(*config) error

type config struct {
	peer     *Verifier
	attester Attester
	now      func() time.Time
	lifetime time.Duration
	margin   time.Duration
}

// WithPeerVerifier makes a server require and verify client evidence with v (mutual attestation).
// A client that sends no evidence is refused with ErrNoEvidence unless v was built with
// InsecureSkipAttestation. ClientConfig takes its verifier as an argument instead.
func WithPeerVerifier(v *Verifier) Option {
	return func(c *config) error {
		if v == nil {
			return errors.New("atls: WithPeerVerifier: nil verifier")
		}
		c.peer = v
		return nil
	}
}

// WithAttester makes a client present an attested certificate from a (mutual attestation).
// ServerConfig takes its attester as an argument instead.
func WithAttester(a Attester) Option {
	return func(c *config) error {
		if a == nil {
			return errors.New("atls: WithAttester: nil attester")
		}
		c.attester = a
		return nil
	}
}

// WithClock sets the clock that dates certificates and decides when to refresh them.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("atls: WithClock: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithCertificateLifetime sets how long each certificate (and its evidence) is valid (default
// DefaultCertificateLifetime).
func WithCertificateLifetime(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("atls: WithCertificateLifetime: %v is not positive", d)
		}
		c.lifetime = d
		return nil
	}
}

// WithRefreshMargin sets how long before a certificate expires the next one is issued (default
// DefaultRefreshMargin, or a sixth of the lifetime if that is shorter).
func WithRefreshMargin(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("atls: WithRefreshMargin: %v is negative", d)
		}
		c.margin = d
		return nil
	}
}

func newConfig(opts []Option) (*config, error) {
	c := &config{now: time.Now, lifetime: DefaultCertificateLifetime, margin: -1}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.margin < 0 {
		c.margin = min(DefaultRefreshMargin, c.lifetime/6)
	}
	if c.margin >= c.lifetime {
		return nil, fmt.Errorf("atls: refresh margin %v is not shorter than the lifetime %v", c.margin, c.lifetime)
	}
	return c, nil
}

func (c *config) source(ctx context.Context, a Attester) (*certSource, error) {
	s := &certSource{attester: a, now: c.now, lifetime: c.lifetime, margin: c.margin}
	// Issue the first certificate now, so a broken attester fails here and not in a handshake.
	if _, err := s.get(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ServerConfig returns a TLS 1.3 server configuration that presents an attested certificate from
// attester, issued now (with ctx) and refreshed before it expires. With WithPeerVerifier it also
// requires and verifies client evidence. Session tickets are disabled: every connection
// verifies a certificate whose key it proved.
func ServerConfig(ctx context.Context, attester Attester, opts ...Option) (*tls.Config, error) {
	if attester == nil {
		return nil, errors.New("atls: ServerConfig: an attester is required")
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if c.attester != nil {
		return nil, errors.New("atls: ServerConfig: WithAttester is for clients; pass the attester as an argument")
	}
	src, err := c.source(ctx, attester)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		SessionTicketsDisabled: true,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return src.get(hello.Context())
		},
	}
	if c.peer != nil {
		// Request rather than require a certificate, so a client without one is refused by the
		// verifier with ErrNoEvidence (or let in by InsecureSkipAttestation).
		cfg.ClientAuth = tls.RequestClientCert
		cfg.VerifyConnection = c.peer.VerifyConnection
	}
	return cfg, nil
}

// ClientConfig returns a TLS 1.3 client configuration that accepts only servers whose evidence v
// accepts. The server's name and any web PKI chain play no part: the evidence is the identity.
// With WithAttester the client presents an attested certificate too (mutual attestation).
func ClientConfig(ctx context.Context, v *Verifier, opts ...Option) (*tls.Config, error) {
	if v == nil {
		return nil, errors.New("atls: ClientConfig: a verifier is required")
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if c.peer != nil {
		return nil, errors.New("atls: ClientConfig: WithPeerVerifier is for servers; pass the verifier as an argument")
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain is not checked against web PKI roots: VerifyConnection checks the evidence,
		// and TLS still checks that the server holds the certificate's key.
		InsecureSkipVerify: true,
		VerifyConnection:   v.VerifyConnection,
	}
	if c.attester != nil {
		src, err := c.source(ctx, c.attester)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(info *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.get(info.Context())
		}
	}
	return cfg, nil
}
