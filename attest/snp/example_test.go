package snp_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/asylo-go/asylo/attest/snp"
)

func ExampleVerify() {
	report, err := os.ReadFile("testdata/milan_attestation.bin")
	if err != nil {
		panic(err)
	}
	vcek, err := os.ReadFile("testdata/milan_vcek.der")
	if err != nil {
		panic(err)
	}
	ev := snp.Evidence{Report: report, EndorsementKeyCert: vcek}
	ctx := context.Background()
	at := time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)

	// This real report comes from a guest launched with the DEBUG policy
	// bit, which the default options refuse.
	_, err = snp.Verify(ctx, ev, snp.Options{CurrentTime: at})
	fmt.Println(errors.Is(err, snp.ErrDebugNotAllowed))

	// Against the embedded AMD roots, offline, at a time inside the VCEK's
	// validity.
	r, err := snp.Verify(ctx, ev, snp.Options{CurrentTime: at, AllowDebug: true})
	if err != nil {
		panic(err)
	}
	fmt.Println(r.ProductLine, r.SigningKey, r.Version, r.ReportedTCB.SNP)

	// A verifier that sent a nonce requires it back in REPORT_DATA.
	var nonce [64]byte
	copy(nonce[:], "fresh challenge")
	_, err = snp.Verify(ctx, ev, snp.Options{CurrentTime: at, AllowDebug: true, ReportData: &nonce})
	fmt.Println(errors.Is(err, snp.ErrReportDataMismatch))

	// After the VCEK expires.
	_, err = snp.Verify(ctx, ev, snp.Options{CurrentTime: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), AllowDebug: true})
	fmt.Println(errors.Is(err, snp.ErrCertificateExpired))
	// Output:
	// true
	// Milan VCEK 2 5
	// true
	// true
}
