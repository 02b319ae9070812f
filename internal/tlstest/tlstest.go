// Package tlstest holds TLS helpers shared by tests of several packages.
package tlstest

import (
	"crypto/tls"
	"testing"
)

// HandshakeServer serves TLS handshakes with cfg on loopback until the test ends, closing each
// connection after its handshake, and returns its address.
func HandshakeServer(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	return ln.Addr().String()
}
