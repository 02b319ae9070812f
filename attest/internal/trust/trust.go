// Package trust loads the vendor root certificates the attest verifiers embed, each pinned by
// the SHA-256 fingerprint of its DER form (written beside the file in the verifier's trust/).
package trust

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
)

// PinnedCert parses pemBytes, which must hold exactly one PEM CERTIFICATE block whose DER has
// the SHA-256 fingerprint sha256Hex (hex, either case).
func PinnedCert(pemBytes []byte, sha256Hex string) (*x509.Certificate, error) {
	block, rest := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" || strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("want exactly one PEM CERTIFICATE block")
	}
	sum := sha256.Sum256(block.Bytes)
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, sha256Hex) {
		return nil, fmt.Errorf("SHA-256 %s, want pinned %s", strings.ToUpper(got), strings.ToUpper(sha256Hex))
	}
	return x509.ParseCertificate(block.Bytes)
}

// MustPinnedCert is PinnedCert for files embedded in the binary, where a failure is a build
// defect: it panics, naming what.
func MustPinnedCert(what string, pemBytes []byte, sha256Hex string) *x509.Certificate {
	c, err := PinnedCert(pemBytes, sha256Hex)
	if err != nil {
		panic(fmt.Sprintf("embedded %s: %v", what, err))
	}
	return c
}
