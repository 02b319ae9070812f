// Package seal encrypts data so that only an enclave with a given identity
// can decrypt it: sealing to the code identity (SealToMeasurement) or to the
// signer identity (SealToSigner, SVN-aware). It runs inside the enclave and
// uses the standard library only.
//
// Specification: docs/sealing.md, sealed-blob format version 1 (Version),
// cipher suite 1: HKDF-SHA-256 (RFC 5869) per-blob keys and AES-256-GCM
// (NIST SP 800-38D), with test vectors.
//
// Keys come from a Root, the enclave's trusted key source, which enforces the
// policy: it derives nothing for another identity or for an SVN above the
// enclave's own. SoftwareRoot serves the sim back-end; Broker and
// MemoryBroker serve platforms that get keys from a key broker.
package seal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/asylo-go/asylo/identity"
)

// Labels of docs/sealing.md §3.
const (
	labelBlobSalt = "asylo-seal/v1 blob"
	labelBlobKey  = "asylo-seal/v1 blob key\x00"
)

// maxCachedKeys bounds the cache of policy keys for unsealing. Every entry is
// a key the root agreed to derive (at most one per SVN up to the enclave's
// own and per key id), but a host can still present many SVNs; past the bound
// keys are derived per blob and not cached.
const maxCachedKeys = 32

// A Sealer seals and unseals blobs for the enclave its Root serves. It is
// safe for concurrent use.
type Sealer struct {
	root  Root
	id    identity.Identity
	keyID KeyID
	rand  io.Reader

	// The keys for sealing at the enclave's own identity, derived in New.
	// signer is nil for an unsigned enclave.
	measurement, signer *ownKey

	mu    sync.Mutex
	cache map[KeyRequest]*blobPRK // for unsealing older SVNs and other key ids
}

// ownKey is what sealing under one policy at the enclave's own identity
// needs: the request, its blob PRK, and the header bytes before the salt,
// which are the same for every blob (docs/sealing.md §2), so a blob copies
// them instead of encoding the header again.
type ownKey struct {
	req    KeyRequest
	prk    *blobPRK
	header [offSalt]byte
}

// blobPRK is HKDF-Extract(salt = "asylo-seal/v1 blob", ikm = policy key), from
// which every blob under that policy key expands its own key (docs/sealing.md
// §3). Caching it makes a blob cost one HMAC and one AES key schedule.
type blobPRK struct {
	prk []byte
	// scratch recycles the per-blob working memory (*blobScratch), including
	// an HMAC already keyed with prk, so that a blob does no HMAC key setup
	// and allocates nothing but what crypto/aes and crypto/cipher allocate.
	// It is owned by this blobPRK and dropped with it.
	scratch sync.Pool
}

// blobScratch is the working memory of one seal or unseal, used by one
// goroutine at a time (taken from and returned to blobPRK.scratch).
type blobScratch struct {
	// mac is HMAC-SHA-256 keyed with the blob PRK, in its keyed state: it is
	// Reset after every use.
	mac hash.Hash
	// info is "asylo-seal/v1 blob key" ‖ 00 ‖ header ‖ 01: the HKDF-Expand
	// info followed by the counter byte of T(1) (RFC 5869 §2.3). The label
	// and the counter are written once; each blob writes its header.
	info [len(labelBlobKey) + HeaderSize + 1]byte
	// key is the blob key, cleared as soon as the AES key schedule has it.
	key [32]byte
	// aad is the GCM additional data, header ‖ uint64(len(ad)) ‖ ad.
	aad []byte
}

// maxPooledAAD bounds the additional-data buffer a scratch keeps between
// blobs; larger additional data gets a buffer that is not kept.
const maxPooledAAD = 4 << 10

func newBlobPRK(policyKey []byte) (*blobPRK, error) {
	if len(policyKey) != PolicyKeySize {
		return nil, fmt.Errorf("seal: root returned a %d-byte policy key, want %d", len(policyKey), PolicyKeySize)
	}
	prk, err := hkdf.Extract(sha256.New, policyKey, []byte(labelBlobSalt))
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &blobPRK{prk: prk}, nil
}

// getScratch returns a scratch whose HMAC is keyed with k's PRK, recycled or
// new. Return it with putScratch.
func (k *blobPRK) getScratch() *blobScratch {
	if sc, ok := k.scratch.Get().(*blobScratch); ok {
		return sc
	}
	sc := &blobScratch{mac: hmac.New(sha256.New, k.prk)}
	copy(sc.info[:], labelBlobKey)
	sc.info[len(sc.info)-1] = 1
	return sc
}

