// Package grpccreds provides gRPC transport credentials built on attested TLS (package atls):
// the verification of the peer's evidence, its key binding and a policy runs inside the TLS
// handshake (tls.Config.VerifyConnection), so a gRPC connection to or from a refused enclave
// never carries an RPC.
//
// A server that attests (one-sided), and accepts any client:
//
//	creds, err := grpccreds.NewServerCredentials(ctx, enclave.Attest, nil)
//	srv := grpc.NewServer(grpc.Creds(creds))
//
// A server that also requires clients to attest (mutual), and checks an ACL per call:
//
//	v, err := atls.NewVerifier(verify.Options{}, connPolicy)
//	creds, err := grpccreds.NewServerCredentials(ctx, enclave.Attest, v)
//	...
//	func (s *server) Method(ctx context.Context, req *pb.Req) (*pb.Resp, error) {
//		claims, err := grpccreds.CheckPeer(ctx, methodPolicy)
//		if err != nil {
//			return nil, err // codes.Unauthenticated or codes.PermissionDenied
//		}
//		...
//	}
//
// A client that accepts only a given server enclave (add atls.WithAttester to attest itself):
//
//	v, err := atls.NewVerifier(verify.Options{}, serverPolicy)
//	creds, err := grpccreds.NewClientCredentials(ctx, v)
//	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
//
// Both sides see the peer's verified claims in the *AuthInfo of the connection: a server
// handler with FromContext (or CheckPeer), a client with the grpc.Peer call option.
package grpccreds

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/asylo-go/asylo/atls"
	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/policy"
)

// AuthType is the credentials.AuthInfo type of connections made with these credentials, and
// their ProtocolInfo.SecurityProtocol.
const AuthType = "asylo-atls"

// alpnH2 is the ALPN protocol of gRPC over TLS; like grpc's TLS credentials, both sides
// require it.
const alpnH2 = "h2"

// AuthInfo is the authentication information of a connection: the peer's verified claims and
// the TLS connection state. gRPC hands it to a server handler as peer.FromContext(ctx).AuthInfo
// and to a client through the grpc.Peer call option, as a *AuthInfo.
type AuthInfo struct {
	credentials.CommonAuthInfo
	// Claims are the peer's verified claims, accepted by the verifier's policy in the handshake.
	// nil when the peer presented no evidence: a client of a one-sided server, or a peer that a
	// verifier built with atls.InsecureSkipAttestation let in. Shared: do not modify them.
	Claims *attest.Claims
	// State is the TLS 1.3 connection state after the handshake.
	State tls.ConnectionState
}

// AuthType returns AuthType.
func (*AuthInfo) AuthType() string { return AuthType }

// GetSecurityValue returns the connection's security information for channelz.
func (a *AuthInfo) GetSecurityValue() credentials.ChannelzSecurityValue {
	v := &credentials.TLSChannelzSecurityValue{StandardName: tls.CipherSuiteName(a.State.CipherSuite)}
	if len(a.State.PeerCertificates) > 0 {
		v.RemoteCertificate = a.State.PeerCertificates[0].Raw
	}
	return v
}

// creds implements credentials.TransportCredentials for one side.
type creds struct {
	server bool
	cfg    *tls.Config
	// peer verifies the other side in the handshake; nil for a one-sided server.
	peer *atls.Verifier
}

var _ credentials.TransportCredentials = (*creds)(nil)

// NewServerCredentials returns server credentials that present an attested certificate from
// attester (atls.ServerConfig, issued now with ctx and refreshed before it expires). With a
// non-nil peer verifier every client must attest too (mutual attestation) and is verified by
// peer in the handshake; a client without evidence is refused unless peer was built with
// atls.InsecureSkipAttestation. With a nil peer, clients are not attested (one-sided). opts are
// atls options (clock, certificate lifetime); pass the peer verifier here, not with
// atls.WithPeerVerifier.
func NewServerCredentials(ctx context.Context, attester atls.Attester, peer *atls.Verifier, opts ...atls.Option) (credentials.TransportCredentials, error) {
	if peer != nil {
		opts = append(slices.Clip(opts), atls.WithPeerVerifier(peer))
	}
	cfg, err := atls.ServerConfig(ctx, attester, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpccreds: %w", err)
	}
	if peer == nil && (cfg.ClientAuth != tls.NoClientCert || cfg.VerifyConnection != nil) {
		// atls.WithPeerVerifier in opts: we could not report the claims it verified.
		return nil, errors.New("grpccreds: NewServerCredentials: pass the client verifier as the peer argument, not with atls.WithPeerVerifier")
	}
	cfg.NextProtos = []string{alpnH2}
	return &creds{server: true, cfg: cfg, peer: peer}, nil
}

// NewClientCredentials returns client credentials that accept only servers whose evidence v
// accepts (atls.ClientConfig): server names and web PKI play no part. With atls.WithAttester in
// opts the client presents an attested certificate too (mutual attestation).
func NewClientCredentials(ctx context.Context, v *atls.Verifier, opts ...atls.Option) (credentials.TransportCredentials, error) {
	cfg, err := atls.ClientConfig(ctx, v, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpccreds: %w", err)
	}
	cfg.NextProtos = []string{alpnH2}
	return &creds{cfg: cfg, peer: v}, nil
}

