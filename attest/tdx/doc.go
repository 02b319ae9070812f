// Package tdx parses and verifies Intel TDX attestation quotes.
//
// Specifications: Intel, "Intel TDX DCAP Quoting Library API" (document
// 344426, revision 001), appendix A.3, "Version 4 Quote Format" (header,
// TD quote body, ECDSA quote signature data, QE certification data of type
// 6 carrying the PCK certificate chain as type 5); Intel, "Intel TDX Module
// Base Architecture Specification" (document 348549), for TD_ATTRIBUTES,
// XFAM and the TDREPORT fields the quote body repeats; and Intel, "SGX PCK
// Certificate and Certificate Revocation List Profile Specification", for
// the PCK certificate chain and its SGX extensions (FMSPC, PCEID, TCB). The
// evidence format asylo carries and the checks this package makes are
// written down in docs/evidence-tdx.md.
//
// All quote parsing, chain, signature and collateral checking is done by
// github.com/google/go-tdx-guest (v0.3.1), split by role the way that
// module is:
//
//   - [Parse] decodes a version 4 quote with go-tdx-guest's abi package at
//     the offsets of the specification and extracts the PCK certificate and
//     its SGX extensions. It makes no trust decision and is safe to use on
//     hostile input, e.g. to show a quote in `asylo inspect`.
//   - [Verify] parses, then has go-tdx-guest's verify package check the PCK
//     certificate chain up to a pinned Intel SGX Root CA, the QE report's
//     signature by the PCK key, the binding of the attestation key to the QE
//     report, and the quote's ECDSA P-256 signature by the attestation key;
//     then its validate package checks the quote's fields against the
//     caller's [Options] (REPORT_DATA) and this package the DEBUG attribute.
//     With [Options.Getter] set, the collateral (TCB info, QE identity,
//     CRLs) is fetched through it and checked as well. Only a quote returned
//     by Verify may be trusted.
//
// Verification is offline by default: the PCK certificate chain travels in
// the quote, the Intel root is embedded (see [DefaultRoots]), and no network
// request is made unless [Options.Getter] is set. Offline verification
// proves that genuine Intel TDX hardware with a genuine quoting enclave
// produced the quote; it does not prove that the platform's TCB is up to
// date, which only the collateral says.
//
// Policy on the measured values (which MRTD, RTMRs, MRSEAM, MRCONFIGID are
// expected) is not decided here; it belongs to the caller, who reads them
// from the returned [Quote] or its [Quote.Claims].
//
// Failures wrap one of the exported sentinel errors ([ErrMalformed],
// [ErrUnsupported], [ErrCertificateExpired], [ErrUntrustedRoot],
// [ErrBadSignature], [ErrReportDataMismatch], [ErrDebugNotAllowed],
// [ErrCollateral]); test for them with errors.Is. Where the meaning is the
// same, they also match the shared sentinels of package attest.
package tdx