// putScratch wipes the blob key and the additional data from sc and
// recycles it.
func (k *blobPRK) putScratch(sc *blobScratch) {
	clear(sc.key[:])
	clear(sc.aad)
	if cap(sc.aad) > maxPooledAAD {
		sc.aad = nil
	}
	sc.aad = sc.aad[:0]
	k.scratch.Put(sc)
}

// header is where the blob's 88-byte header goes, inside the HKDF info.
func (sc *blobScratch) header() []byte {
	return sc.info[len(labelBlobKey) : len(labelBlobKey)+HeaderSize]
}

// deriveKey sets sc.key to HKDF-Expand(prk, "asylo-seal/v1 blob key" ‖ 00 ‖
// header, 32) for the header in sc.info (docs/sealing.md §3). For an output
// no longer than the hash, RFC 5869 §2.3 reduces HKDF-Expand to
// T(1) = HMAC-Hash(PRK, info ‖ 0x01); computing that with an HMAC keyed once
// per scratch, over info already laid out in one buffer, saves the HMAC key
// setup and the allocations of crypto/hkdf.Expand, which a 1 KiB blob
// notices. TestBlobKeyIsHKDF checks that both give the same bytes.
func (sc *blobScratch) deriveKey() {
	sc.mac.Write(sc.info[:])
	sc.mac.Sum(sc.key[:0])
	sc.mac.Reset()
}

// aead derives the blob key from the header in sc.info and returns
// AES-256-GCM under it. The whole header is in the HKDF info, so a changed
// header yields another key, and it is also the GCM additional data
// (appendAAD).
func (sc *blobScratch) aead() (cipher.AEAD, error) {
	sc.deriveKey()
	// AES-256 (32-byte key) in GCM mode with the standard 12-byte nonce and
	// 16-byte tag: constant-time with AES-NI/CLMUL, in the standard library.
	block, err := aes.NewCipher(sc.key[:])
	clear(sc.key[:]) // the key schedule in block is all that is needed now
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return aead, nil
}

// appendAAD sets sc.aad to header ‖ uint64(len(ad)) ‖ ad (docs/sealing.md
// §3), a copy, so that ad may overlap the output, and returns it.
func (sc *blobScratch) appendAAD(ad []byte) []byte {
	if n := HeaderSize + 8 + len(ad); cap(sc.aad) < n {
		sc.aad = make([]byte, 0, n)
	}
	aad := append(sc.aad[:0], sc.header()...)
	aad = binary.BigEndian.AppendUint64(aad, uint64(len(ad)))
	sc.aad = append(aad, ad...)
	return sc.aad
}

// New returns a Sealer for the enclave root serves. It asks the root for the
// policy keys of the enclave's own identity now (so that sealing never blocks
// on the root later), and fails if the root refuses them or the identity is
// inconsistent. ctx bounds those requests (a key broker is remote).
func New(ctx context.Context, root Root) (*Sealer, error) {
	if root == nil {
		return nil, errors.New("seal: new: nil Root")
	}
	s := &Sealer{
		root:  root,
		id:    root.Identity(),
		keyID: root.KeyID(),
		rand:  rand.Reader,
		cache: make(map[KeyRequest]*blobPRK),
	}
	if err := checkIdentity(s.id); err != nil {
		return nil, fmt.Errorf("seal: new: %w", err)
	}
	var err error
	if s.measurement, err = s.ownKey(ctx, PolicyMeasurement); err != nil {
		return nil, fmt.Errorf("seal: new: %w", err)
	}
	if s.id.Signed {
		if s.signer, err = s.ownKey(ctx, PolicySigner); err != nil {
			return nil, fmt.Errorf("seal: new: %w", err)
		}
	}
	return s, nil
}

// ownKey asks the root for the policy key of sealing under p at the enclave's
// own identity and encodes the fixed part of those blobs' header.
func (s *Sealer) ownKey(ctx context.Context, p Policy) (*ownKey, error) {
	req := s.ownRequest(p)
	k, err := s.derive(ctx, req)
	if err != nil {
		return nil, err
	}
	h := Header{
		Version:     Version,
		Policy:      req.Policy,
		Suite:       SuiteHKDFSHA256AES256GCM,
		Debug:       req.Debug,
		Measurement: req.Measurement,
		SignerID:    req.SignerID,
		ProductID:   req.ProductID,
		SVN:         req.SVN,
		KeyID:       req.KeyID,
	}
	return &ownKey{req: req, prk: k, header: [offSalt]byte(h.appendTo(nil))}, nil
}

// Identity returns the identity of the enclave the Sealer seals for.
func (s *Sealer) Identity() identity.Identity { return s.id }

