// Package snp parses and verifies AMD SEV-SNP attestation reports.
//
// Specifications: AMD publication 56860, "SEV Secure Nested Paging Firmware
// ABI Specification", the ATTESTATION_REPORT structure (report versions 2 to
// 5; the table go-sev-guest v0.15.0 cites as Table 21); and AMD publication
// 57230, "Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface
// Specification", for the VCEK/VLEK certificates and the ASK/ASVK/ARK chain.
// The evidence format asylo carries and the checks this package makes are
// written down in docs/evidence-snp.md.
//
// All parsing, signature and chain checking is done by
// github.com/google/go-sev-guest, split by role the way that module is:
//
//   - [Parse] decodes the 1184-byte report with go-sev-guest's abi package,
//     which reads the fields at the offsets of the specification and rejects
//     non-zero reserved bytes. It makes no trust decision and is safe to use on
//     hostile input, e.g. to show a report in `asylo inspect`.
//   - [Verify] parses, then has go-sev-guest's verify package check the
//     endorsement key certificate (VCEK or VLEK) up to a pinned AMD root (ARK)
//     and the report's ECDSA P-384 signature, then has its validate package
//     check the report against the certificate and the caller's [Options]
//     (report_data, debug policy bit, minimum TCB). Only a report returned by
//     Verify may be trusted.
//
// Verification is offline: the endorsement key certificate travels with the
// report in [Evidence], the AMD roots are embedded (see [DefaultRoots]), and
// no network request is made unless [Options.Getter] is set.
//
// Policy on the measured values (which MEASUREMENT, HOST_DATA, ID key is
// expected) is not decided here; it belongs to the caller, who reads them
// from the returned [Report].
//
// Failures wrap one of the exported sentinel errors ([ErrMalformed],
// [ErrUnsupported], [ErrCertificateUnavailable], [ErrCertificateExpired],
// [ErrUntrustedRoot], [ErrBadSignature], [ErrReportDataMismatch],
// [ErrDebugNotAllowed], [ErrTCBTooLow]); test for them with errors.Is.
package snp
