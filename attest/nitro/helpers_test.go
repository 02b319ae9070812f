package nitro

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asylo-go/asylo/attest/internal/evidencetest"
)

// realTime is the timestamp of testdata/nitro_attestation.b64.
var realTime = time.Date(2024, time.September, 7, 14, 37, 39, 545_000_000, time.UTC)

const realModuleID = "i-0a22e5c5f24d22174-enc0191cceb4289903f"

// realDoc returns the real attestation document from testdata.
func realDoc(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/nitro_attestation.b64")
	if err != nil {
		tb.Fatal(err)
	}
	doc, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

var sentinels = []error{
	ErrMalformed, ErrUnsupportedAlgorithm, ErrUntrustedRoot, ErrCertificateExpired,
	ErrInvalidCertificate, ErrBadSignature, ErrNonceMismatch,
}

// checkOneSentinel fails unless err wraps exactly one of the package's
// sentinel errors.
func checkOneSentinel(tb testing.TB, err error) {
	tb.Helper()
	evidencetest.OneSentinel(tb, err, sentinels)
}
