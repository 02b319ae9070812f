package tdx

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/pcs"
)

// mapGetter is Intel's PCS on a map: no network. It records what it was
// asked for.
type mapGetter struct {
	responses map[string]response
	asked     []string
}

type response struct {
	header map[string][]string
	body   []byte
}

func (g *mapGetter) Get(u string) (map[string][]string, []byte, error) {
	g.asked = append(g.asked, u)
	r, ok := g.responses[u]
	if !ok {
		return nil, nil, fmt.Errorf("404: %s", u)
	}
	return r.header, r.body, nil
}

const intelRootCRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// realCollateral serves the sample PCS responses in testdata, with the
// issuer chain headers Intel's PCS sends with them.
func realCollateral(tb testing.TB) *mapGetter {
	tb.Helper()
	chain := func(header, file string) map[string][]string {
		return map[string][]string{header: {string(readTestdata(tb, file))}}
	}
	return &mapGetter{responses: map[string]response{
		pcs.TcbInfoURL("50806f000000"): {chain("Tcb-Info-Issuer-Chain", "tcb_info_issuer_chain"), readTestdata(tb, "sample_tcbInfo_response")},
		pcs.QeIdentityURL():            {chain("Sgx-Enclave-Identity-Issuer-Chain", "sgx_enclave_identity_issuer_chain"), readTestdata(tb, "sample_qeIdentity_response")},
		pcs.PckCrlURL("platform"):      {chain("Sgx-Pck-Crl-Issuer-Chain", "sgx_pck_crl_issuer_chain"), readTestdata(tb, "pckcrl")},
		intelRootCRLURL:                {nil, readTestdata(tb, "rootcrl.der")},
	}}
}

// TestRealCollateral verifies the real quote with the sample collateral,
// served from memory. The collateral is genuine and verifies to Intel's
// root, but its TCB levels (evaluation data number 15) rate no level of
// this platform's TCB: go-tdx-guest's own test expects the same refusal.
func TestRealCollateral(t *testing.T) {
	raw := realQuote(t)
	g := realCollateral(t)
	_, err := Verify(context.Background(), raw, Options{CurrentTime: realTime, Getter: g})
	if !errors.Is(err, ErrCollateral) || !strings.Contains(err.Error(), "no matching TCB level found") {
		t.Fatalf("got %v, want ErrCollateral: no matching TCB level", err)
	}
	checkOneSentinel(t, err)
	want := []string{pcs.TcbInfoURL("50806f000000"), pcs.QeIdentityURL(), pcs.PckCrlURL("platform"), intelRootCRLURL}
	if strings.Join(g.asked, " ") != strings.Join(want, " ") {
		t.Errorf("asked for %q, want %q", g.asked, want)
	}

	// The collateral is checked at the verification time: after the TCB
	// info's nextUpdate it is stale.
	_, err = Verify(context.Background(), raw, Options{CurrentTime: time.Date(2023, 7, 20, 0, 0, 0, 0, time.UTC), Getter: realCollateral(t)})
	if !errors.Is(err, ErrCollateral) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("stale collateral: got %v, want ErrCollateral (expired)", err)
	}
	// Collateral from a PCS that has nothing.
	_, err = Verify(context.Background(), raw, Options{CurrentTime: realTime, Getter: &mapGetter{}})
	if !errors.Is(err, ErrCollateral) {
		t.Errorf("empty PCS: got %v, want ErrCollateral", err)
	}
	// Collateral is not fetched once ctx is done.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g = realCollateral(t)
	if _, err := Verify(ctx, raw, Options{CurrentTime: realTime, Getter: g}); !errors.Is(err, ErrCollateral) || len(g.asked) != 0 {
		t.Errorf("cancelled: got %v after %d fetches, want ErrCollateral and none", err, len(g.asked))
	}
	// Offline, nothing is fetched and the same quote verifies.
	if _, err := Verify(context.Background(), raw, Options{CurrentTime: realTime}); err != nil {
		t.Fatal(err)
	}
}

// collateralOpts shapes the fake collateral.
type collateralOpts struct {
	tcbStatus   string // "" means UpToDate
	qeStatus    string // "" means UpToDate
	revokePCK   bool
	nextUpdate  time.Time // zero: fakeTime + 30 days
	badTCBSig   bool
	wrongMRSign bool
}

