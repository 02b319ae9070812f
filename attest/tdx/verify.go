package tdx

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/validate"
	"github.com/google/go-tdx-guest/verify"
	"github.com/google/go-tdx-guest/verify/trust"
)

// Options are the verifier's inputs besides the quote. The zero value
// verifies offline against the embedded Intel SGX Root CA at the current
// time, requires REPORT_DATA to be nothing in particular, and refuses
// debuggable TDs.
type Options struct {
	// Roots are the trusted roots of the PCK certificate chain. Nil means
	// [DefaultRoots], the embedded Intel SGX Root CA. An empty pool trusts
	// nothing.
	Roots *x509.CertPool

	// CurrentTime is the time at which the certificates (and, with a
	// Getter, the collateral) must be valid. The zero value means
	// time.Now(). A quote carries no time of its own.
	CurrentTime time.Time

	// Getter, if non-nil, turns on the collateral checks: the TDX TCB info
	// for the PCK certificate's FMSPC, the TDX QE identity, the PCK CRL and
	// the Root CA CRL are fetched through it from Intel's PCS URLs, checked
	// to chain to Roots and be current at CurrentTime, and the platform TCB
	// and quoting enclave must be rated UpToDate and the PCK chain not
	// revoked. Nil means offline: nothing is fetched and none of this is
	// checked. trust.DefaultHTTPSGetter() is go-tdx-guest's HTTP getter; a
	// caching or PCCS-backed getter can be given instead.
	Getter trust.HTTPSGetter

	// ReportData, if non-nil, must equal the quote's REPORTDATA. Set it to
	// the nonce (or hash of nonce and key) the relying party chose; without
	// it an old quote replays.
	ReportData *[64]byte

	// AllowDebug accepts TDs whose TD_ATTRIBUTES.DEBUG bit is set. Such a
	// TD's memory and state are readable by the host: never set it in
	// production.
	AllowDebug bool
}

// Verify checks a TDX quote in this order (docs/evidence-tdx.md): quote
// structure, validity of the PCK certificate chain at the verification
// time, the chain to a trusted Intel root and the three signatures
// (go-tdx-guest verify, offline), the TD's attributes and features
// (go-tdx-guest validate), REPORTDATA, the DEBUG attribute, then, if
// opts.Getter is set, the collateral. It returns the quote only if every
// check passes; the error wraps one of the package's sentinel errors. ctx
// is checked before each collateral fetch.
func Verify(ctx context.Context, quote []byte, opts Options) (*Quote, error) {
	// Step 1: the quote's structure (abi), version, key type, TEE type,
	// and its PCK certificate chain.
	q, p, err := parse(quote)
	if err != nil {
		return nil, err
	}
	roots := opts.Roots
	if roots == nil {
		roots = DefaultRoots()
	}
	at := opts.CurrentTime
	if at.IsZero() {
		at = time.Now()
	}

	// Step 2: every certificate of the carried chain is valid at the
	// verification time. (x509 checks this too, but go-tdx-guest reports
	// its errors as text.)
	for _, c := range []*x509.Certificate{q.PCK, q.PCKIntermediate, q.PCKRoot} {
		if at.Before(c.NotBefore) || at.After(c.NotAfter) {
			return nil, fmt.Errorf("%w: %q is valid %s to %s, not at %s", ErrCertificateExpired, c.Subject.CommonName,
				c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
		}
	}

	// Step 3: go-tdx-guest verify, offline: the three certificates are as
	// Intel's PCK profile says and the PCK chains through the intermediate
	// to a root in roots at time at; the PCK key signed the QE report; the
	// QE report's REPORTDATA is SHA-256(attestation key || QE auth data);
	// the attestation key (ECDSA P-256) signed the header and TD quote body.
	if err := verify.TdxQuote(p, &verify.Options{TrustedRoots: roots, Now: at}); err != nil {
		return nil, classifyVerifyError(err, q, roots, at)
	}

	// Step 4: go-tdx-guest validate with no expectations: TD_ATTRIBUTES and
	// XFAM have no bit set that the library does not allow.
	if err := validate.TdxQuote(p, &validate.Options{}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}

	// Step 5: REPORTDATA, if the caller asked for it (go-tdx-guest
	// validate).
	if opts.ReportData != nil {
		o := &validate.Options{TdQuoteBodyOptions: validate.TdQuoteBodyOptions{ReportData: opts.ReportData[:]}}
		if err := validate.TdxQuote(p, o); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrReportDataMismatch, err)
		}
	}

	// Step 6: TD_ATTRIBUTES.DEBUG. (go-tdx-guest validate can only compare
	// TD_ATTRIBUTES as a whole, so the bit is read here.)
	if q.TDAttributes.Debug && !opts.AllowDebug {
		return nil, fmt.Errorf("%w: TD_ATTRIBUTES %#016x has DEBUG set (set Options.AllowDebug only for development)", ErrDebugNotAllowed, q.TDAttributes.Raw)
	}

	// Step 7: the collateral, only if the caller gave a getter.
	if opts.Getter != nil {
		if err := checkCollateral(ctx, p, roots, at, opts.Getter); err != nil {
			return nil, err
		}
	}
	q.verified = true
	return q, nil
}

// checkCollateral has go-tdx-guest verify fetch the collateral through
// getter and check it, with the chain and signatures it checked offline
// already: any failure now is the collateral's.
func checkCollateral(ctx context.Context, p *pb.QuoteV4, roots *x509.CertPool, at time.Time, getter trust.HTTPSGetter) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrCollateral, err)
	}
	vopts := &verify.Options{
		GetCollateral:    true,
		CheckRevocations: true,
		Getter:           ctxGetter{ctx, getter},
		TrustedRoots:     roots,
		Now:              at,
	}
	if err := verify.TdxQuote(p, vopts); err != nil {
		return fmt.Errorf("%w: %v", ErrCollateral, err)
	}
	return nil
}

// ctxGetter stops fetching once ctx is done. (go-tdx-guest's getter takes
// no context.)
type ctxGetter struct {
	ctx context.Context
	g   trust.HTTPSGetter
}

func (c ctxGetter) Get(url string) (map[string][]string, []byte, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, nil, err
	}
	return c.g.Get(url)
}

// classifyVerifyError gives a go-tdx-guest verify failure its sentinel.
// The decision is the library's; it returns most errors as text, so the
// stage that failed is found again: if the PCK does not chain to roots
// (the crypto/x509 check the library makes), ErrUntrustedRoot; if the
// library names a signature step (quote signature, attestation key, QE
// report signature, QE report data), ErrBadSignature; otherwise the chain
// is refused by the library's PCK profile checks, ErrUntrustedRoot.
// TestLibraryErrorText pins the messages this relies on.
func classifyVerifyError(libErr error, q *Quote, roots *x509.CertPool, at time.Time) error {
	inter := x509.NewCertPool()
	inter.AddCert(q.PCKIntermediate)
	if _, err := q.PCK.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at}); err != nil {
		return fmt.Errorf("%w: %v", ErrUntrustedRoot, libErr)
	}
	msg := libErr.Error()
	if errors.Is(libErr, verify.ErrHashVerificationFail) ||
		strings.HasPrefix(msg, "attestation key in the quote is invalid") ||
		strings.HasPrefix(msg, "error verifying QE report signature") ||
		strings.HasPrefix(msg, "error verifying QE report data") {
		return fmt.Errorf("%w: %v", ErrBadSignature, libErr)
	}
	return fmt.Errorf("%w: PCK certificate chain refused: %v", ErrUntrustedRoot, libErr)
}
