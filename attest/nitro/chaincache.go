package nitro

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
)

// maxValidatedChains bounds the cache of validated chains. An instance's
// leaf certificate lives a few hours and its cabundle is shared by a region,
// so a verifier sees few distinct chains; past the bound the cache starts
// again, which costs one full validation per chain and nothing else.
const maxValidatedChains = 4096

// validatedChains holds the digests of chains [certificate, cabundle...]
// that x509.Verify accepted as a path from the leaf through the bundle, in
// order, to cabundle[0] as a root. Checking the signatures of a Nitro chain
// costs four ECDSA P-384 verifications, about 1 ms each on a small VM, and a
// relying party sees the same chain for every document of an enclave
// instance. What a cache hit does not decide is checked on every call: the
// validity of each certificate at the verification time, the bundle's
// structure, that cabundle[0] is a root of the caller's pool, and the
// document's own signature (docs/evidence-nitro.md).
var validatedChains = &chainCache{}

type chainCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]struct{}
}

func (c *chainCache) has(k [sha256.Size]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	return ok
}

func (c *chainCache) add(k [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxValidatedChains {
		c.m = make(map[[sha256.Size]byte]struct{})
	}
	c.m[k] = struct{}{}
}

// chainDigest is SHA-256 over the length-prefixed DER of the leaf and each
// bundle entry in order, so that no two different chains share a digest.
func chainDigest(leaf *x509.Certificate, bundle []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, c := range append([]*x509.Certificate{leaf}, bundle...) {
		binary.BigEndian.PutUint64(n[:], uint64(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
