package nitro_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/asylo-go/asylo/attest/nitro"
)

func ExampleVerify() {
	b64, err := os.ReadFile("testdata/nitro_attestation.b64")
	if err != nil {
		panic(err)
	}
	doc, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b64)))
	if err != nil {
		panic(err)
	}

	// Against the embedded AWS root, at the document's own timestamp.
	d, err := nitro.Verify(doc, nitro.Options{})
	if err != nil {
		panic(err)
	}
	fmt.Println(d.ModuleID, d.Timestamp.Format(time.RFC3339Nano), len(d.PCRs), "PCRs")

	// A verifier that uses its clock sees the three-hour leaf expired.
	_, err = nitro.Verify(doc, nitro.Options{CurrentTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	fmt.Println(errors.Is(err, nitro.ErrCertificateExpired))

	// A verifier that sent a nonce requires it back.
	_, err = nitro.Verify(doc, nitro.Options{Nonce: []byte("fresh challenge")})
	fmt.Println(errors.Is(err, nitro.ErrNonceMismatch))
	// Output:
	// i-0a22e5c5f24d22174-enc0191cceb4289903f 2024-09-07T14:37:39.545Z 16 PCRs
	// true
	// true
}