// collateral returns a PCS serving TCB info, QE identity and CRLs signed
// by the fake Intel, rating the fake quotes' platform as o says.
func (f *fakeIntel) collateral(tb testing.TB, o collateralOpts) *mapGetter {
	tb.Helper()
	real, err := Parse(realQuote(tb))
	if err != nil {
		tb.Fatal(err)
	}
	signerKey := newKey(tb)
	signer := f.issue(tb, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Intel SGX TCB Signing", Organization: []string{"Intel Corporation"}},
		NotBefore:             fakeCreation,
		NotAfter:              fakeCreation.AddDate(7, 0, 0),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}, f.root, signerKey, f.rootKey)
	pemOf := func(cs ...*x509.Certificate) string {
		var b []byte
		for _, c := range cs {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		return url.QueryEscape(string(b))
	}
	issued, next := fakeTime.AddDate(0, 0, -1), o.nextUpdate
	if next.IsZero() {
		next = fakeTime.AddDate(0, 0, 30)
	}
	status := func(s string) string {
		if s == "" {
			return "UpToDate"
		}
		return s
	}
	zeros := `{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0},{"svn":0}`
	mrsignerSEAM := hex.EncodeToString(real.MRSignerSEAM[:])
	if o.wrongMRSign {
		mrsignerSEAM = strings.Repeat("11", 48)
	}
	tcbInfo := fmt.Sprintf(`{"id":"TDX","version":3,"issueDate":%q,"nextUpdate":%q,"fmspc":"50806f000000","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":17,`+
		`"tdxModule":{"mrsigner":%q,"attributes":"0000000000000000","attributesMask":"FFFFFFFFFFFFFFFF"},`+
		`"tcbLevels":[{"tcb":{"sgxtcbcomponents":[%s],"pcesvn":11,"tdxtcbcomponents":[%s]},"tcbDate":"2024-01-01T00:00:00Z","tcbStatus":%q}]}`,
		issued.Format(time.RFC3339), next.Format(time.RFC3339), mrsignerSEAM, zeros, zeros, status(o.tcbStatus))
	attrMask := mustHex(tb, "FBFFFFFFFFFFFFFF0000000000000000")
	attrs := make([]byte, 16)
	for i := range attrs {
		attrs[i] = real.QEReport.Attributes[i] & attrMask[i]
	}
	qeIdentity := fmt.Sprintf(`{"id":"TD_QE","version":2,"issueDate":%q,"nextUpdate":%q,"tcbEvaluationDataNumber":17,"miscselect":"00000000","miscselectMask":"FFFFFFFF",`+
		`"attributes":%q,"attributesMask":"FBFFFFFFFFFFFFFF0000000000000000","mrsigner":%q,"isvprodid":%d,"tcbLevels":[{"tcb":{"isvsvn":%d},"tcbDate":"2024-01-01T00:00:00Z","tcbStatus":%q}]}`,
		issued.Format(time.RFC3339), next.Format(time.RFC3339), hex.EncodeToString(attrs), hex.EncodeToString(real.QEReport.MRSIGNER[:]),
		real.QEReport.ISVProdID, real.QEReport.ISVSVN, status(o.qeStatus))
	signed := func(field, body string) []byte {
		sig := sign(tb, signerKey, []byte(body))
		if o.badTCBSig && field == "tcbInfo" {
			sig[7] ^= 1
		}
		return []byte(fmt.Sprintf(`{%q:%s,"signature":%q}`, field, body, hex.EncodeToString(sig)))
	}
	crl := func(issuer *x509.Certificate, key crypto.Signer, revoked []x509.RevocationListEntry) []byte {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(1), ThisUpdate: issued, NextUpdate: next, RevokedCertificateEntries: revoked,
		}, issuer, key)
		if err != nil {
			tb.Fatal(err)
		}
		return der
	}
	var revoked []x509.RevocationListEntry
	if o.revokePCK {
		revoked = append(revoked, x509.RevocationListEntry{SerialNumber: f.pck.SerialNumber, RevocationTime: issued})
	}
	return &mapGetter{responses: map[string]response{
		pcs.TcbInfoURL("50806f000000"): {map[string][]string{"Tcb-Info-Issuer-Chain": {pemOf(signer, f.root)}}, signed("tcbInfo", tcbInfo)},
		pcs.QeIdentityURL():            {map[string][]string{"Sgx-Enclave-Identity-Issuer-Chain": {pemOf(signer, f.root)}}, signed("enclaveIdentity", qeIdentity)},
		pcs.PckCrlURL("platform"):      {map[string][]string{"Sgx-Pck-Crl-Issuer-Chain": {pemOf(f.inter, f.root)}}, crl(f.inter, f.interKey, revoked)},
		fakeRootCRLURL:                 {nil, crl(f.root, f.rootKey, nil)},
	}}
}

// TestFakeCollateral verifies fresh quotes with collateral made by the
// fake Intel, and each way the collateral can refuse them.
func TestFakeCollateral(t *testing.T) {
	f := newFakeIntel(t)
	raw := f.quote(t, nil)
	ctx := context.Background()
	opts := func(g *mapGetter) Options { return Options{Roots: f.roots(), CurrentTime: fakeTime, Getter: g} }
	g := f.collateral(t, collateralOpts{})
	if _, err := Verify(ctx, raw, opts(g)); err != nil {
		t.Fatalf("UpToDate collateral: %v", err)
	}
	if len(g.asked) != 4 {
		t.Errorf("asked %q", g.asked)
	}
	for name, o := range map[string]collateralOpts{
		"TCB OutOfDate":             {tcbStatus: "OutOfDate"},
		"TCB SWHardeningNeeded":     {tcbStatus: "SWHardeningNeeded"},
		"QE OutOfDate":              {qeStatus: "OutOfDate"},
		"PCK revoked":               {revokePCK: true},
		"stale":                     {nextUpdate: fakeTime.Add(-time.Hour)},
		"bad TCB info signature":    {badTCBSig: true},
		"TDX module signer differs": {wrongMRSign: true},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(ctx, raw, opts(f.collateral(t, o)))
			if !errors.Is(err, ErrCollateral) {
				t.Fatalf("got %v, want ErrCollateral", err)
			}
			checkOneSentinel(t, err)
			t.Log(err)
		})
	}
	// Collateral signed by another (fake) Intel does not verify to ours.
	other := newFakeIntel(t)
	if _, err := Verify(ctx, raw, opts(other.collateral(t, collateralOpts{}))); !errors.Is(err, ErrCollateral) {
		t.Errorf("foreign collateral: got %v, want ErrCollateral", err)
	}
}
