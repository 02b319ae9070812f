// Package signing implements signer keys and the signature manifest that vouches for an enclave
// image's identity: its measurement, product id, security version and debug flag
// (docs/identity.md).
//
// Specification: docs/identity.md, manifest format "asylo-signature-manifest/v1"
// (ManifestFormat), with test vectors. Signer keys are Ed25519 (RFC 8032) in PKCS#8 (RFC 8410)
// files.
//
// It is separate from package identity so that enclaves, which need the identity types but never
// sign or parse keys, do not link crypto/x509 and its RSA and ECDSA parsers: ~0.65 MB less code
// in every enclave image (the trusted computing base) and ~0.1 ms less start-up per load
// (docs/benchmarks.md).
package signing
