package snp

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-sev-guest/verify/trust"
)

// The AMD certificate chains, one file per product line and endorsement key
// kind, each as AMD's Key Distribution Service (KDS) serves it at
// https://kdsintf.amd.com/{vcek,vlek}/v1/{Milan,Genoa,Turin}/cert_chain: the
// intermediate (ASK for VCEK, ASVK for VLEK) then the self-signed root (ARK).
// Copied unchanged from github.com/google/go-sev-guest v0.15.0,
// verify/trust/*.pem (Apache-2.0, Google LLC), which embeds the same files
// from the KDS. trust/README.md says the same beside the files.
var (
	//go:embed trust/ask_ark_milan.pem
	milanVCEKChain []byte
	//go:embed trust/ask_ark_milan_vlek.pem
	milanVLEKChain []byte
	//go:embed trust/ask_ark_genoa.pem
	genoaVCEKChain []byte
	//go:embed trust/ask_ark_genoa_vlek.pem
	genoaVLEKChain []byte
	//go:embed trust/ask_ark_turin_vcek.pem
	turinVCEKChain []byte
	//go:embed trust/ask_ark_turin_vlek.pem
	turinVLEKChain []byte
)

// Product lines, as AMD's KDS and go-sev-guest spell them.
const (
	Milan = "Milan"
	Genoa = "Genoa"
	Turin = "Turin"
)

// embeddedChain is one embedded KDS cert_chain with the SHA-256 fingerprints
// of the DER form of its two certificates, checked each time it is loaded.
type embeddedChain struct {
	productLine string
	pem         []byte
	// intermediateSHA256, arkSHA256: upper-case hex.
	intermediateSHA256, arkSHA256 string
}

// ARK fingerprints (SHA-256 of the DER certificate). These are the trust
// anchors; the ASK/ASVK are checked against them at load time as well.
const (
	ARKMilanSHA256 = "69D063B45344D26A2E94E1F4210DE49EF555308287D4C174445C95639A540BCD"
	ARKGenoaSHA256 = "4C6598D19C18719C5DFD4A7D335F674E5BFE1D8F800CEA2CF270C10D103DB2F1"
	ARKTurinSHA256 = "1F084161A44BB6D93778A904877D4819CAFA5D05EF4193B2DED9DD9C73DD3F6A"
)

var embeddedChains = []embeddedChain{
	{Milan, milanVCEKChain, "67D303BD3905FD38DB8B20E0793699870E7FA612EAAD5DEC358293FD8C0BAC1B", ARKMilanSHA256},
	{Milan, milanVLEKChain, "C5E081F59B7EFAB1FE2F8B505E159704E72F29CAB7EF7CF628A05A42439082F5", ARKMilanSHA256},
	{Genoa, genoaVCEKChain, "5464738C1546AED5F2CECF1DC98C5C960A92E8913238A61711BC90EC6E828521", ARKGenoaSHA256},
	{Genoa, genoaVLEKChain, "197E610743A917D6B9BB982A5A9226CCC0A15B611BE0619E626ACA9151457372", ARKGenoaSHA256},
	{Turin, turinVCEKChain, "5B77EF5FE7A7A004FD9032668FBA9D0FDA22F88C4442069A479636A6AE3B3185", ARKTurinSHA256},
	{Turin, turinVLEKChain, "104E10A8BD060A3C20A434261A57D0588FD65A88915B4F65B08BDECAF8DF1A3C", ARKTurinSHA256},
}

// Roots is a set of trusted AMD certificate chains, by product line. Build
// one with [DefaultRoots] or [NewRoots] and [Roots.AddKDSCertChain], then
// share it between goroutines: verification does not change what it trusts.
// It remembers the endorsement key certificates it has verified, so keep one
// Roots for many verifications: the first report signed by a VCEK pays for
// the chain, later ones only for their own signature (docs/evidence-snp.md).
// AddKDSCertChain must not run concurrently with Verify.
type Roots struct {
	// byLine maps a product line to its roots, each an ARK with the ASK
	// and/or ASVK it certifies, in the form go-sev-guest's verify package
	// takes.
	byLine map[string][]*trust.AMDRootCerts

	chains chainCache
}

// NewRoots returns an empty set of roots.
func NewRoots() *Roots {
	return &Roots{byLine: map[string][]*trust.AMDRootCerts{}}
}

// DefaultRoots returns a new set holding the embedded AMD chains for Milan,
// Genoa and Turin, for both VCEK- and VLEK-signed reports. Each call returns
// a fresh set, so callers may add to it without affecting anyone else.
// [Options] with nil Roots use one shared, process-wide default set.
func DefaultRoots() *Roots {
	r := NewRoots()
	for _, c := range defaultChains() {
		r.add(c.productLine, c.intermediate, c.ark)
	}
	return r
}

