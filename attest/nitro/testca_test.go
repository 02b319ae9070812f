package nitro

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// testCA is an in-memory stand-in for the AWS Nitro PKI: a root, one
// intermediate and a leaf, all ECDSA P-384, valid around synthTime.
type testCA struct {
	root, inter, leaf *x509.Certificate
	leafKey           *ecdsa.PrivateKey
}

var synthTime = time.Date(2025, time.January, 2, 3, 4, 5, 678_000_000, time.UTC)

type certSpec struct {
	cn        string
	isCA      bool
	maxPath   int
	keyUsage  x509.KeyUsage
	notBefore time.Time
	notAfter  time.Time
}

func mustKey(tb testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustCert(tb testing.TB, s certSpec, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
	tb.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		tb.Fatal(err)
	}
	if s.notBefore.IsZero() {
		s.notBefore = synthTime.Add(-time.Hour)
	}
	if s.notAfter.IsZero() {
		s.notAfter = synthTime.Add(time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.cn, Organization: []string{"asylo test"}},
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		KeyUsage:              s.keyUsage,
		BasicConstraintsValid: true,
		IsCA:                  s.isCA,
		MaxPathLen:            s.maxPath,
		MaxPathLenZero:        s.isCA && s.maxPath == 0,
		SignatureAlgorithm:    x509.ECDSAWithSHA384,
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// newTestCA builds root -> intermediate -> leaf. leafSpec may override the
// leaf's fields; interSpec the intermediate's.
func newTestCA(tb testing.TB, interSpec, leafSpec *certSpec) *testCA {
	tb.Helper()
	rootKey := mustKey(tb, elliptic.P384())
	root := mustCert(tb, certSpec{cn: "test root", isCA: true, maxPath: -1, keyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		notBefore: synthTime.Add(-24 * time.Hour), notAfter: synthTime.Add(24 * time.Hour)}, rootKey.Public(), nil, rootKey)
	interKey := mustKey(tb, elliptic.P384())
	is := certSpec{cn: "test intermediate", isCA: true, maxPath: 0, keyUsage: x509.KeyUsageCertSign}
	if interSpec != nil {
		is = *interSpec
	}
	inter := mustCert(tb, is, interKey.Public(), root, rootKey)
	leafKey := mustKey(tb, elliptic.P384())
	ls := certSpec{cn: "test enclave", keyUsage: x509.KeyUsageDigitalSignature}
	if leafSpec != nil {
		ls = *leafSpec
	}
	leaf := mustCert(tb, ls, leafKey.Public(), inter, interKey)
	return &testCA{root: root, inter: inter, leaf: leaf, leafKey: leafKey}
}

func (ca *testCA) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.root)
	return p
}

// payload returns the fields of a valid attestation document signed by the
// CA's leaf, as a map the caller may change before encoding.
func (ca *testCA) payload() map[string]any {
	pcrs := map[uint64][]byte{}
	for i := uint64(0); i < 16; i++ {
		pcrs[i] = make([]byte, 48)
	}
	pcrs[0][0] = 0xaa
	return map[string]any{
		fieldModuleID:    "i-0123456789abcdef0-enc0123456789abcdef",
		fieldDigest:      digestSHA384,
		fieldTimestamp:   uint64(synthTime.UnixMilli()),
		fieldPCRs:        pcrs,
		fieldCertificate: ca.leaf.Raw,
		fieldCABundle:    [][]byte{ca.root.Raw, ca.inter.Raw},
		fieldPublicKey:   []byte("public key"),
		fieldUserData:    []byte("user data"),
		fieldNonce:       []byte("nonce"),
	}
}

func encodeCBOR(tb testing.TB, v any) []byte {
	tb.Helper()
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		tb.Fatal(err)
	}
	b, err := em.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// sign wraps payload in an untagged COSE_Sign1 signed by signer with the
// given headers.
func sign(tb testing.TB, payload []byte, alg cose.Algorithm, key crypto.Signer, mutateHeaders func(*cose.Headers)) []byte {
	tb.Helper()
	signer, err := cose.NewSigner(alg, key)
	if err != nil {
		tb.Fatal(err)
	}
	h := cose.Headers{Protected: cose.ProtectedHeader{cose.HeaderLabelAlgorithm: alg}, Unprotected: cose.UnprotectedHeader{}}
	if mutateHeaders != nil {
		mutateHeaders(&h)
	}
	doc, err := cose.Sign1Untagged(rand.Reader, signer, h, payload, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

// doc signs the CA's payload after mutate, with ES384 by the leaf key.
func (ca *testCA) doc(tb testing.TB, mutate func(map[string]any)) []byte {
	tb.Helper()
	p := ca.payload()
	if mutate != nil {
		mutate(p)
	}
	return sign(tb, encodeCBOR(tb, p), cose.AlgorithmES384, ca.leafKey, nil)
}
