package atls_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/asylo-go/asylo/atls"
	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/tlstest"
	"github.com/asylo-go/asylo/policy"
	"github.com/asylo-go/asylo/verify"
)

var (
	measA = identity.Measurement{0xaa, 1}
	measB = identity.Measurement{0xbb, 2}
)

func newPlatform(t testing.TB) *platform.Platform {
	t.Helper()
	p, err := platform.Open(t.TempDir() + "/p")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// simAttester attests as a debug sim enclave of measurement m, dating evidence by clock.
func simAttester(p *platform.Platform, m identity.Measurement, clock func() time.Time) atls.Attester {
	return func(_ context.Context, userData []byte) ([]byte, error) {
		ev, err := p.Attest(identity.Identity{Backend: "sim", Measurement: m, Debug: true}, userData, clock())
		if err != nil {
			return nil, err
		}
		return ev.Marshal()
	}
}

func newVerifier(t testing.TB, p *platform.Platform, m identity.Measurement, vopts ...atls.VerifierOption) *atls.Verifier {
	t.Helper()
	pol, err := policy.ExactMeasurement(m[:], policy.AcceptSimPlatform(p.KeyID()), policy.AllowDebug())
	if err != nil {
		t.Fatal(err)
	}
	v, err := atls.NewVerifier(verify.Options{SimRoots: []*x509.Certificate{p.Root()}}, pol, vopts...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type result struct {
	conn *tls.Conn
	err  error
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return sc, cc
}

// handshake runs a TLS handshake between server and client configurations over loopback TCP
// (buffered, so an alert after the client finished does not block).
func handshake(t testing.TB, scfg, ccfg *tls.Config) (srv, cli result) {
	t.Helper()
	sc, cc := tcpPair(t)
	var wg sync.WaitGroup
	wg.Add(2)
	run := func(c *tls.Conn, raw net.Conn, out *result) {
		defer wg.Done()
		out.conn, out.err = c, c.HandshakeContext(context.Background())
		if out.err != nil {
			raw.Close()
		}
	}
	go run(tls.Server(sc, scfg), sc, &srv)
	go run(tls.Client(cc, ccfg), cc, &cli)
	wg.Wait()
	t.Cleanup(func() { sc.Close(); cc.Close() })
	return srv, cli
}

func serverConfig(t testing.TB, a atls.Attester, opts ...atls.Option) *tls.Config {
	t.Helper()
	cfg, err := atls.ServerConfig(context.Background(), a, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func clientConfig(t testing.TB, v *atls.Verifier, opts ...atls.Option) *tls.Config {
	t.Helper()
	cfg, err := atls.ClientConfig(context.Background(), v, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestOneSided(t *testing.T) {
	p := newPlatform(t)
	v := newVerifier(t, p, measA)
	srv, cli := handshake(t, serverConfig(t, simAttester(p, measA, time.Now)), clientConfig(t, v))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("server: %v, client: %v", srv.err, cli.err)
	}
	c, err := v.PeerClaims(cli.conn.ConnectionState())
	if err != nil {
		t.Fatal(err)
	}
	if c.Platform != attest.PlatformSim || !bytes.Equal(c.Measurement, measA[:]) || !c.Debug {
		t.Errorf("claims %+v", c)
	}
	// A verifier that did not accept this connection has no claims for it.
	if _, err := newVerifier(t, p, measA).PeerClaims(cli.conn.ConnectionState()); !errors.Is(err, atls.ErrNoEvidence) {
		t.Errorf("other verifier: %v", err)
	}
	// Data flows.
	go cli.conn.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(srv.conn, buf); err != nil || string(buf) != "ping" {
		t.Errorf("read %q, %v", buf, err)
	}
}

func TestMutual(t *testing.T) {
	p := newPlatform(t)
	clientV := newVerifier(t, p, measA) // the client accepts server A
	serverV := newVerifier(t, p, measB) // the server accepts client B
	scfg := serverConfig(t, simAttester(p, measA, time.Now), atls.WithPeerVerifier(serverV))
	ccfg := clientConfig(t, clientV, atls.WithAttester(simAttester(p, measB, time.Now)))
	srv, cli := handshake(t, scfg, ccfg)
	if srv.err != nil || cli.err != nil {
		t.Fatalf("server: %v, client: %v", srv.err, cli.err)
	}
	sc, err := serverV.PeerClaims(srv.conn.ConnectionState())
	if err != nil || !bytes.Equal(sc.Measurement, measB[:]) {
		t.Fatalf("server sees %+v, %v", sc, err)
	}
	cc, err := clientV.PeerClaims(cli.conn.ConnectionState())
	if err != nil || !bytes.Equal(cc.Measurement, measA[:]) {
		t.Fatalf("client sees %+v, %v", cc, err)
	}
}

func TestInsecureSkipAttestation(t *testing.T) {
	p := newPlatform(t)
	serverV := newVerifier(t, p, measB, atls.InsecureSkipAttestation())
	scfg := serverConfig(t, simAttester(p, measA, time.Now), atls.WithPeerVerifier(serverV))
	srv, cli := handshake(t, scfg, clientConfig(t, newVerifier(t, p, measA)))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("server: %v, client: %v", srv.err, cli.err)
	}
	if _, err := serverV.PeerClaims(srv.conn.ConnectionState()); !errors.Is(err, atls.ErrNoEvidence) {
		t.Errorf("claims of a non-attested client: %v", err)
	}
	// Evidence that is present is still verified: client A is not B.
	ccfg := clientConfig(t, newVerifier(t, p, measA), atls.WithAttester(simAttester(p, measA, time.Now)))
	if srv, _ := handshake(t, scfg, ccfg); !errors.Is(srv.err, policy.ErrMeasurementMismatch) {
		t.Errorf("wrong client evidence: %v", srv.err)
	}
}

// selfSigned makes a certificate for key with the given extension value (none if nil).
func selfSigned(t testing.TB, key *ecdsa.PrivateKey, ext []byte, critical bool, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if ext != nil {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: atls.OIDTaggedEvidence, Critical: critical, Value: ext}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func newKey(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, spki
}

// extensionFor builds an extension whose claims bind spki, with evidence from a.
func extensionFor(t testing.TB, a atls.Attester, spki []byte) []byte {
	t.Helper()
	claims, err := atls.Claims{PubkeyHash: atls.HashSPKI(spki)}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return extensionWith(t, a, claims, claims)
}

// extensionWith builds an extension carrying claims, with evidence over the hash of bound.
func extensionWith(t testing.TB, a atls.Attester, claims, bound []byte) []byte {
	t.Helper()
	raw, err := a(context.Background(), atls.ClaimsUserData(bound))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := attest.ParseEvidence(raw)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := (&atls.Extension{Evidence: ev, Claims: claims}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return ext
}

func staticServer(c tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{c}}
}

func extensionOf(t testing.TB, c *x509.Certificate) []byte {
	for _, e := range c.Extensions {
		if e.Id.Equal(atls.OIDTaggedEvidence) {
			return e.Value
		}
	}
	t.Fatal("no extension")
	return nil
}

func TestRefusals(t *testing.T) {
	p := newPlatform(t)
	now := time.Now()
	honest := simAttester(p, measA, time.Now)
	keyA, spkiA := newKey(t)
	keyM, spkiM := newKey(t)
	genuine, err := atls.IssueCertificate(context.Background(), honest, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	genuineExt := extensionOf(t, genuine.Leaf)
	genuineEv, _ := atls.ParseExtension(genuineExt)
	claimsM, _ := atls.Claims{PubkeyHash: atls.HashSPKI(spkiM)}.Marshal()
	rewritten, _ := (&atls.Extension{Evidence: genuineEv.Evidence, Claims: claimsM}).Marshal()
	valid := func(k *ecdsa.PrivateKey, ext []byte) *tls.Config {
		return staticServer(selfSigned(t, k, ext, false, now.Add(-time.Minute), now.Add(time.Hour)))
	}
	at := func(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }
	other := newPlatform(t)

	cases := []struct {
		name   string
		server *tls.Config
		client *tls.Config
		side   string // which side reports the error
		want   error
	}{
		{"evidence binds another key", valid(keyA, extensionFor(t, honest, spkiM)), nil, "client", atls.ErrKeyMismatch},
		{"other measurement", serverConfig(t, simAttester(p, measB, time.Now)), nil, "client", policy.ErrMeasurementMismatch},
		{"expired certificate", serverConfig(t, simAttester(p, measA, at(-3*time.Hour)), atls.WithClock(at(-3*time.Hour))), nil, "client", atls.ErrStale},
		{"certificate not yet valid", serverConfig(t, simAttester(p, measA, at(time.Hour)), atls.WithClock(at(time.Hour))), nil, "client", atls.ErrStale},
		{"evidence too old", valid(keyA, extensionFor(t, simAttester(p, measA, at(-2*time.Hour)), spkiA)),
			clientConfig(t, newVerifier(t, p, measA, atls.WithMaxEvidenceAge(90*time.Minute))), "client", atls.ErrStale},
		{"verifier clock past the certificate", serverConfig(t, honest),
			clientConfig(t, newVerifier(t, p, measA, atls.WithVerifierClock(at(2*time.Hour)))), "client", atls.ErrStale},
		{"no evidence", valid(keyA, nil), nil, "client", atls.ErrNoEvidence},
		{"critical extension", staticServer(selfSigned(t, keyA, extensionFor(t, honest, spkiA), true, now.Add(-time.Minute), now.Add(time.Hour))), nil, "client", atls.ErrMalformedExtension},
		{"garbage extension", valid(keyA, []byte{0xd9, 0xea, 0x60, 0x82, 0x41}), nil, "client", atls.ErrMalformedExtension},
		{"relay: genuine evidence in the attacker's certificate", valid(keyM, genuineExt), nil, "client", atls.ErrKeyMismatch},
		{"relay: genuine evidence, claims rewritten for the attacker's key", valid(keyM, rewritten), nil, "client", atls.ErrClaimsMismatch},
		{"evidence from an untrusted platform", serverConfig(t, simAttester(other, measA, time.Now)), nil, "client", attest.ErrUntrustedRoot},
		{"mutual: client omits its certificate",
			serverConfig(t, honest, atls.WithPeerVerifier(newVerifier(t, p, measB))), nil, "server", atls.ErrNoEvidence},
		{"mutual: client evidence from another measurement",
			serverConfig(t, honest, atls.WithPeerVerifier(newVerifier(t, p, measB))),
			clientConfig(t, newVerifier(t, p, measA), atls.WithAttester(honest)), "server", policy.ErrMeasurementMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ccfg := tc.client
			if ccfg == nil {
				ccfg = clientConfig(t, newVerifier(t, p, measA))
			}
			srv, cli := handshake(t, tc.server, ccfg)
			got := cli.err
			if tc.side == "server" {
				got = srv.err
			}
			if !errors.Is(got, tc.want) {
				t.Fatalf("%s error %v, want %v (server %v, client %v)", tc.side, got, tc.want, srv.err, cli.err)
			}
			if tc.side == "client" && srv.err == nil {
				t.Errorf("server completed the handshake")
			}
		})
	}
}

func TestPlainClientSeesCertificate(t *testing.T) {
	p := newPlatform(t)
	addr := tlstest.HandshakeServer(t, serverConfig(t, simAttester(p, measA, time.Now)))
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	leaf := c.ConnectionState().PeerCertificates[0]
	e, err := atls.ParseExtension(extensionOf(t, leaf))
	if err != nil || e.Evidence.Format != attest.FormatSim {
		t.Fatalf("extension %v, %v", e, err)
	}
	// Anyone can check a certificate offline too.
	cl, err := newVerifier(t, p, measA).VerifyCertificate(context.Background(), leaf, extensionOf(t, leaf))
	if err != nil || !bytes.Equal(cl.Measurement, measA[:]) {
		t.Fatalf("VerifyCertificate: %+v, %v", cl, err)
	}
}

func TestFresh(t *testing.T) {
	p := newPlatform(t)
	a := simAttester(p, measA, time.Now)
	scfg := serverConfig(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Session 1: the server proves, the client verifies.
	v := newVerifier(t, p, measA)
	srv, cli := handshake(t, scfg, clientConfig(t, v))
	if srv.err != nil || cli.err != nil {
		t.Fatal(srv.err, cli.err)
	}
	go atls.ProveFresh(ctx, srv.conn, atls.RoleServer, a)
	c, err := atls.VerifyFresh(ctx, cli.conn, atls.RoleServer, v)
	if err != nil || !bytes.Equal(c.Measurement, measA[:]) {
		t.Fatalf("VerifyFresh: %+v, %v", c, err)
	}

	// Session 2: record the server's proof without verifying it.
	srv, cli = handshake(t, scfg, clientConfig(t, v))
	if srv.err != nil || cli.err != nil {
		t.Fatal(srv.err, cli.err)
	}
	go atls.ProveFresh(ctx, srv.conn, atls.RoleServer, a)
	var hdr [4]byte
	io.ReadFull(cli.conn, hdr[:])
	recorded := make([]byte, 4+binary.BigEndian.Uint32(hdr[:]))
	copy(recorded, hdr[:])
	if _, err := io.ReadFull(cli.conn, recorded[4:]); err != nil {
		t.Fatal(err)
	}

	// Session 3: the server replays session 2's proof (same certificate, same enclave).
	srv, cli = handshake(t, scfg, clientConfig(t, v))
	if srv.err != nil || cli.err != nil {
		t.Fatal(srv.err, cli.err)
	}
	go srv.conn.Write(recorded)
	if _, err := atls.VerifyFresh(ctx, cli.conn, atls.RoleServer, v); !errors.Is(err, atls.ErrStale) {
		t.Fatalf("replayed proof: %v, want ErrStale", err)
	}

	// A proof by the wrong role (a reflected proof) is refused too.
	srv, cli = handshake(t, scfg, clientConfig(t, v))
	go atls.ProveFresh(ctx, srv.conn, atls.RoleClient, a)
	if _, err := atls.VerifyFresh(ctx, cli.conn, atls.RoleServer, v); !errors.Is(err, atls.ErrStale) {
		t.Fatalf("wrong-role proof: %v, want ErrStale", err)
	}

	// Fresh evidence from another enclave than the certificate's.
	srv, cli = handshake(t, scfg, clientConfig(t, newVerifier(t, p, measA, atls.InsecureSkipAttestation())))
	_ = srv
	pol, _ := policy.NewACLPolicy(policy.AnyOf(
		policy.Expect(policy.Expectation{Name: "a", Reference: policy.Reference{Measurement: measA[:]}, Match: policy.MatchSpec{Measurement: true}}),
		policy.Expect(policy.Expectation{Name: "b", Reference: policy.Reference{Measurement: measB[:]}, Match: policy.MatchSpec{Measurement: true}}),
	), policy.AcceptSimPlatform(p.KeyID()), policy.AllowDebug())
	both, _ := atls.NewVerifier(verify.Options{SimRoots: []*x509.Certificate{p.Root()}}, pol)
	srv, cli = handshake(t, scfg, clientConfig(t, both))
	if srv.err != nil || cli.err != nil {
		t.Fatal(srv.err, cli.err)
	}
	go atls.ProveFresh(ctx, srv.conn, atls.RoleServer, simAttester(p, measB, time.Now))
	if _, err := atls.VerifyFresh(ctx, cli.conn, atls.RoleServer, both); !errors.Is(err, atls.ErrClaimsMismatch) {
		t.Fatalf("proof from another enclave: %v, want ErrClaimsMismatch", err)
	}
}

func TestMutualFresh(t *testing.T) {
	p := newPlatform(t)
	aS, aC := simAttester(p, measA, time.Now), simAttester(p, measB, time.Now)
	serverV, clientV := newVerifier(t, p, measB), newVerifier(t, p, measA)
	srv, cli := handshake(t, serverConfig(t, aS, atls.WithPeerVerifier(serverV)), clientConfig(t, clientV, atls.WithAttester(aC)))
	if srv.err != nil || cli.err != nil {
		t.Fatal(srv.err, cli.err)
	}
	ctx := context.Background()
	errs := make(chan error, 2)
	go func() { errs <- atls.ProveFresh(ctx, srv.conn, atls.RoleServer, aS) }()
	go func() { errs <- atls.ProveFresh(ctx, cli.conn, atls.RoleClient, aC) }()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := atls.VerifyFresh(ctx, srv.conn, atls.RoleClient, serverV); err != nil {
			t.Errorf("server verifying the client: %v", err)
		}
	}()
	if _, err := atls.VerifyFresh(ctx, cli.conn, atls.RoleServer, clientV); err != nil {
		t.Errorf("client verifying the server: %v", err)
	}
	wg.Wait()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestCertificateRefresh(t *testing.T) {
	p := newPlatform(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	calls := 0
	a := simAttester(p, measA, clock)
	counting := func(ctx context.Context, ud []byte) ([]byte, error) { calls++; return a(ctx, ud) }
	cfg := serverConfig(t, counting, atls.WithClock(clock), atls.WithCertificateLifetime(time.Hour), atls.WithRefreshMargin(10*time.Minute))
	get := func() *tls.Certificate {
		c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := get()
	advance(49 * time.Minute)
	if get() != first || calls != 1 {
		t.Fatalf("certificate reissued before the refresh margin (%d attestations)", calls)
	}
	advance(2 * time.Minute)
	second := get()
	if second == first || calls != 2 {
		t.Fatalf("certificate not refreshed inside the margin (%d attestations)", calls)
	}
	if !second.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Errorf("new certificate ends %v, old %v", second.Leaf.NotAfter, first.Leaf.NotAfter)
	}
	// A failing attester: the still-valid certificate is served.
	failing := false
	cfg2 := serverConfig(t, func(ctx context.Context, ud []byte) ([]byte, error) {
		if failing {
			return nil, errors.New("no attestation")
		}
		return a(ctx, ud)
	}, atls.WithClock(clock))
	c1, _ := cfg2.GetCertificate(&tls.ClientHelloInfo{})
	failing = true
	advance(55 * time.Minute)
	if c, err := cfg2.GetCertificate(&tls.ClientHelloInfo{}); err != nil || c != c1 {
		t.Fatalf("failing refresh: %v", err)
	}
	advance(10 * time.Minute)
	if _, err := cfg2.GetCertificate(&tls.ClientHelloInfo{}); err == nil {
		t.Fatal("expired certificate served")
	}
}

func TestConfigValidation(t *testing.T) {
	p := newPlatform(t)
	a := simAttester(p, measA, time.Now)
	v := newVerifier(t, p, measA)
	ctx := context.Background()
	if _, err := atls.ServerConfig(ctx, nil); err == nil {
		t.Error("ServerConfig without an attester")
	}
	if _, err := atls.ClientConfig(ctx, nil); err == nil {
		t.Error("ClientConfig without a verifier")
	}
	if _, err := atls.NewVerifier(verify.Options{}, nil); err == nil {
		t.Error("NewVerifier without a policy")
	}
	if _, err := atls.ServerConfig(ctx, a, atls.WithAttester(a)); err == nil {
		t.Error("ServerConfig with WithAttester")
	}
	if _, err := atls.ClientConfig(ctx, v, atls.WithPeerVerifier(v)); err == nil {
		t.Error("ClientConfig with WithPeerVerifier")
	}
	if _, err := atls.ServerConfig(ctx, a, atls.WithCertificateLifetime(time.Minute), atls.WithRefreshMargin(time.Hour)); err == nil {
		t.Error("margin longer than the lifetime")
	}
	if _, err := atls.ServerConfig(ctx, func(context.Context, []byte) ([]byte, error) { return nil, errors.New("x") }); err == nil {
		t.Error("broken attester accepted at build time")
	}
}
