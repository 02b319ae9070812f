package tdx

import (
	"crypto/x509"
	_ "embed"

	"github.com/asylo-go/asylo/attest/internal/trust"
)

// intelSGXRootCAPEM is the Intel SGX Root CA, the root of every PCK
// certificate chain (SGX and TDX): CN=Intel SGX Root CA, O=Intel
// Corporation, L=Santa Clara, ST=CA, C=US, ECDSA P-256, valid
// 2018-05-21T10:45:10Z to 2049-12-31T23:59:59Z.
//
// Source: Intel publishes it as
// https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.cer;
// this copy is github.com/google/go-tdx-guest v0.3.1 verify/trusted_root.pem
// (Apache-2.0, Google LLC), unchanged, which is the root go-tdx-guest
// embeds. It is also byte-equal to the root certificate carried in the real
// quote in testdata. trust/README.md says the same beside the file.
//
//go:embed trust/intel_sgx_root_ca.pem
var intelSGXRootCAPEM []byte

// IntelSGXRootCASHA256 is the SHA-256 fingerprint of the DER form of the
// embedded root. The embedded file is checked against it each time it is
// loaded.
const IntelSGXRootCASHA256 = "44A0196B2B99F889B8E149E95B807A350E7424964399E885A7CBB8CCFAB674D3"

// DefaultRoots returns a new pool holding only the embedded Intel SGX Root
// CA. Each call returns a fresh pool, so callers may add to it without
// affecting anyone else.
func DefaultRoots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(IntelSGXRootCA())
	return pool
}

// IntelSGXRootCA returns the embedded Intel SGX Root CA certificate, parsed
// afresh. The file is part of the binary, so a failure to parse it or a
// fingerprint mismatch is a build defect: it panics.
func IntelSGXRootCA() *x509.Certificate {
	return trust.MustPinnedCert("tdx: Intel SGX Root CA", intelSGXRootCAPEM, IntelSGXRootCASHA256)
}
