package atls

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/asylo-go/asylo/attest"
)

// Role names the side of a connection that proves freshness. The zero Role is invalid.
type Role uint8

// Roles.
const (
	RoleServer Role = iota + 1
	RoleClient
)

func (r Role) context() ([]byte, error) {
	switch r {
	case RoleServer:
		return []byte("server"), nil
	case RoleClient:
		return []byte("client"), nil
	}
	return nil, fmt.Errorf("atls: invalid role %d", r)
}

// FreshExporterLabel is the TLS exporter label of fresh mode (docs/atls.md, "Fresh mode").
const FreshExporterLabel = "EXPORTER-asylo-attested-tls-fresh"

const (
	freshNonceSize = 32
	maxFreshProof  = MaxExtensionSize
)

// freshNonce is the exporter value the prover of role binds.
func freshNonce(cs tls.ConnectionState, role Role) ([]byte, error) {
	ctx, err := role.context()
	if err != nil {
		return nil, err
	}
	if !cs.HandshakeComplete || cs.Version != tls.VersionTLS13 {
		return nil, errors.New("atls: fresh mode needs a completed TLS 1.3 handshake")
	}
	return cs.ExportKeyingMaterial(FreshExporterLabel, ctx, freshNonceSize)
}

// withDeadline applies ctx's deadline and cancellation to conn until the returned func runs.
func withDeadline(ctx context.Context, conn *tls.Conn) func() {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		conn.SetDeadline(time.Time{})
	}
}

// ProveFresh sends the fresh-mode proof of the side role (this side) on conn: evidence from
// attester that binds this session's exporter value. It completes the handshake first. The
// proof is the first application data this side sends.
func ProveFresh(ctx context.Context, conn *tls.Conn, role Role, attester Attester) error {
	if attester == nil {
		return errors.New("atls: ProveFresh: nil attester")
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		return err
	}
	nonce, err := freshNonce(conn.ConnectionState(), role)
	if err != nil {
		return err
	}
	claims, err := Claims{Nonce: nonce}.Marshal()
	if err != nil {
		return err
	}
	raw, err := attester(ctx, ClaimsUserData(claims))
	if err != nil {
		return fmt.Errorf("atls: attesting the session: %w", err)
	}
	ev, err := attest.ParseEvidence(raw)
	if err != nil {
		return fmt.Errorf("atls: attester output: %w", err)
	}
	proof, err := (&Extension{Evidence: ev, Claims: claims}).Marshal()
	if err != nil {
		return err
	}
	msg := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(proof)), uint32(len(proof)))
	msg = append(msg, proof...)
	defer withDeadline(ctx, conn)()
	if _, err := conn.Write(msg); err != nil {
		return fmt.Errorf("atls: sending the fresh proof: %w", err)
	}
	return nil
}

// VerifyFresh reads and verifies the fresh-mode proof the peer of role sends on conn (for a
// client: VerifyFresh(ctx, conn, RoleServer, v)), after the handshake v verified. It returns the
// claims of the fresh evidence. A proof made for another session is refused with ErrStale.
func VerifyFresh(ctx context.Context, conn *tls.Conn, role Role, v *Verifier) (*attest.Claims, error) {
	if v == nil {
		return nil, errors.New("atls: VerifyFresh: nil verifier")
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	cs := conn.ConnectionState()
	// The certificate was verified in the handshake; fresh evidence must come from its enclave.
	certClaims, err := v.PeerClaims(cs)
	if err != nil {
		return nil, err
	}
	nonce, err := freshNonce(cs, role)
	if err != nil {
		return nil, err
	}
	// Read one proof: a 4-byte length, then the tagged evidence.
	proof, err := readProof(ctx, conn)
	if err != nil {
		return nil, err
	}
	e, err := ParseExtension(proof)
	if err != nil {
		return nil, err
	}
	cm, err := ParseClaims(e.Claims)
	if err != nil {
		return nil, err
	}
	// The proof was made for this session.
	if cm.Nonce == nil || !constantTimeEqual(cm.Nonce, nonce) {
		return nil, fmt.Errorf("%w: fresh proof made for another session", ErrStale)
	}
	if cm.PubkeyHash != nil && !cm.PubkeyHash.Matches(cs.PeerCertificates[0].RawSubjectPublicKeyInfo) {
		return nil, fmt.Errorf("%w: fresh proof binds another key", ErrKeyMismatch)
	}
	// The evidence verifies, binds the claims, is recent, and the policy accepts it.
	c, err := v.verifyEvidence(ctx, e, v.now())
	if err != nil {
		return nil, err
	}
	// It comes from the same enclave as the certificate's evidence.
	if c.Platform != certClaims.Platform || !bytes.Equal(c.Measurement, certClaims.Measurement) ||
		!bytes.Equal(c.PlatformKeyID, certClaims.PlatformKeyID) {
		return nil, fmt.Errorf("%w: fresh evidence from another enclave than the certificate's", ErrClaimsMismatch)
	}
	return c, nil
}

func readProof(ctx context.Context, conn *tls.Conn) ([]byte, error) {
	defer withDeadline(ctx, conn)()
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, fmt.Errorf("atls: reading the fresh proof: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxFreshProof {
		return nil, fmt.Errorf("%w: fresh proof of %d bytes", ErrMalformedExtension, n)
	}
	proof := make([]byte, n)
	if _, err := io.ReadFull(conn, proof); err != nil {
		return nil, fmt.Errorf("atls: reading the fresh proof: %w", err)
	}
	return proof, nil
}
