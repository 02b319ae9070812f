package atls_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/asylo-go/asylo/atls"
)

// once runs one handshake (and after, if not nil) over loopback TCP and returns its duration.
func once(b *testing.B, scfg, ccfg *tls.Config, after func(srv, cli *tls.Conn) error) time.Duration {
	start := time.Now()
	srv, cli := handshake(b, scfg, ccfg)
	if srv.err != nil || cli.err != nil {
		b.Fatal(srv.err, cli.err)
	}
	if after != nil {
		if err := after(srv.conn, cli.conn); err != nil {
			b.Fatal(err)
		}
	}
	d := time.Since(start)
	srv.conn.Close()
	cli.conn.Close()
	return d
}

// pair alternates a plain TLS 1.3 handshake (self-signed P-256 server certificate, nothing
// verified) with the handshake under test, in the same run, and reports both and their ratio.
func pair(b *testing.B, plainS, plainC, scfg, ccfg *tls.Config, after func(srv, cli *tls.Conn) error) {
	var plain, test time.Duration
	n := 0
	for b.Loop() {
		plain += once(b, plainS, plainC, nil)
		test += once(b, scfg, ccfg, after)
		n++
	}
	b.ReportMetric(float64(plain.Nanoseconds())/float64(n), "plain-ns/hs")
	b.ReportMetric(float64(test.Nanoseconds())/float64(n), "ns/hs")
	b.ReportMetric(float64(test)/float64(plain), "x-plain")
}

// BenchmarkHandshake measures attested handshakes (server evidence cached, verified by the
// client on every handshake), mutual, and fresh mode, each against a plain handshake.
func BenchmarkHandshake(b *testing.B) {
	p := newPlatform(b)
	a := simAttester(p, measA, time.Now)
	key, _ := newKey(b)
	now := time.Now()
	plainS := staticServer(selfSigned(b, key, nil, false, now.Add(-time.Minute), now.Add(time.Hour)))
	plainS.SessionTicketsDisabled = true
	plainC := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	v := newVerifier(b, p, measA)

	b.Run("plain", func(b *testing.B) { pair(b, plainS, plainC, plainS, plainC, nil) })
	b.Run("attested", func(b *testing.B) {
		pair(b, plainS, plainC, serverConfig(b, a), clientConfig(b, v), nil)
	})
	b.Run("mutual", func(b *testing.B) {
		scfg := serverConfig(b, a, atls.WithPeerVerifier(newVerifier(b, p, measA)))
		pair(b, plainS, plainC, scfg, clientConfig(b, v, atls.WithAttester(a)), nil)
	})
	b.Run("fresh", func(b *testing.B) {
		ctx := context.Background()
		pair(b, plainS, plainC, serverConfig(b, a), clientConfig(b, v), func(srv, cli *tls.Conn) error {
			errc := make(chan error, 1)
			go func() { errc <- atls.ProveFresh(ctx, srv, atls.RoleServer, a) }()
			if _, err := atls.VerifyFresh(ctx, cli, atls.RoleServer, v); err != nil {
				return err
			}
			return <-errc
		})
	})
}
