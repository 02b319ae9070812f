package grpccreds_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/asylo-go/asylo/atls"
	"github.com/asylo-go/asylo/atls/grpccreds"
	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/policy"
	"github.com/asylo-go/asylo/verify"
)

var (
	measA = identity.Measurement{0xaa, 1} // the server enclave
	measB = identity.Measurement{0xbb, 2} // the client enclave the server wants
	measC = identity.Measurement{0xcc, 3} // another client enclave
)

func newPlatform(t testing.TB) *platform.Platform {
	t.Helper()
	p, err := platform.Open(t.TempDir() + "/p")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// simAttester attests as a debug sim enclave of measurement m.
func simAttester(p *platform.Platform, m identity.Measurement) atls.Attester {
	return func(_ context.Context, userData []byte) ([]byte, error) {
		ev, err := p.Attest(identity.Identity{Backend: "sim", Measurement: m, Debug: true}, userData, time.Now())
		if err != nil {
			return nil, err
		}
		return ev.Marshal()
	}
}

func exactPolicy(t testing.TB, p *platform.Platform, m identity.Measurement) *policy.Policy {
	t.Helper()
	pol, err := policy.ExactMeasurement(m[:], policy.AcceptSimPlatform(p.KeyID()), policy.AllowDebug())
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// anySimPolicy accepts any debug enclave of sim platform p.
func anySimPolicy(t testing.TB, p *platform.Platform) *policy.Policy {
	t.Helper()
	pol, err := policy.NewACLPolicy(policy.Expect(policy.Expectation{
		Reference: policy.Reference{Platform: attest.PlatformSim},
		Match:     policy.MatchSpec{Platform: true},
	}), policy.AcceptSimPlatform(p.KeyID()), policy.AllowDebug())
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

func newVerifier(t testing.TB, p *platform.Platform, pol *policy.Policy, vopts ...atls.VerifierOption) *atls.Verifier {
	t.Helper()
	v, err := atls.NewVerifier(verify.Options{SimRoots: []*x509.Certificate{p.Root()}}, pol, vopts...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func serverCreds(t testing.TB, a atls.Attester, peer *atls.Verifier) credentials.TransportCredentials {
	t.Helper()
	c, err := grpccreds.NewServerCredentials(context.Background(), a, peer)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func clientCreds(t testing.TB, v *atls.Verifier, opts ...atls.Option) credentials.TransportCredentials {
	t.Helper()
	c, err := grpccreds.NewClientCredentials(context.Background(), v, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// healthServer is the health service whose Check runs check (if set) on the call's context
// and records what it saw.
type healthServer struct {
	healthpb.UnimplementedHealthServer
	check func(ctx context.Context) error

	mu    sync.Mutex
	calls int
	info  *grpccreds.AuthInfo
	err   error // check's result
}

func (s *healthServer) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	info, _ := grpccreds.FromContext(ctx)
	var err error
	if s.check != nil {
		err = s.check(ctx)
	}
	s.mu.Lock()
	s.calls++
	s.info, s.err = info, err
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (s *healthServer) seen() (int, *grpccreds.AuthInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.info, s.err
}

// serve starts a gRPC server with creds and h on loopback and returns its address.
func serve(t testing.TB, creds credentials.TransportCredentials, h healthpb.HealthServer, sopts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(append([]grpc.ServerOption{grpc.Creds(creds)}, sopts...)...)
	healthpb.RegisterHealthServer(s, h)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func dial(t testing.TB, addr string, creds credentials.TransportCredentials) healthpb.HealthClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

// call makes one Check call and returns the client's view of the server.
func call(t testing.TB, c healthpb.HealthClient) (*grpccreds.AuthInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var p peer.Peer
	_, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	info, _ := p.AuthInfo.(*grpccreds.AuthInfo)
	return info, err
}

func checkInfo(t *testing.T, who string, info *grpccreds.AuthInfo, m *identity.Measurement) {
	t.Helper()
	if info == nil {
		t.Fatalf("%s: no AuthInfo", who)
	}
	if info.AuthType() != grpccreds.AuthType || info.AuthType() != "asylo-atls" {
		t.Errorf("%s: AuthType %q", who, info.AuthType())
	}
	if info.SecurityLevel != credentials.PrivacyAndIntegrity || info.GetCommonAuthInfo().SecurityLevel != credentials.PrivacyAndIntegrity {
		t.Errorf("%s: security level %v", who, info.SecurityLevel)
	}
	if info.State.Version != tls.VersionTLS13 || !info.State.HandshakeComplete || info.State.NegotiatedProtocol != "h2" {
		t.Errorf("%s: TLS state version %#x complete %v ALPN %q", who, info.State.Version, info.State.HandshakeComplete, info.State.NegotiatedProtocol)
	}
	if m == nil {
		if info.Claims != nil {
			t.Errorf("%s: claims %+v for an unattested peer", who, info.Claims)
		}
		return
	}
	if c := info.Claims; c == nil || c.Platform != attest.PlatformSim || !bytes.Equal(c.Measurement, m[:]) {
		t.Errorf("%s: claims %+v, want measurement %x", who, c, m[:])
	}
}

func TestOneSided(t *testing.T) {
	p := newPlatform(t)
	h := &healthServer{check: func(ctx context.Context) error {
		// The client is not attested: an ACL check refuses it, unauthenticated.
		_, err := grpccreds.CheckPeer(ctx, exactPolicy(t, p, measB))
		if status.Code(err) != codes.Unauthenticated || !errors.Is(err, atls.ErrNoEvidence) {
			t.Errorf("CheckPeer on an unattested client: %v", err)
		}
		return nil
	}}
	addr := serve(t, serverCreds(t, simAttester(p, measA), nil), h)
	info, err := call(t, dial(t, addr, clientCreds(t, newVerifier(t, p, exactPolicy(t, p, measA)))))
	if err != nil {
		t.Fatal(err)
	}
	checkInfo(t, "client", info, &measA)
	n, sinfo, _ := h.seen()
	if n != 1 {
		t.Fatalf("%d calls", n)
	}
	checkInfo(t, "server", sinfo, nil)
}

func TestMutual(t *testing.T) {
	p := newPlatform(t)
	h := &healthServer{}
	h.check = func(ctx context.Context) error {
		c, err := grpccreds.CheckPeer(ctx, exactPolicy(t, p, measB))
		if err == nil && !bytes.Equal(c.Measurement, measB[:]) {
			t.Errorf("CheckPeer returned %+v", c)
		}
		return err
	}
	sc := serverCreds(t, simAttester(p, measA), newVerifier(t, p, exactPolicy(t, p, measB)))
	addr := serve(t, sc, h)
	cc := clientCreds(t, newVerifier(t, p, exactPolicy(t, p, measA)), atls.WithAttester(simAttester(p, measB)))
	client := dial(t, addr, cc)
	for range 2 { // the second call reuses the connection
		info, err := call(t, client)
		if err != nil {
			t.Fatal(err)
		}
		checkInfo(t, "client", info, &measA)
	}
	n, sinfo, err := h.seen()
	if n != 2 || err != nil {
		t.Fatalf("%d calls, CheckPeer: %v", n, err)
	}
	checkInfo(t, "server", sinfo, &measB)

	// Clones work the same.
	addr2 := serve(t, sc.Clone(), h)
	if info, err := call(t, dial(t, addr2, cc.Clone())); err != nil {
		t.Fatal(err)
	} else {
		checkInfo(t, "client of clone", info, &measA)
	}
}

// TestCheckPeerDenied: the handshake accepts any enclave of the platform, the handler's ACL only
// B: client C is refused per call with PermissionDenied, and the reasons stay on the server.
func TestCheckPeerDenied(t *testing.T) {
	p := newPlatform(t)
	h := &healthServer{check: func(ctx context.Context) error {
		_, err := grpccreds.CheckPeer(ctx, exactPolicy(t, p, measB))
		return err
	}}
	addr := serve(t, serverCreds(t, simAttester(p, measA), newVerifier(t, p, anySimPolicy(t, p))), h)
	vA := newVerifier(t, p, exactPolicy(t, p, measA))

	_, err := call(t, dial(t, addr, clientCreds(t, vA, atls.WithAttester(simAttester(p, measC)))))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("client C: %v, want PermissionDenied", err)
	}
	if msg := status.Convert(err).Message(); strings.Contains(msg, "measurement") {
		t.Errorf("the refusal's reasons reached the client: %q", msg)
	}
	n, info, herr := h.seen()
	if n != 1 || !errors.Is(herr, policy.ErrMeasurementMismatch) || status.Code(herr) != codes.PermissionDenied {
		t.Errorf("%d calls, handler's CheckPeer: %v", n, herr)
	}
	checkInfo(t, "server", info, &measC) // the connection's claims are C's

	// Client B passes the same server.
	if _, err := call(t, dial(t, addr, clientCreds(t, vA, atls.WithAttester(simAttester(p, measB))))); err != nil {
		t.Fatalf("client B: %v", err)
	}
}

// unavailable checks that a call failed in the handshake, before reaching the handler.
func unavailable(t *testing.T, who string, err error, h *healthServer) {
	t.Helper()
	t.Logf("%s: %v", who, err)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("%s: %v, want Unavailable", who, err)
	}
	if n, _, _ := h.seen(); n != 0 {
		t.Errorf("%s: the handler ran %d times", who, n)
	}
}

// TestHandshakeRefused: peers the verifiers' policies exclude never reach a handler.
func TestHandshakeRefused(t *testing.T) {
	p := newPlatform(t)
	h := &healthServer{}
	addr := serve(t, serverCreds(t, simAttester(p, measA), newVerifier(t, p, exactPolicy(t, p, measB))), h)
	vA := newVerifier(t, p, exactPolicy(t, p, measA))

	// The server's verifier refuses client C.
	_, err := call(t, dial(t, addr, clientCreds(t, vA, atls.WithAttester(simAttester(p, measC)))))
	unavailable(t, "client C", err, h)

	// Mutual is required: a client that presents no evidence is refused.
	_, err = call(t, dial(t, addr, clientCreds(t, vA)))
	unavailable(t, "client without evidence", err, h)

	// Neither is a plain TLS client with a certificate but no evidence.
	plain := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		Certificates: []tls.Certificate{selfSignedCert(t)}})
	_, err = call(t, dial(t, addr, plain))
	unavailable(t, "plain TLS client", err, h)

	// The client's verifier refuses a server that is not B.
	_, err = call(t, dial(t, addr, clientCreds(t, newVerifier(t, p, exactPolicy(t, p, measB)), atls.WithAttester(simAttester(p, measB)))))
	unavailable(t, "server A for a client that wants B", err, h)
	if err != nil && !strings.Contains(err.Error(), "policy") {
		t.Errorf("client's error does not say why: %v", err)
	}
}

// TestInsecureSkipAttestation: a server verifier that lets unattested clients in gives them an
// AuthInfo without claims, which CheckPeer refuses.
func TestInsecureSkipAttestation(t *testing.T) {
	p := newPlatform(t)
	h := &healthServer{check: func(ctx context.Context) error {
		_, err := grpccreds.CheckPeer(ctx, exactPolicy(t, p, measB))
		return err
	}}
	v := newVerifier(t, p, exactPolicy(t, p, measB), atls.InsecureSkipAttestation())
	addr := serve(t, serverCreds(t, simAttester(p, measA), v), h)
	_, err := call(t, dial(t, addr, clientCreds(t, newVerifier(t, p, exactPolicy(t, p, measA)))))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unattested client: %v, want Unauthenticated", err)
	}
	_, info, _ := h.seen()
	checkInfo(t, "server", info, nil)
}

func TestCheckPeerWithoutCredentials(t *testing.T) {
	p := newPlatform(t)
	pol := exactPolicy(t, p, measB)
	if _, err := grpccreds.CheckPeer(context.Background(), pol); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no peer: %v", err)
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{}})
	if _, err := grpccreds.CheckPeer(ctx, pol); status.Code(err) != codes.Unauthenticated {
		t.Errorf("TLS peer: %v", err)
	}
	ctx = peer.NewContext(context.Background(), &peer.Peer{AuthInfo: &grpccreds.AuthInfo{}})
	if _, err := grpccreds.CheckPeer(ctx, nil); status.Code(err) != codes.Internal {
		t.Errorf("nil policy: %v", err)
	}
}

func TestCredentials(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	a := simAttester(p, measA)
	v := newVerifier(t, p, exactPolicy(t, p, measA))
	sc := serverCreds(t, a, v)
	cc := clientCreds(t, v)
	for _, c := range []credentials.TransportCredentials{sc, cc, sc.Clone(), cc.Clone()} {
		if info := c.Info(); info.SecurityProtocol != "asylo-atls" || info.ServerName != "" {
			t.Errorf("Info %+v", info)
		}
		if err := c.OverrideServerName("example.com"); err != nil || c.Info().ServerName != "" {
			t.Errorf("OverrideServerName: %v, Info %+v", err, c.Info())
		}
	}
	if sc.Clone() == sc || cc.Clone() == cc {
		t.Error("Clone returned the same credentials")
	}

	if _, err := grpccreds.NewServerCredentials(ctx, nil, nil); err == nil {
		t.Error("server without attester")
	}
	if _, err := grpccreds.NewClientCredentials(ctx, nil); err == nil {
		t.Error("client without verifier")
	}
	if _, err := grpccreds.NewServerCredentials(ctx, a, nil, atls.WithPeerVerifier(v)); err == nil {
		t.Error("server with atls.WithPeerVerifier")
	}
	if _, _, err := sc.ClientHandshake(ctx, "x", nil); err == nil {
		t.Error("ClientHandshake on server credentials")
	}
	if _, _, err := cc.ServerHandshake(nil); err == nil {
		t.Error("ServerHandshake on client credentials")
	}
}

// TestALPN: a TLS client that does not offer h2 is refused by ServerHandshake.
func TestALPN(t *testing.T) {
	p := newPlatform(t)
	sc := serverCreds(t, simAttester(p, measA), nil)
	cfg, err := atls.ClientConfig(context.Background(), newVerifier(t, p, exactPolicy(t, p, measA)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		raw.SetDeadline(time.Now().Add(20 * time.Second))
		_, _, err = sc.ServerHandshake(raw)
		errc <- err
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err == nil {
		defer conn.Close()
	}
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "ALPN") {
		t.Errorf("ServerHandshake without ALPN: %v", err)
	}
}