// ownRequest is the key request for sealing under p at the enclave's own
// identity and SVN, with the root's current key id.
func (s *Sealer) ownRequest(p Policy) KeyRequest {
	r := KeyRequest{Policy: p, Debug: s.id.Debug, KeyID: s.keyID}
	if p == PolicySigner {
		r.SignerID, r.ProductID, r.SVN = s.id.SignerID, s.id.ProductID, s.id.SVN
	} else {
		r.Measurement = s.id.Measurement
	}
	return r
}

func (s *Sealer) derive(ctx context.Context, req KeyRequest) (*blobPRK, error) {
	k, err := s.root.DeriveKey(ctx, req)
	if err != nil {
		return nil, err
	}
	return newBlobPRK(k)
}

// SealToMeasurement encrypts plaintext so that only an enclave with the same
// measurement and debug flag can unseal it, on a root holding the same key.
// A new build of the enclave cannot unseal it; use SealToSigner for data that
// must survive updates. additionalData is authenticated, not stored: Unseal
// needs the same bytes.
func (s *Sealer) SealToMeasurement(plaintext, additionalData []byte) ([]byte, error) {
	return s.AppendSealToMeasurement(nil, plaintext, additionalData)
}

// SealToSigner encrypts plaintext so that an enclave with the same signer id,
// product id and debug flag, at the same or a higher SVN, can unseal it; an
// enclave at a lower SVN cannot. It fails with ErrWrongIdentity for an
// unsigned enclave. additionalData is authenticated, not stored: Unseal needs
// the same bytes.
func (s *Sealer) SealToSigner(plaintext, additionalData []byte) ([]byte, error) {
	return s.AppendSealToSigner(nil, plaintext, additionalData)
}

// AppendSealToMeasurement is SealToMeasurement appending the blob to dst, for
// callers that reuse buffers (a fresh multi-page buffer per blob costs page
// faults that can exceed the encryption itself). dst may overlap plaintext.
func (s *Sealer) AppendSealToMeasurement(dst, plaintext, additionalData []byte) ([]byte, error) {
	return s.seal(dst, s.measurement, plaintext, additionalData)
}

// AppendSealToSigner is SealToSigner appending the blob to dst, for callers
// that reuse buffers. dst may overlap plaintext.
func (s *Sealer) AppendSealToSigner(dst, plaintext, additionalData []byte) ([]byte, error) {
	if s.signer == nil {
		return nil, fmt.Errorf("seal: seal to signer: %w: the enclave is unsigned and has no signer identity; use SealToMeasurement", ErrWrongIdentity)
	}
	return s.seal(dst, s.signer, plaintext, additionalData)
}

func (s *Sealer) seal(dst []byte, own *ownKey, plaintext, ad []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, fmt.Errorf("seal: seal: %w: %d bytes, limit %d", ErrTooLarge, len(plaintext), MaxPlaintextSize)
	}
	sc := own.prk.getScratch()
	defer own.prk.putScratch(sc)
	hdr := sc.header()
	copy(hdr, own.header[:])
	// A fresh 256-bit salt per blob makes every blob key distinct, which is
	// what makes the fixed nonce in sealBlob safe. It is read for each blob,
	// never buffered: a buffer of future salts copied by a fork or a VM
	// snapshot would repeat keys, where crypto/rand reseeds.
	if _, err := io.ReadFull(s.rand, hdr[offSalt:]); err != nil {
		return nil, fmt.Errorf("seal: seal: reading random salt: %w", err)
	}
	return sealBlob(dst, sc, plaintext, ad)
}

// zeroNonce is the GCM nonce of every blob. Each blob key encrypts exactly one
// message (the key is expanded from a header containing a fresh 256-bit random
// salt), so a (key, nonce) pair never repeats; two blobs share a key only if
// their salts collide, about 2^-128 after 2^64 blobs. A random 96-bit nonce
// under a long-lived key would instead be limited to about 2^32 blobs.
var zeroNonce [12]byte

// sealBlob appends to dst the blob for the header in sc (salt already set),
// following docs/sealing.md §3. The result is allocated once, at its final
// size, when dst has no room.
func sealBlob(dst []byte, sc *blobScratch, plaintext, ad []byte) ([]byte, error) {
	aead, err := sc.aead()
	if err != nil {
		return nil, err
	}
	hdr := sc.header()
	aad := sc.appendAAD(ad) // copied before anything is written
	start, need := len(dst), HeaderSize+len(plaintext)+TagSize
	out := dst
	if cap(dst)-start < need {
		out = make([]byte, start, start+need)
		copy(out, dst)
	}
	blob := out[start : start+need]
	if overlaps(blob, plaintext) {
		// The caller passed a dst whose spare capacity holds the plaintext:
		// move the plaintext into place (copy has memmove semantics), write
		// the header, and encrypt in place.
		copy(blob[HeaderSize:], plaintext)
		copy(blob, hdr)
		ct := blob[HeaderSize : HeaderSize+len(plaintext)]
		aead.Seal(ct[:0], zeroNonce[:], ct, aad)
		return out[:start+need], nil
	}
	copy(blob, hdr)
	return aead.Seal(out[:start+HeaderSize], zeroNonce[:], plaintext, aad), nil
}

