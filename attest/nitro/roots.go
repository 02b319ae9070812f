package nitro

import (
	"crypto/x509"
	_ "embed"
	"fmt"

	"github.com/asylo-go/asylo/attest/internal/trust"
)

// awsNitroRootG1PEM is the AWS Nitro Enclaves root certificate for the
// commercial AWS partitions, CN=aws.nitro-enclaves, C=US, O=Amazon, OU=AWS,
// valid 2019-10-28T13:28:05Z to 2049-10-28T14:28:05Z.
//
// Source: AWS_NitroEnclaves_Root-G1.zip, published by AWS and linked from
// the spec (§2.1) and from "Verifying the root of trust" in the AWS Nitro
// Enclaves user guide. trust/README.md says the same beside the file.
//
//go:embed trust/aws_nitro_enclaves_root_g1.pem
var awsNitroRootG1PEM []byte

// RootG1SHA256 is the SHA-256 fingerprint of the DER form of the embedded
// root, as AWS documents it. The embedded file is checked against it each
// time it is loaded.
const RootG1SHA256 = "641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B"

// DefaultRoots returns a new pool holding only the embedded AWS Nitro
// Enclaves root certificate. Each call returns a fresh pool, so callers may
// add to it without affecting anyone else.
func DefaultRoots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(defaultRoot())
	return pool
}

// defaultRoot parses the embedded root and checks its pinned fingerprint.
// The file is part of the binary, so a failure is a build defect: panic.
func defaultRoot() *x509.Certificate {
	c, err := parsePinnedRoot(awsNitroRootG1PEM, RootG1SHA256)
	if err != nil {
		panic(err)
	}
	return c
}

func parsePinnedRoot(pemBytes []byte, fingerprint string) (*x509.Certificate, error) {
	c, err := trust.PinnedCert(pemBytes, fingerprint)
	if err != nil {
		return nil, fmt.Errorf("nitro: embedded root: %v", err)
	}
	return c, nil
}
