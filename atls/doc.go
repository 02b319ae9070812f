// Package atls is attested TLS 1.3 on crypto/tls: each attested peer presents a self-signed
// certificate whose TCG DICE tagged-evidence extension (OID 2.23.133.5.4.9) carries platform
// evidence over the hash of a claims map that binds the certificate's key, in the interoperable
// RA-TLS encoding Gramine >= 1.8 uses. The other side verifies the evidence, the key binding and
// a policy inside the handshake (tls.Config.VerifyConnection), so a connection to a refused peer
// never completes.
//
// The format, the CBOR tag of each evidence format, the verification order and fresh mode are
// specified in docs/atls.md (version 1).
//
// An enclave server:
//
//	cfg, err := atls.ServerConfig(ctx, enclave.Attest)
//	ln := tls.NewListener(inner, cfg)
//
// A client that accepts only a given enclave:
//
//	v, err := atls.NewVerifier(verify.Options{}, pol)
//	cfg, err := atls.ClientConfig(ctx, v)
//	conn, err := tls.Dial("tcp", addr, cfg)
//	claims, err := v.PeerClaims(conn.ConnectionState())
//
// Mutual attestation adds WithPeerVerifier on the server and WithAttester on the client. Fresh
// mode (ProveFresh, VerifyFresh) adds, after the handshake, evidence bound to the session's TLS
// exporter, against replayed certificates.
package atls
