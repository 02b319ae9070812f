package grpccreds_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/asylo-go/asylo/atls"
	"github.com/asylo-go/asylo/atls/grpccreds"
)

// selfSignedCert returns a self-signed ECDSA P-256 certificate (what atls certificates use too),
// with no attestation extension.
func selfSignedCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "plain"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// pair alternates unary calls on a plain TLS connection and on the connection under test (each
// established before the timer starts and reused), and reports both and their ratio.
func pair(b *testing.B, plain, test healthpb.HealthClient) {
	ctx := context.Background()
	req := &healthpb.HealthCheckRequest{}
	one := func(c healthpb.HealthClient) time.Duration {
		start := time.Now()
		if _, err := c.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	// Connect both and warm up.
	for range 20 {
		one(plain)
		one(test)
	}
	var tp, tt time.Duration
	n := 0
	for b.Loop() {
		tp += one(plain)
		tt += one(test)
		n++
	}
	b.ReportMetric(float64(tp.Nanoseconds())/float64(n), "plain-ns/call")
	b.ReportMetric(float64(tt.Nanoseconds())/float64(n), "ns/call")
	b.ReportMetric(float64(tt)/float64(tp), "x-plain")
}

// BenchmarkUnary measures a gRPC unary call (health Check) over a reused connection with
// attested credentials against the same call over plain TLS 1.3 credentials (self-signed P-256
// certificates, nothing verified), in the same run. "mutual" attests both sides and runs
// CheckPeer in the handler of the attested server; its plain counterpart is mutual TLS.
func BenchmarkUnary(b *testing.B) {
	p := newPlatform(b)
	cert := selfSignedCert(b)
	plainServer := func(mutual bool) string {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
		if mutual {
			cfg.ClientAuth = tls.RequireAnyClientCert
		}
		return serve(b, credentials.NewTLS(cfg), &healthServer{})
	}
	plainClient := func(addr string, mutual bool) healthpb.HealthClient {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
		if mutual {
			cfg.Certificates = []tls.Certificate{cert}
		}
		return dial(b, addr, credentials.NewTLS(cfg))
	}
	vA := newVerifier(b, p, exactPolicy(b, p, measA))

	b.Run("one-sided", func(b *testing.B) {
		addr := serve(b, serverCreds(b, simAttester(p, measA), nil), &healthServer{})
		pair(b, plainClient(plainServer(false), false), dial(b, addr, clientCreds(b, vA)))
	})
	b.Run("mutual", func(b *testing.B) {
		acl := exactPolicy(b, p, measB)
		h := &healthServer{check: func(ctx context.Context) error {
			_, err := grpccreds.CheckPeer(ctx, acl)
			return err
		}}
		addr := serve(b, serverCreds(b, simAttester(p, measA), newVerifier(b, p, exactPolicy(b, p, measB))), h)
		test := dial(b, addr, clientCreds(b, vA, atls.WithAttester(simAttester(p, measB))))
		pair(b, plainClient(plainServer(true), true), test)
	})
}
