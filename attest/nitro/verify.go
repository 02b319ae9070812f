package nitro

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/veraison/go-cose"
)

// Options are the verifier's inputs besides the document. The zero value
// verifies against the embedded AWS root at the document's own timestamp.
type Options struct {
	// Roots are the trusted roots. Nil means [DefaultRoots], the embedded
	// AWS Nitro Enclaves root.
	Roots *x509.CertPool

	// CurrentTime is the time at which the certificate chain must be
	// valid. The zero value means the document's own timestamp. That
	// timestamp is signed by the leaf, but an old document stays verifiable
	// at its own time forever: a verifier that needs freshness must pass
	// its clock here or require a nonce.
	CurrentTime time.Time

	// Nonce, if non-nil, must equal the document's nonce field, which must
	// then be present. An empty non-nil Nonce requires a present, empty
	// nonce field.
	Nonce []byte
}

// Verify parses an attestation document and checks it in the order of the
// specification (§3): COSE structure and algorithm, payload, certificate
// chain to a trusted root at the verification time, COSE signature with the
// leaf's key, then the nonce. It returns the document only if every check
// passes; the error wraps one of the package's sentinel errors.
func Verify(doc []byte, opts Options) (*Document, error) {
	// Steps 1-3 (§3.1, §3.2.2): COSE_Sign1, alg ES384, strict payload.
	d, msg, err := parse(doc)
	if err != nil {
		return nil, err
	}

	// Step 4 (§3.2.3, §3.2.4): the chain leaf <- cabundle <- trusted root,
	// valid at the verification time.
	roots := opts.Roots
	if roots == nil {
		roots = DefaultRoots()
	}
	at := opts.CurrentTime
	if at.IsZero() {
		at = d.Timestamp
	}
	if err := verifyChain(d, roots, at); err != nil {
		return nil, err
	}

	// Step 5 (§3.2.1): the COSE signature, ES384 with the leaf's P-384 key.
	// go-cose builds the Sig_structure and checks that the protected alg is
	// the verifier's.
	pub, ok := d.Certificate.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, fmt.Errorf("%w: leaf certificate key is %T, want ECDSA P-384", ErrUnsupportedAlgorithm, d.Certificate.PublicKey)
	}
	verifier, err := cose.NewVerifier(cose.AlgorithmES384, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, err)
	}
	if err := msg.Verify(nil, verifier); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}

	// Step 6 (§2.2.2): the nonce, when the caller asked for one.
	if opts.Nonce != nil {
		if d.Nonce == nil {
			return nil, fmt.Errorf("%w: document has no nonce field", ErrNonceMismatch)
		}
		if !bytes.Equal(d.Nonce, opts.Nonce) {
			return nil, fmt.Errorf("%w: document nonce differs from the expected one", ErrNonceMismatch)
		}
	}
	return d, nil
}

