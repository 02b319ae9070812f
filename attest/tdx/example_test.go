package tdx_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/attest/tdx"
)

func ExampleVerify() {
	quote, err := os.ReadFile("testdata/tdx_prod_quote_SPR_E4.dat")
	if err != nil {
		panic(err)
	}
	// go-tdx-guest's copy of this real quote has 39 test bytes appended
	// after the signed data; they are refused, so drop them here.
	quote = quote[:len(quote)-39]
	ctx := context.Background()
	at := time.Date(2023, 7, 1, 0, 0, 0, 0, time.UTC)

	// Against the embedded Intel SGX Root CA, offline, at a time inside the
	// PCK certificate's validity.
	q, err := tdx.Verify(ctx, quote, tdx.Options{CurrentTime: at})
	if err != nil {
		panic(err)
	}
	c := q.Claims()
	fmt.Printf("%s MRTD %x… FMSPC %x debug %v\n", c.Platform, c.Measurement[:4], q.PCKInfo.FMSPC, c.Debug)

	// A verifier that sent a nonce requires it back in REPORTDATA.
	var nonce [64]byte
	copy(nonce[:], "fresh challenge")
	_, err = tdx.Verify(ctx, quote, tdx.Options{CurrentTime: at, ReportData: &nonce})
	fmt.Println(errors.Is(err, tdx.ErrReportDataMismatch), errors.Is(err, attest.ErrNonceMismatch))

	// After the PCK certificate expires.
	_, err = tdx.Verify(ctx, quote, tdx.Options{CurrentTime: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	fmt.Println(errors.Is(err, tdx.ErrCertificateExpired))
	// Output:
	// tdx MRTD 6363b804… FMSPC 50806f000000 debug false
	// true true
	// true
}