// ClientHandshake runs an attested TLS 1.3 handshake as a client on rawConn, bounded by ctx.
// The server's evidence is verified inside the handshake; authority is sent as SNI only.
func (c *creds) ClientHandshake(ctx context.Context, authority string, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if c.server {
		return nil, nil, errors.New("grpccreds: ClientHandshake on server credentials")
	}
	cfg := c.cfg
	if host := sniHost(authority); host != "" {
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	return c.handshake(ctx, tls.Client(rawConn, cfg), rawConn)
}

// ServerHandshake runs an attested TLS 1.3 handshake as a server on rawConn (gRPC bounds it with
// its connection timeout). With a peer verifier the client's evidence is verified inside the
// handshake.
func (c *creds) ServerHandshake(rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if !c.server {
		return nil, nil, errors.New("grpccreds: ServerHandshake on client credentials")
	}
	return c.handshake(context.Background(), tls.Server(rawConn, c.cfg), rawConn)
}

func (c *creds) handshake(ctx context.Context, conn *tls.Conn, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	fail := func(err error) (net.Conn, credentials.AuthInfo, error) {
		conn.Close()
		return nil, nil, err
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		return fail(fmt.Errorf("grpccreds: handshake: %w", err))
	}
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != alpnH2 {
		return fail(fmt.Errorf("grpccreds: peer did not negotiate ALPN %q (got %q)", alpnH2, cs.NegotiatedProtocol))
	}
	info := &AuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}, State: cs}
	if c.peer != nil {
		claims, err := c.peer.PeerClaims(cs)
		switch {
		case err == nil:
			info.Claims = claims
		case errors.Is(err, atls.ErrNoEvidence):
			// The handshake passed our verifier, so it let in a peer without evidence
			// (InsecureSkipAttestation): no claims.
		default:
			return fail(fmt.Errorf("grpccreds: %w", err))
		}
	}
	return wrapSyscallConn(rawConn, conn), info, nil
}

// Info returns the protocol information: SecurityProtocol AuthType. (The TLS version, always
// 1.3, is in the peer's AuthInfo; ProtocolInfo.SecurityVersion is deprecated.)
func (c *creds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: AuthType}
}

// Clone returns a copy of the credentials: the same attester's certificates and the same
// verifier, on a copy of the TLS configuration.
func (c *creds) Clone() credentials.TransportCredentials {
	return &creds{server: c.server, cfg: c.cfg.Clone(), peer: c.peer}
}

// OverrideServerName does nothing: the peer's identity is its evidence, never a name.
//
// Deprecated: gRPC does not call it; use grpc.WithAuthority to change the authority.
func (c *creds) OverrideServerName(string) error { return nil }

// sniHost returns the host of a gRPC authority for SNI, or "" for none (an IP address, or
// nothing).
func sniHost(authority string) string {
	host, _, err := net.SplitHostPort(authority)
	if err != nil {
		host = authority
	}
	if net.ParseIP(host) != nil {
		return ""
	}
	return host
}

// syscallConn keeps rawConn's syscall.Conn available through the TLS connection (gRPC uses it for
// channelz socket options), as grpc's own TLS credentials do.
type syscallConn struct {
	*tls.Conn
	sys syscall.Conn
}

func (c *syscallConn) SyscallConn() (syscall.RawConn, error) { return c.sys.SyscallConn() }

func wrapSyscallConn(rawConn net.Conn, conn *tls.Conn) net.Conn {
	if s, ok := rawConn.(syscall.Conn); ok {
		return &syscallConn{Conn: conn, sys: s}
	}
	return conn
}

// FromContext returns the AuthInfo of the connection of the RPC a server handler (or
// interceptor) is serving. ok is false when the call did not come over these credentials.
func FromContext(ctx context.Context) (info *AuthInfo, ok bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, false
	}
	info, ok = p.AuthInfo.(*AuthInfo)
	return info, ok && info != nil
}

// CheckPeer checks the verified claims of the peer of the RPC a server handler is serving
// against p, like Asylo's EnclaveAuthContext::EvaluateAcl, and returns them if p accepts them.
// The handshake already verified the evidence against the connection's verifier; CheckPeer
// applies a per-method (or per-resource) policy on top.
//
// Its errors are gRPC status errors that a handler can return as they are:
// codes.Unauthenticated when the call did not come over attested credentials or the peer
// presented no evidence (wrapping atls.ErrNoEvidence), codes.PermissionDenied when p refuses the
// claims (wrapping the policy's errors, policy.ErrMeasurementMismatch, ... for errors.Is), and
// codes.Internal for a nil policy. The status message sent to the peer names the policy but not
// the reasons; the error's Error() has them, for the server's logs.
func CheckPeer(ctx context.Context, p *policy.Policy) (*attest.Claims, error) {
	if p == nil {
		return nil, status.Error(codes.Internal, "grpccreds: CheckPeer: no policy")
	}
	info, ok := FromContext(ctx)
	if !ok {
		return nil, &peerError{status.New(codes.Unauthenticated, "peer is not connected with asylo-atls credentials"),
			fmt.Errorf("%w: not an %s connection", atls.ErrNoEvidence, AuthType)}
	}
	if info.Claims == nil {
		return nil, &peerError{status.New(codes.Unauthenticated, "peer presented no attestation evidence"),
			fmt.Errorf("%w: peer has no verified claims", atls.ErrNoEvidence)}
	}
	if r := p.Evaluate(info.Claims); !r.Allowed() {
		err := r.Err
		if err == nil {
			err = fmt.Errorf("status %v", r.Status)
		}
		return nil, &peerError{status.Newf(codes.PermissionDenied, "peer refused by policy %q", p.ID()), err}
	}
	return info.Claims, nil
}

// peerError is a gRPC status error that also wraps the reason for the server's logs and
// errors.Is. Returned as is, gRPC sends only the status (code and message) to the peer.
type peerError struct {
	st  *status.Status
	err error
}

func (e *peerError) Error() string              { return "grpccreds: " + e.st.Message() + ": " + e.err.Error() }
func (e *peerError) Unwrap() error              { return e.err }
func (e *peerError) GRPCStatus() *status.Status { return e.st }