// verifyChain checks §3.2.3 on the chain
//
//	[certificate, cabundle[n-1], ..., cabundle[1], root]
//
// where root is in roots and equals cabundle[0] (the bundle is root first).
func verifyChain(d *Document, roots *x509.CertPool, at time.Time) error {
	leaf, bundle := d.Certificate, d.CABundle
	n := len(bundle)

	// §3.2.3.1: every certificate of the document is within its validity
	// period at the verification time. (x509.Verify checks this too, but
	// reports an invalid intermediate only as an unknown authority.)
	for i, c := range append([]*x509.Certificate{leaf}, bundle...) {
		if at.Before(c.NotBefore) || at.After(c.NotAfter) {
			name := fieldCertificate
			if i > 0 {
				name = fmt.Sprintf("%s[%d]", fieldCABundle, i-1)
			}
			return fmt.Errorf("%w: %s (%s) is valid %s to %s, not at %s", ErrCertificateExpired,
				name, c.Subject, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339Nano))
		}
	}

	// §3.2.3: the bundle is ordered root first, so each certificate names
	// the one before it as issuer, and the leaf names the last one. This
	// compares names only; signatures are checked by x509.Verify below.
	if !bytes.Equal(leaf.RawIssuer, bundle[n-1].RawSubject) {
		return fmt.Errorf("%w: %s is not issued by the last cabundle entry", ErrUntrustedRoot, fieldCertificate)
	}
	for i := 1; i < n; i++ {
		if !bytes.Equal(bundle[i].RawIssuer, bundle[i-1].RawSubject) {
			return fmt.Errorf("%w: %s[%d] is not issued by %s[%d]: cabundle must be ordered root first", ErrUntrustedRoot, fieldCABundle, i, fieldCABundle, i-1)
		}
	}

	// §3.2.3.2, §3.2.3.3: the leaf signs documents and is no CA; each CA
	// of the bundle is a CA allowed to sign certificates, and no path
	// length constraint is exceeded (cabundle[i] has n-1-i CAs below it).
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("%w: %s lacks key usage digitalSignature", ErrInvalidCertificate, fieldCertificate)
	}
	if leaf.IsCA {
		return fmt.Errorf("%w: %s is a CA certificate", ErrInvalidCertificate, fieldCertificate)
	}
	for i, c := range bundle {
		name := fmt.Sprintf("%s[%d]", fieldCABundle, i)
		if !c.BasicConstraintsValid || !c.IsCA {
			return fmt.Errorf("%w: %s is not a CA certificate", ErrInvalidCertificate, name)
		}
		if c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return fmt.Errorf("%w: %s lacks key usage keyCertSign", ErrInvalidCertificate, name)
		}
		if below := n - 1 - i; c.MaxPathLen >= 0 && below > c.MaxPathLen {
			return fmt.Errorf("%w: %s allows %d CAs below it, has %d", ErrInvalidCertificate, name, c.MaxPathLen, below)
		}
	}

	// A chain validated before needs only its root looked up in roots: the
	// rest of what x509.Verify decides (signatures, constraints, usages) is
	// a function of the certificates' bytes, and their validity at this
	// time was checked above.
	key := chainDigest(leaf, bundle)
	if validatedChains.has(key) {
		if _, err := bundle[0].Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			return nil
		}
		// Not a root of this pool: the full path below gives the error.
	}

	// §3.2.4: PKIX path validation to the trusted roots (no revocation:
	// the spec says CRLs are not used). Every bundle entry is offered as
	// an intermediate; the path found must then be the bundle in order.
	inter := x509.NewCertPool()
	for _, c := range bundle {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Intermediates: inter,
		Roots:         roots,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return mapX509Error(err)
	}
	for _, chain := range chains {
		if isOrderedChain(chain, leaf, bundle) {
			validatedChains.add(key)
			return nil
		}
	}
	return fmt.Errorf("%w: a path to the roots exists but cabundle is not that path, root first", ErrUntrustedRoot)
}

// isOrderedChain reports whether chain is exactly
// [leaf, bundle[n-1], ..., bundle[0]].
func isOrderedChain(chain []*x509.Certificate, leaf *x509.Certificate, bundle []*x509.Certificate) bool {
	n := len(bundle)
	if len(chain) != n+1 || !chain[0].Equal(leaf) {
		return false
	}
	for i := 1; i <= n; i++ {
		if !chain[i].Equal(bundle[n-i]) {
			return false
		}
	}
	return true
}

// mapX509Error sorts an error from x509.Certificate.Verify into the
// package's sentinels, keeping the x509 error as detail.
func mapX509Error(err error) error {
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Errorf("%w: %v", ErrCertificateExpired, err)
	case errors.As(err, &unknown):
		return fmt.Errorf("%w: %v", ErrUntrustedRoot, err)
	default:
		// NotAuthorizedToSign, TooManyIntermediates, IncompatibleUsage,
		// UnhandledCriticalExtension, constraint violations, ...
		return fmt.Errorf("%w: %v", ErrInvalidCertificate, err)
	}
}
