// Package nitro parses and verifies AWS Nitro Enclaves attestation documents.
//
// Specification: AWS, "Nitro Enclaves Attestation Process",
// aws/aws-nitro-enclaves-nsm-api, docs/attestation_process.md (revision read:
// commit 13464bfd70662f1253f57f98093a83432dfa1b48). Section numbers in
// comments (§2.2, §3.2.2.2, ...) refer to that document. The format and the
// checks this package makes are written down in docs/evidence-nitro.md.
//
// The package is split by role, the way google/go-sev-guest is:
//
//   - [Parse] decodes the COSE_Sign1 envelope and the CBOR payload and rejects
//     every value the specification forbids. It makes no trust decision and is
//     safe to use on hostile input, e.g. to show a document in `asylo inspect`.
//   - [Verify] parses, then checks the certificate chain up to a pinned root and
//     the COSE signature, and optionally the nonce. Only a document returned by
//     Verify may be trusted.
//
// Policy on the measured values (which PCRs are expected, what user_data
// means) is not decided here; it belongs to the caller.
//
// Failures wrap one of the exported sentinel errors ([ErrMalformed],
// [ErrUnsupportedAlgorithm], [ErrUntrustedRoot], [ErrCertificateExpired],
// [ErrInvalidCertificate], [ErrBadSignature], [ErrNonceMismatch]); test for
// them with errors.Is.
package nitro