// sharedRoots is the set Verify uses when Options.Roots is nil, shared so that
// its certificate cache serves every such call.
var sharedRoots = sync.OnceValue(DefaultRoots)

type parsedChain struct {
	productLine       string
	intermediate, ark *x509.Certificate
}

// defaultChains parses the embedded chains once. The parsed certificates are
// never modified. The files are part of the binary, so a failure is a build
// defect: panic.
var defaultChains = sync.OnceValue(func() []parsedChain {
	var out []parsedChain
	for _, e := range embeddedChains {
		inter, ark, err := parseKDSCertChain(e.productLine, e.pem)
		if err != nil {
			panic(fmt.Sprintf("snp: embedded %s chain: %v", e.productLine, err))
		}
		for _, p := range []struct {
			c    *x509.Certificate
			want string
		}{{inter, e.intermediateSHA256}, {ark, e.arkSHA256}} {
			if got := fingerprint(p.c); got != p.want {
				panic(fmt.Sprintf("snp: embedded %s chain: %s has SHA-256 %s, want pinned %s", e.productLine, p.c.Subject.CommonName, got, p.want))
			}
		}
		out = append(out, parsedChain{e.productLine, inter, ark})
	}
	return out
})

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// AddKDSCertChain adds a chain in the format AMD's KDS serves at
// .../{vcek,vlek}/v1/<productLine>/cert_chain: two PEM CERTIFICATE blocks,
// the ASK (or, for VLEK, the ASVK) then the self-signed ARK. productLine is
// one of [Milan], [Genoa], [Turin]. The chain is checked when added: the ARK
// must be self-signed, the intermediate signed by it, and both named as AMD
// names them for that product line.
func (r *Roots) AddKDSCertChain(productLine string, pemChain []byte) error {
	inter, ark, err := parseKDSCertChain(productLine, pemChain)
	if err != nil {
		return fmt.Errorf("snp: AddKDSCertChain: %w", err)
	}
	r.add(productLine, inter, ark)
	return nil
}

// add files inter under the entry for ark, so that the ASK and the ASVK of
// one ARK share an entry, as go-sev-guest expects.
func (r *Roots) add(productLine string, inter, ark *x509.Certificate) {
	var entry *trust.AMDRootCerts
	for _, e := range r.byLine[productLine] {
		if e.ProductCerts.Ark.Equal(ark) {
			entry = e
		}
	}
	if entry == nil {
		entry = &trust.AMDRootCerts{ProductLine: productLine, ProductCerts: &trust.ProductCerts{Ark: ark}}
		r.byLine[productLine] = append(r.byLine[productLine], entry)
	}
	if isVLEKIntermediate(inter) {
		entry.ProductCerts.Asvk = inter
	} else {
		entry.ProductCerts.Ask = inter
	}
}

// ProductLines returns the product lines that have at least one root.
func (r *Roots) ProductLines() []string {
	var out []string
	for line := range r.byLine {
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

func isVLEKIntermediate(c *x509.Certificate) bool {
	return strings.HasPrefix(c.Subject.CommonName, "SEV-VLEK-")
}

// parseKDSCertChain splits and checks a KDS cert_chain. It uses go-sev-guest
// for nothing here: the format is two PEM blocks, and the checks are the
// standard library's signature checks.
func parseKDSCertChain(productLine string, pemChain []byte) (inter, ark *x509.Certificate, err error) {
	switch productLine {
	case Milan, Genoa, Turin:
	default:
		return nil, nil, fmt.Errorf("unknown product line %q, want Milan, Genoa or Turin", productLine)
	}
	var certs []*x509.Certificate
	rest := pemChain
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("PEM block %q, want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 || len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, fmt.Errorf("want exactly two PEM certificates (ASK or ASVK, then ARK), got %d", len(certs))
	}
	inter, ark = certs[0], certs[1]
	if want := "ARK-" + productLine; ark.Subject.CommonName != want {
		return nil, nil, fmt.Errorf("root is %q, want %q", ark.Subject.CommonName, want)
	}
	if want, wantV := "SEV-"+productLine, "SEV-VLEK-"+productLine; inter.Subject.CommonName != want && inter.Subject.CommonName != wantV {
		return nil, nil, fmt.Errorf("intermediate is %q, want %q or %q", inter.Subject.CommonName, want, wantV)
	}
	if err := ark.CheckSignatureFrom(ark); err != nil {
		return nil, nil, fmt.Errorf("ARK is not self-signed: %v", err)
	}
	if err := inter.CheckSignatureFrom(ark); err != nil {
		return nil, nil, fmt.Errorf("%s is not signed by the ARK: %v", inter.Subject.CommonName, err)
	}
	return inter, ark, nil
}
