package tdx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/asylo-go/asylo/attest/internal/evidencetest"
)

// realTime is inside the validity of the real quote's PCK chain (PCK
// 2022-09-20T13:20:31Z to 2029-09-20T13:20:31Z; PCK Platform CA to
// 2033-05-21; Root CA to 2049-12-31) and of the sample collateral (TCB info
// and QE identity next updates 2023-07-18 and 2023-07-08, PCK CRL
// 2023-07-08, Root CA CRL 2024-04-02).
var realTime = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)

// libraryExtraBytes is what go-tdx-guest's authors appended to the real
// quote in their testdata, as its ExtraBytes test; see testdata/README.md.
const libraryExtraBytes = "\nextra bytes(only for testing purpose)\n"

// libraryQuote returns testdata/tdx_prod_quote_SPR_E4.dat exactly as
// go-tdx-guest ships it.
func libraryQuote(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/tdx_prod_quote_SPR_E4.dat")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// realQuote returns the real quote as the quoting enclave produced it: the
// testdata file without the bytes go-tdx-guest's authors appended.
func realQuote(tb testing.TB) []byte {
	tb.Helper()
	b := libraryQuote(tb)
	if !bytes.HasSuffix(b, []byte(libraryExtraBytes)) {
		tb.Fatal("testdata quote does not end with the library's extra bytes")
	}
	return b[:len(b)-len(libraryExtraBytes)]
}

var sentinels = []error{
	ErrMalformed, ErrUnsupported, ErrCertificateExpired, ErrUntrustedRoot,
	ErrBadSignature, ErrReportDataMismatch, ErrDebugNotAllowed, ErrCollateral,
}

// checkOneSentinel fails unless err wraps exactly one of the package's
// sentinel errors.
func checkOneSentinel(tb testing.TB, err error) {
	tb.Helper()
	evidencetest.OneSentinel(tb, err, sentinels)
}

// fakeTime is inside the validity of the fake chain made at fakeCreation.
var (
	fakeCreation = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)
	fakeTime     = time.Date(2024, time.June, 1, 0, 0, 0, 0, time.UTC)
)

// fakeIntel is a test-only Intel: a root CA, PCK Platform CA and PCK
// certificate with Intel's names and algorithms (ECDSA P-256 with SHA-256),
// fresh keys, and the real PCK's SGX extensions, so that go-tdx-guest
// accepts quotes it signs when its root is trusted. go-tdx-guest has no test
// signer of its own; quotes are built by re-encoding the real one with
// go-tdx-guest's abi package.
type fakeIntel struct {
	rootKey, interKey, pckKey *ecdsa.PrivateKey
	root, inter, pck          *x509.Certificate
	chainPEM                  []byte
}

const fakeRootCRLURL = "https://fake-intel.invalid/IntelSGXRootCA.der"

func newFakeIntel(tb testing.TB) *fakeIntel {
	tb.Helper()
	real, err := Parse(realQuote(tb))
	if err != nil {
		tb.Fatal(err)
	}
	var sgxExt pkix.Extension
	for _, e := range real.PCK.Extensions {
		if e.Id.Equal(pcs.OidSgxExtension) {
			sgxExt = e
		}
	}
	f := &fakeIntel{rootKey: newKey(tb), interKey: newKey(tb), pckKey: newKey(tb)}
	notAfter := fakeCreation.AddDate(10, 0, 0)
	f.root = f.issue(tb, &x509.Certificate{
		Subject:               real.PCKRoot.Subject,
		NotBefore:             fakeCreation,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		CRLDistributionPoints: []string{fakeRootCRLURL},
	}, nil, f.rootKey, f.rootKey)
	f.inter = f.issue(tb, &x509.Certificate{
		Subject:               real.PCKIntermediate.Subject,
		NotBefore:             fakeCreation,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, f.root, f.interKey, f.rootKey)
	f.pck = f.issue(tb, &x509.Certificate{
		Subject:               real.PCK.Subject,
		NotBefore:             fakeCreation,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		SubjectKeyId:          []byte("fake-pck-key-id-0001"),
		CRLDistributionPoints: []string{"https://fake-intel.invalid/pckcrl"},
		ExtraExtensions:       []pkix.Extension{sgxExt},
	}, f.inter, f.pckKey, f.interKey)
	for _, c := range []*x509.Certificate{f.pck, f.inter, f.root} {
		f.chainPEM = append(f.chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return f
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

var serial int64

func (f *fakeIntel) issue(tb testing.TB, tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) *x509.Certificate {
	tb.Helper()
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// roots returns a pool trusting only the fake root.
func (f *fakeIntel) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.root)
	return p
}

// sign returns an ECDSA P-256 SHA-256 signature of msg as the quote format
// carries it: r || s, 32 bytes each.
func sign(tb testing.TB, key *ecdsa.PrivateKey, msg []byte) []byte {
	tb.Helper()
	h := sha256.Sum256(msg)
	der, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		tb.Fatal(err)
	}
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		tb.Fatal(err)
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out
}

// quote makes a fresh quote as a TD and Intel's quoting enclave would, from
// the real quote's fields changed by edit (nil: none), with a fresh
// attestation key bound into the QE report, the QE report signed by the
// fake PCK key, and the fake chain.
func (f *fakeIntel) quote(tb testing.TB, edit func(*pb.QuoteV4)) []byte {
	tb.Helper()
	_, p, err := parse(realQuote(tb))
	if err != nil {
		tb.Fatal(err)
	}
	if edit != nil {
		edit(p)
	}
	ak := newKey(tb)
	akPub, err := ak.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		tb.Fatal(err)
	}
	sd := p.GetSignedData()
	sd.EcdsaAttestationKey = akPub[1:]
	cd := sd.GetCertificationData()
	qe := cd.GetQeReportCertificationData()
	bind := sha256.Sum256(append(bytes.Clone(sd.EcdsaAttestationKey), qe.GetQeAuthData().GetData()...))
	qe.QeReport.ReportData = append(bind[:], make([]byte, 32)...)
	report, err := abi.EnclaveReportToAbiBytes(qe.GetQeReport())
	if err != nil {
		tb.Fatal(err)
	}
	qe.QeReportSignature = sign(tb, f.pckKey, report)
	qe.PckCertificateChainData.PckCertChain = f.chainPEM
	qe.PckCertificateChainData.Size = uint32(len(f.chainPEM))
	// QE report, its signature, auth data with its size, chain with type and size.
	cd.Size = uint32(len(report) + 64 + 2 + len(qe.GetQeAuthData().GetData()) + 6 + len(f.chainPEM))
	p.SignedDataSize = 64 + 64 + 6 + cd.Size
	header, err := abi.HeaderToAbiBytes(p.GetHeader())
	if err != nil {
		tb.Fatal(err)
	}
	body, err := abi.TdQuoteBodyToAbiBytes(p.GetTdQuoteBody())
	if err != nil {
		tb.Fatal(err)
	}
	sd.Signature = sign(tb, ak, append(header, body...))
	raw, err := abi.QuoteToAbiBytes(p)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}