// Unseal decrypts a blob sealed by SealToMeasurement or SealToSigner, with
// the same additionalData. It checks the header against the enclave's
// identity first (ErrWrongIdentity, ErrSVNTooHigh), then asks the root for
// the policy key the header names, which repeats those checks; an older SVN's
// key is derived from the root on first use and cached. ctx bounds the root
// request. The errors of docs/sealing.md §6 tell what failed.
func (s *Sealer) Unseal(ctx context.Context, blob, additionalData []byte) ([]byte, error) {
	return s.AppendUnseal(ctx, nil, blob, additionalData)
}

// AppendUnseal is Unseal appending the plaintext to dst, for callers that
// reuse buffers. dst may overlap blob. On error, dst's spare capacity may have
// been overwritten.
func (s *Sealer) AppendUnseal(ctx context.Context, dst, blob, additionalData []byte) ([]byte, error) {
	// Step 1: size bound before any work.
	if len(blob) > Overhead+MaxPlaintextSize {
		return nil, fmt.Errorf("seal: unseal: %w: %d-byte blob, limit %d", ErrTooLarge, len(blob), Overhead+MaxPlaintextSize)
	}
	// Step 2: parse the header.
	var h Header
	if err := h.parse(blob); err != nil {
		return nil, fmt.Errorf("seal: unseal: %w", err)
	}
	// Step 3: room for the tag.
	if len(blob) < Overhead {
		return nil, fmt.Errorf("seal: unseal: %w: %d bytes, need at least %d", ErrMalformed, len(blob), Overhead)
	}
	// Step 4: the header against our own identity, for a precise error
	// before asking the root (which checks the same, and is the boundary).
	req := h.keyRequest()
	if err := CheckKeyRequest(s.id, req); err != nil {
		return nil, fmt.Errorf("seal: unseal: %w", err)
	}
	// Step 5: the policy key from the root (or cache).
	k, err := s.keyFor(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("seal: unseal: %w", err)
	}
	// Step 6: blob key, then GCM open over header ‖ len(ad) ‖ ad. The header
	// and the AAD are copied first because dst may overlap blob (and ad).
	sc := k.getScratch()
	defer k.putScratch(sc)
	copy(sc.header(), blob[:HeaderSize])
	aead, err := sc.aead()
	if err != nil {
		return nil, err
	}
	aad := sc.appendAAD(additionalData)
	ct := blob[HeaderSize:]
	start, n := len(dst), len(ct)-TagSize
	out := dst
	if cap(dst)-start < n {
		out = make([]byte, start, start+n)
		copy(out, dst)
	}
	if overlaps(out[start:start+n], ct) {
		// dst's spare capacity holds the blob (the caller passed blob[:0] or
		// similar): decrypt a private copy in place, then move the plaintext
		// into dst.
		buf := append(make([]byte, 0, len(ct)), ct...)
		pt, err := aead.Open(buf[:0], zeroNonce[:], buf, aad)
		if err != nil {
			return nil, authError()
		}
		out = append(out[:start], pt...)
		clear(buf)
		return out, nil
	}
	pt, err := aead.Open(out[:start], zeroNonce[:], ct, aad)
	if err != nil {
		return nil, authError()
	}
	return pt, nil
}

func authError() error {
	return fmt.Errorf("seal: unseal: %w: the blob or the additional data was changed, or it was sealed under another key", ErrAuthentication)
}

// keyFor returns the blob PRK for req: the precomputed one for the enclave's
// own identity, or one derived by the root (and cached, within a bound).
func (s *Sealer) keyFor(ctx context.Context, req KeyRequest) (*blobPRK, error) {
	if req == s.measurement.req {
		return s.measurement.prk, nil
	}
	if s.signer != nil && req == s.signer.req {
		return s.signer.prk, nil
	}
	s.mu.Lock()
	k, ok := s.cache[req]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := s.derive(ctx, req)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.cache) < maxCachedKeys {
		s.cache[req] = k
	}
	s.mu.Unlock()
	return k, nil
}
