package snp

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
)

// Evidence is what asylo carries for an SEV-SNP guest: the report and the
// certificate of the key that signed it. docs/evidence-snp.md specifies it.
type Evidence struct {
	// Report is the ATTESTATION_REPORT exactly as the AMD secure processor
	// returned it (MSG_REPORT_RSP's REPORT field), 1184 bytes.
	Report []byte

	// EndorsementKeyCert is the DER X.509 certificate of the key named by
	// the report's SIGNER_INFO.SIGNING_KEY: the VCEK (as AMD's KDS issues it
	// for the chip and REPORTED_TCB) or the VLEK. The ASK/ASVK and ARK are
	// not carried: they are the verifier's trust anchors ([Options.Roots]).
	// It may be empty only for a VCEK-signed report when [Options.Getter]
	// is set, in which case the verifier fetches it from AMD's KDS.
	EndorsementKeyCert []byte
}

// EvidenceFromCertTable builds Evidence from a report and the certificate
// table the host returns with an extended report (SNP_GET_EXT_REPORT, or
// configfs-tsm's auxblob): the GHCB table of GUID, offset, length entries.
// The VCEK or VLEK entry, as the report's SIGNING_KEY names, is kept; the
// table's ASK and ARK entries are dropped, since the verifier uses its own
// roots. go-sev-guest's abi package parses the table.
func EvidenceFromCertTable(report, certTable []byte) (Evidence, error) {
	if len(report) != ReportSize {
		return Evidence{}, fmt.Errorf("%w: report is %d bytes, want %d", ErrMalformed, len(report), ReportSize)
	}
	if len(certTable) > MaxCertTableSize {
		return Evidence{}, fmt.Errorf("%w: certificate table is %d bytes, limit %d", ErrMalformed, len(certTable), MaxCertTableSize)
	}
	si, err := abi.ReportSignerInfo(report)
	if err != nil {
		return Evidence{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	info, err := abi.ParseSignerInfo(si)
	if err != nil {
		return Evidence{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var guid string
	switch info.SigningKey {
	case abi.VcekReportSigner:
		guid = abi.VcekGUID
	case abi.VlekReportSigner:
		guid = abi.VlekGUID
	default:
		return Evidence{}, fmt.Errorf("%w: report SIGNING_KEY is %v", ErrUnsupported, info.SigningKey)
	}
	var table abi.CertTable
	if err := table.Unmarshal(certTable); err != nil {
		return Evidence{}, fmt.Errorf("%w: certificate table: %v", ErrMalformed, err)
	}
	cert, err := table.GetByGUIDString(guid)
	if err != nil {
		return Evidence{}, fmt.Errorf("%w: certificate table has no %v entry: %v", ErrCertificateUnavailable, info.SigningKey, err)
	}
	return Evidence{Report: append([]byte(nil), report...), EndorsementKeyCert: cert}, nil
}

// Options are the verifier's inputs besides the evidence. The zero value
// verifies offline against the embedded AMD roots at the current time,
// requires REPORT_DATA to be nothing in particular, refuses debuggable
// guests and provisional firmware, and sets no minimum TCB.
type Options struct {
	// Roots are the trusted AMD chains. Nil means [DefaultRoots].
	Roots *Roots

	// CurrentTime is the time at which the certificates must be valid. The
	// zero value means time.Now(). A report carries no time of its own.
	CurrentTime time.Time

	// Getter, if non-nil, is used to fetch a missing VCEK from AMD's KDS
	// (kdsintf.amd.com). Nil means offline: nothing is fetched, and
	// evidence without a certificate fails with ErrCertificateUnavailable.
	// trust.DefaultHTTPSGetter() is go-sev-guest's HTTP getter.
	Getter trust.HTTPSGetter

	// ReportData, if non-nil, must equal the report's REPORT_DATA. Set it
	// to the nonce (or hash of nonce and key) the relying party chose;
	// without it an old report replays.
	ReportData *[64]byte

	// AllowDebug accepts guests whose POLICY.DEBUG bit is set. Such a
	// guest's memory is readable by the host: never set it in production.
	AllowDebug bool

	// MinimumTCB is the component-wise minimum of REPORTED_TCB, compared on
	// BootLoader, TEE, SNP and Microcode (Raw is ignored). The zero value
	// sets no minimum.
	MinimumTCB TCB

	// PermitProvisionalFirmware accepts a COMMITTED_TCB, build and API
	// version lower than the current ones (firmware not yet committed, to
	// which the host could roll back). Off by default: committed must equal
	// current.
	PermitProvisionalFirmware bool
}

// Verify checks SEV-SNP evidence in this order (docs/evidence-snp.md):
// report structure, endorsement key certificate, its validity at the
// verification time, its chain to a trusted AMD root and the report
// signature (go-sev-guest verify), then the report against the certificate
// and the policy in opts (go-sev-guest validate). It returns the report
// only if every check passes; the error wraps one of the package's
// sentinel errors. ctx bounds the KDS fetch when opts.Getter is set.
func Verify(ctx context.Context, ev Evidence, opts Options) (*Report, error) {
	// Step 1: the report's structure (abi), version and algorithm.
	r, p, err := parse(ev.Report)
	if err != nil {
		return nil, err
	}
	key := abi.ReportSigner(r.SigningKey)
	if key != abi.VcekReportSigner && key != abi.VlekReportSigner {
		return nil, fmt.Errorf("%w: report SIGNING_KEY is %v; an unsigned report proves nothing", ErrUnsupported, r.SigningKey)
	}
	roots := opts.Roots
	if roots == nil {
		roots = sharedRoots()
	}
	// go-sev-guest falls back on its own embedded roots when given none:
	// an empty set must trust nothing, so it is refused here.
	if len(roots.byLine) == 0 {
		return nil, fmt.Errorf("%w: Options.Roots holds no root", ErrUntrustedRoot)
	}
	at := opts.CurrentTime
	if at.IsZero() {
		at = time.Now()
	}

	// Step 2: the endorsement key certificate, from the evidence or, if
	// the caller allows it, from AMD's KDS.
	ekDER := ev.EndorsementKeyCert
	if len(ekDER) == 0 {
		ekDER, err = fetchVCEK(ctx, p, key, at, opts.Getter)
		if err != nil {
			return nil, err
		}
	}
	if len(ekDER) > MaxCertificateSize {
		return nil, fmt.Errorf("%w: %v certificate is %d bytes, limit %d", ErrMalformed, key, len(ekDER), MaxCertificateSize)
	}
	// Steps 3 and 4 for a certificate this Roots has already verified: the
	// chain's answer is the same at any time inside every certificate's
	// validity, so only the report's own signature is left to check.
	ck := newChainKey(key, knownProductLine(p), ekDER)
	var ek *x509.Certificate
	if e := roots.chains.get(ck, at); e != nil {
		ek = e.ek
		if err := verify.SnpReportSignature(r.Raw, ek); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
		r.ProductLine = e.productLine
	} else {
		ek, err = x509.ParseCertificate(ekDER)
		if err != nil {
			return nil, fmt.Errorf("%w: %v certificate: %v", ErrMalformed, key, err)
		}

		// Step 3: the certificate is valid at the verification time. (x509
		// checks this too, but go-sev-guest reports its errors as text.)
		if err := checkValidity(ek, key.String(), at); err != nil {
			return nil, err
		}

		// Step 4: go-sev-guest verify: the certificate is a V[CL]EK as the
		// KDS spec describes it, chains through the ASK/ASVK to an ARK in
		// roots at time at, and its ECDSA P-384 key signed the report.
		// Offline: the certificate is in the attestation, so nothing is
		// fetched.
		att := attestation(p, key, ekDER)
		vopts := &verify.Options{DisableCertFetching: true, Now: at, TrustedRoots: roots.byLine}
		if err := verify.SnpAttestationContext(ctx, att, vopts); err != nil {
			return nil, classifyVerifyError(err, r, ek, key, roots, at)
		}
		r.ProductLine, _ = productLine(p, ek, key)
		roots.chains.put(ck, ek, r.ProductLine, roots)
	}
	r.EndorsementKey = ek
	att := attestation(p, key, ekDER)

	// Step 5: go-sev-guest validate. One call with the whole policy
	// decides; only when it refuses are the concerns checked one at a time,
	// so that the failure gets its own sentinel.
	if err := validate.SnpAttestation(att, validateOptions(opts)); err != nil {
		return nil, classifyValidateError(err, att, key, opts)
	}
	return r, nil
}

// baseValidation accepts every guest policy bit and provisional firmware, so
// that it checks only that the report is consistent with its certificate.
var baseValidation = validate.Options{
	GuestPolicy:               abi.SnpPolicy{SMT: true, MigrateMA: true, Debug: true, CXLAllowed: true},
	PermitProvisionalFirmware: true,
}

// validateOptions is opts as go-sev-guest's validate package takes it: the
// base checks plus REPORT_DATA, the debug bit and the TCB.
func validateOptions(opts Options) *validate.Options {
	o := baseValidation
	if opts.ReportData != nil {
		o.ReportData = opts.ReportData[:]
	}
	o.GuestPolicy.Debug = opts.AllowDebug
	o.MinimumTCB = kds.TCBParts{BlSpl: opts.MinimumTCB.BootLoader, TeeSpl: opts.MinimumTCB.TEE, SnpSpl: opts.MinimumTCB.SNP, UcodeSpl: opts.MinimumTCB.Microcode}
	o.PermitProvisionalFirmware = opts.PermitProvisionalFirmware
	return &o
}

// classifyValidateError finds which concern made validate refuse, in the
// order of docs/evidence-snp.md, by asking go-sev-guest about each alone.
func classifyValidateError(libErr error, att *spb.Attestation, key abi.ReportSigner, opts Options) error {
	// 5a: the certificate certifies this report: its TCB extensions equal
	// REPORTED_TCB and do not exceed CURRENT_TCB, its HWID equals CHIP_ID
	// (unless the host masked CHIP_ID), committed firmware <= current.
	base := baseValidation
	if err := validate.SnpAttestation(att, &base); err != nil {
		return fmt.Errorf("%w: report does not match its %v certificate: %v", ErrUntrustedRoot, key, err)
	}
	// 5b: REPORT_DATA, if the caller asked for it.
	if opts.ReportData != nil {
		o := base
		o.ReportData = opts.ReportData[:]
		if err := validate.SnpAttestation(att, &o); err != nil {
			return fmt.Errorf("%w: %v", ErrReportDataMismatch, err)
		}
	}
	// 5c: the debug policy bit.
	o := base
	o.GuestPolicy.Debug = opts.AllowDebug
	if err := validate.SnpAttestation(att, &o); err != nil {
		return fmt.Errorf("%w: %v (set Options.AllowDebug only for development)", ErrDebugNotAllowed, err)
	}
	// 5d: the TCB: REPORTED_TCB >= MinimumTCB component-wise, and the
	// committed firmware equals the current one unless provisional firmware
	// is permitted. The whole policy was refused, so this is what is left.
	return fmt.Errorf("%w: %v", ErrTCBTooLow, libErr)
}

// attestation is the form go-sev-guest's verify and validate packages take.
func attestation(p *spb.Report, key abi.ReportSigner, ekDER []byte) *spb.Attestation {
	att := &spb.Attestation{Report: p, CertificateChain: &spb.CertificateChain{Extras: map[string][]byte{}}}
	if key == abi.VcekReportSigner {
		att.CertificateChain.VcekCert = ekDER
	} else {
		att.CertificateChain.VlekCert = ekDER
	}
	return att
}

// knownProductLine is the product line the report's CPUID fields name
// (version 3 reports and later), or "" (go-sev-guest then reads it from the
// certificate). It is part of what go-sev-guest's chain checks depend on.
func knownProductLine(p *spb.Report) string {
	if fms := p.GetCpuid1EaxFms(); fms != 0 {
		return kds.ProductLineFromFms(fms)
	}
	return ""
}

// fetchVCEK asks AMD's KDS for the VCEK of the report's chip and TCB
// through go-sev-guest, only when the caller supplied a getter.
func fetchVCEK(ctx context.Context, p *spb.Report, key abi.ReportSigner, at time.Time, getter trust.HTTPSGetter) ([]byte, error) {
	if getter == nil {
		return nil, fmt.Errorf("%w: evidence has no %v certificate and Options.Getter is nil (offline)", ErrCertificateUnavailable, key)
	}
	if key != abi.VcekReportSigner {
		return nil, fmt.Errorf("%w: evidence has no %v certificate; the KDS serves VLEKs only to cloud providers", ErrCertificateUnavailable, key)
	}
	att, err := verify.GetAttestationFromReportContext(ctx, p, &verify.Options{Getter: getter, Now: at})
	if err != nil {
		return nil, fmt.Errorf("%w: fetching the VCEK from the KDS: %v", ErrCertificateUnavailable, err)
	}
	return att.GetCertificateChain().GetVcekCert(), nil
}

// checkValidity returns ErrCertificateExpired unless at is inside c's
// validity window (both ends included, as crypto/x509 does).
func checkValidity(c *x509.Certificate, name string, at time.Time) error {
	if at.Before(c.NotBefore) || at.After(c.NotAfter) {
		return fmt.Errorf("%w: %s (%s) is valid %s to %s, not at %s", ErrCertificateExpired, name, c.Subject.CommonName,
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	return nil
}

// productLine is the product line go-sev-guest verifies against: from the
// report's CPUID fields (version 3 and later) or else from the
// certificate's product name extension. The error wraps ErrUnsupported for
// a product line go-sev-guest does not know, ErrUntrustedRoot for a
// certificate without the KDS extensions.
func productLine(p *spb.Report, ek *x509.Certificate, key abi.ReportSigner) (string, error) {
	if fms := p.GetCpuid1EaxFms(); fms != 0 {
		if line := kds.ProductLineFromFms(fms); line != "" {
			return line, nil
		}
		return "", fmt.Errorf("%w: unknown product: CPUID family/model/stepping %#x", ErrUnsupported, fms)
	}
	exts, err := kds.CertificateExtensions(ek, key)
	if err != nil {
		return "", fmt.Errorf("%w: %v certificate lacks the KDS extensions: %v", ErrUntrustedRoot, key, err)
	}
	prod, err := kds.ParseProductName(exts.ProductName, key)
	if err != nil {
		return "", fmt.Errorf("%w: unknown product: %v", ErrUnsupported, err)
	}
	return kds.ProductLine(prod), nil
}

// classifyVerifyError gives a go-sev-guest verify failure its sentinel.
// The decision is the library's; go-sev-guest returns its errors as text,
// so the stage that failed is found again here with cheap checks, in the
// order of the verification: product line, chain (expiry, then trust),
// then signature. What remains is a certificate the chain accepts but
// go-sev-guest refuses as not issued as the KDS specification says.
func classifyVerifyError(libErr error, r *Report, ek *x509.Certificate, key abi.ReportSigner, roots *Roots, at time.Time) error {
	_, p, _ := parse(r.Raw) // r came from parse: cannot fail
	line, err := productLine(p, ek, key)
	if err != nil {
		return fmt.Errorf("%w (%v)", err, libErr)
	}
	candidates := roots.byLine[line]
	if len(candidates) == 0 {
		return fmt.Errorf("%w: no trusted root for product line %s: %v", ErrUntrustedRoot, line, libErr)
	}
	chained, expired := false, error(nil)
	for _, root := range candidates {
		vo := root.X509Options(at, key)
		if vo == nil {
			continue
		}
		inter := root.ProductCerts.Ask
		if key == abi.VlekReportSigner {
			inter = root.ProductCerts.Asvk
		}
		if string(inter.RawSubject) == string(ek.RawIssuer) {
			if err := checkValidity(inter, "intermediate", at); err != nil && expired == nil {
				expired = err
			}
			if err := checkValidity(root.ProductCerts.Ark, "ARK", at); err != nil && expired == nil {
				expired = err
			}
		}
		if _, err := ek.Verify(*vo); err == nil {
			chained = true
		}
	}
	switch {
	case !chained && expired != nil:
		return fmt.Errorf("%w (%v)", expired, libErr)
	case !chained:
		return fmt.Errorf("%w: %v", ErrUntrustedRoot, libErr)
	case verify.SnpReportSignature(r.Raw, ek) != nil:
		return fmt.Errorf("%w: %v", ErrBadSignature, libErr)
	default:
		return fmt.Errorf("%w: %v certificate refused: %v", ErrUntrustedRoot, key, libErr)
	}
}
