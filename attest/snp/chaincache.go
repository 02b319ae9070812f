package snp

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
)

// maxCachedChains bounds a Roots' cache of verified endorsement key
// certificates. A fleet has one VCEK per chip and TCB version, or a few VLEKs
// per cloud region; past the bound the cache starts again, which costs one
// full chain verification per certificate and nothing else.
const maxCachedChains = 4096

// chainKey names one chain verification go-sev-guest made: the same
// certificate bytes, signing key kind and product line (from the report's
// CPUID fields; empty for version 2 reports, where go-sev-guest takes it from
// the certificate) always get the same answer under one Roots, at any time
// inside the validity of every certificate involved.
type chainKey struct {
	key  abi.ReportSigner
	line string
	der  [sha256.Size]byte
}

// chainEntry is a certificate go-sev-guest accepted: KDS-issued as
// specification 57230 describes, chained through an intermediate to an ARK
// of the Roots. notBefore..notAfter is the intersection of the validity of
// the certificate and of every intermediate and ARK of its product line in
// the Roots (a conservative window: outside it, Verify takes the full path
// again, which gives the precise error).
type chainEntry struct {
	ek                  *x509.Certificate
	productLine         string
	notBefore, notAfter time.Time
}

// chainCache remembers the certificates that passed chain verification, so
// that later reports signed by the same key cost one ECDSA P-384 check
// (go-sev-guest's SnpReportSignature) instead of certificate parsing, three
// RSA-4096 checks and chain building. Only positive results are kept, and
// only under the Roots that produced them: adding a root to a Roots never
// makes a cached answer wrong, since it only widens what is trusted.
type chainCache struct {
	mu sync.Mutex
	m  map[chainKey]*chainEntry
}

func newChainKey(key abi.ReportSigner, line string, der []byte) chainKey {
	return chainKey{key: key, line: line, der: sha256.Sum256(der)}
}

// get returns the entry for k if there is one whose window contains at.
func (c *chainCache) get(k chainKey, at time.Time) *chainEntry {
	c.mu.Lock()
	e := c.m[k]
	c.mu.Unlock()
	if e == nil || at.Before(e.notBefore) || at.After(e.notAfter) {
		return nil
	}
	return e
}

// put records that ek, under the key k, passed go-sev-guest's chain checks
// against roots at some time; intermediate and ARK validity narrow the
// window in which that answer is reused.
func (c *chainCache) put(k chainKey, ek *x509.Certificate, productLine string, roots *Roots) {
	e := &chainEntry{ek: ek, productLine: productLine, notBefore: ek.NotBefore, notAfter: ek.NotAfter}
	for _, root := range roots.byLine[productLine] {
		inter := root.ProductCerts.Ask
		if k.key == abi.VlekReportSigner {
			inter = root.ProductCerts.Asvk
		}
		for _, cert := range []*x509.Certificate{inter, root.ProductCerts.Ark} {
			if cert == nil {
				continue
			}
			if cert.NotBefore.After(e.notBefore) {
				e.notBefore = cert.NotBefore
			}
			if cert.NotAfter.Before(e.notAfter) {
				e.notAfter = cert.NotAfter
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedChains {
		c.m = make(map[chainKey]*chainEntry)
	}
	c.m[k] = e
}
