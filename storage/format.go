package storage

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// Format constants of docs/storage.md.
const (
	// NodeSize is the size of every node in a backing file (§2).
	NodeSize = 4096

	// MaxSize is the largest logical size of a protected file: 2^40 bytes.
	MaxSize = 1 << 40

	// MaxWrites is the number of node encryptions one file key may perform
	// with random 96-bit nonces (NIST SP 800-38D §8.3; docs/storage.md §2).
	MaxWrites = 1 << 32

	// KeySize is the size of the storage key passed to Open and Create.
	KeySize = 32

	// FileIDSize is the size of the random file id.
	FileIDSize = 16

	// Version is the header and journal version byte.
	Version = 1

	suite = 1

	nonceSize = 12
	tagSize   = 16
	entrySize = nonceSize + tagSize

	dataPerTree  = 96              // data-node entries of a tree node
	childPerTree = 32              // tree-node entries of a tree node
	treeStride   = 97              // a tree node and its data nodes
	entriesSize  = 128 * entrySize // 3584; the rest of a tree node is zero

	headerMACOff = 112
	headerUsed   = 144

	journalPreamble = 56
	journalRecord   = 8 + NodeSize
	journalTrailer  = 48
	journalEnd      = ^uint64(0)
)

// Labels of docs/storage.md §1.
const (
	labelName       = "asylo-storage/v1 name\x00"
	labelExtract    = "asylo-storage/v1"
	labelHeaderKey  = "asylo-storage/v1 header key"
	labelJournalKey = "asylo-storage/v1 journal key"
	labelFileKey    = "asylo-storage/v1 file key\x00"
	labelCounter    = "asylo-storage/v1/"
)

// Suffixes of the host file names beside a protected file (§4, §5).
const (
	suffixJournal = "~journal"
	suffixPending = "~pending"
	suffixNew     = "~new"
)

var (
	headerMagic  = [4]byte{'A', 'S', 'F', 'S'}
	journalMagic = [4]byte{'A', 'S', 'F', 'J'}
)

// Layout (§2).

func treePhys(k int64) int64 { return 1 + treeStride*k }
func dataPhys(j int64) int64 { return 2 + treeStride*(j/dataPerTree) + j%dataPerTree }

// dataNodes returns n = ceil(size / NodeSize).
func dataNodes(size int64) int64 { return (size + NodeSize - 1) / NodeSize }

// treeNodes returns m = max(1, ceil(n / 96)).
func treeNodes(n int64) int64 { return max(1, (n+dataPerTree-1)/dataPerTree) }

// physNodes returns P, the number of nodes of a backing file for size.
func physNodes(size int64) int64 {
	n := dataNodes(size)
	if n == 0 {
		return 2
	}
	return dataPhys(n-1) + 1
}

// A nodeRef names a node by kind and logical index.
type nodeRef struct {
	tree  bool
	index int64 // k for tree nodes, j for data nodes
}

func (r nodeRef) phys() int64 {
	if r.tree {
		return treePhys(r.index)
	}
	return dataPhys(r.index)
}

// parent returns the tree node holding r's entry and the entry's slot; ok is
// false for the root.
func (r nodeRef) parent() (k int64, slot int, ok bool) {
	if r.tree {
		if r.index == 0 {
			return 0, 0, false
		}
		return (r.index - 1) / childPerTree, dataPerTree + int((r.index-1)%childPerTree), true
	}
	return r.index / dataPerTree, int(r.index % dataPerTree), true
}

// refOf returns the node at physical index p (p ≥ 1).
func refOf(p int64) nodeRef {
	g, r := (p-1)/treeStride, (p-1)%treeStride
	if r == 0 {
		return nodeRef{tree: true, index: g}
	}
	return nodeRef{index: g*dataPerTree + r - 1}
}

// An entry authenticates a child node: nonce ‖ tag. The zero entry is a hole.
type entry [entrySize]byte

func (e *entry) isHole() bool { return *e == entry{} }

// valid reports whether e is a hole or has a non-zero nonce.
func (e *entry) valid() bool {
	var zn [nonceSize]byte
	return !bytes.Equal(e[:nonceSize], zn[:]) || e.isHole()
}

// Keys (§1).

type keys struct {
	header, journal []byte
	prk             []byte
}

func nameHash(name string) [32]byte {
	h := sha256.New()
	h.Write([]byte(labelName))
	h.Write([]byte(name))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func deriveKeys(k []byte) (*keys, error) {
	if len(k) != KeySize {
		return nil, fmt.Errorf("storage: key is %d bytes, want %d (derive it with the seal package): %w", len(k), KeySize, ErrInvalidArgument)
	}
	prk, err := hkdf.Extract(sha256.New, k, []byte(labelExtract))
	if err != nil {
		return nil, err
	}
	hk, err := hkdf.Expand(sha256.New, prk, labelHeaderKey, 32)
	if err != nil {
		return nil, err
	}
	jk, err := hkdf.Expand(sha256.New, prk, labelJournalKey, 32)
	if err != nil {
		return nil, err
	}
	return &keys{header: hk, journal: jk, prk: prk}, nil
}

func (k *keys) fileKey(id [FileIDSize]byte, nh [32]byte) ([]byte, error) {
	info := make([]byte, 0, len(labelFileKey)+FileIDSize+32)
	info = append(info, labelFileKey...)
	info = append(info, id[:]...)
	info = append(info, nh[:]...)
	return hkdf.Expand(sha256.New, k.prk, string(info), 32)
}

// header is node 0 (§3).
type header struct {
	FileID   [FileIDSize]byte
	NameHash [32]byte
	Commit   uint64
	Size     int64
	Writes   uint64
	Root     entry
}

// marshal returns the 4096-byte header node, MAC included.
func (h *header) marshal(headerKey []byte) []byte {
	b := make([]byte, NodeSize)
	copy(b[0:4], headerMagic[:])
	b[4] = Version
	b[5] = suite
	copy(b[8:24], h.FileID[:])
	copy(b[24:56], h.NameHash[:])
	binary.BigEndian.PutUint64(b[56:], h.Commit)
	binary.BigEndian.PutUint64(b[64:], uint64(h.Size))
	binary.BigEndian.PutUint64(b[72:], h.Writes)
	copy(b[80:108], h.Root[:])
	m := hmac.New(sha256.New, headerKey)
	m.Write(b[:headerMACOff])
	m.Sum(b[headerMACOff:headerMACOff])
	return b
}

// parseHeader checks the structure of a header node (§3 check 2). It does
// not verify the MAC: see verify.
func parseHeader(b []byte) (*header, error) {
	if len(b) < NodeSize {
		return nil, fmt.Errorf("storage: header is %d bytes, want %d: %w", len(b), NodeSize, ErrTruncated)
	}
	b = b[:NodeSize]
	if !bytes.Equal(b[0:4], headerMagic[:]) {
		return nil, fmt.Errorf("storage: header: bad magic: %w", ErrMalformed)
	}
	if b[4] != Version || b[5] != suite {
		return nil, fmt.Errorf("storage: header: unsupported version %d or suite %d: %w", b[4], b[5], ErrMalformed)
	}
	if b[6] != 0 || b[7] != 0 || !allZero(b[108:112]) || !allZero(b[headerUsed:]) {
		return nil, fmt.Errorf("storage: header: reserved bytes not zero: %w", ErrMalformed)
	}
	h := &header{
		Commit: binary.BigEndian.Uint64(b[56:]),
		Writes: binary.BigEndian.Uint64(b[72:]),
	}
	size := binary.BigEndian.Uint64(b[64:])
	if size > MaxSize {
		return nil, fmt.Errorf("storage: header: size %d above the maximum: %w", size, ErrMalformed)
	}
	h.Size = int64(size)
	if h.Writes > MaxWrites {
		return nil, fmt.Errorf("storage: header: write count above the maximum: %w", ErrMalformed)
	}
	copy(h.FileID[:], b[8:24])
	copy(h.NameHash[:], b[24:56])
	copy(h.Root[:], b[80:108])
	if !h.Root.valid() {
		return nil, fmt.Errorf("storage: header: malformed root entry: %w", ErrMalformed)
	}
	return h, nil
}

// verifyHeaderMAC checks §3 check 3 on the raw header node.
func verifyHeaderMAC(b, headerKey []byte) error {
	m := hmac.New(sha256.New, headerKey)
	m.Write(b[:headerMACOff])
	if subtle.ConstantTimeCompare(m.Sum(nil), b[headerMACOff:headerUsed]) != 1 {
		return fmt.Errorf("storage: header MAC does not verify (tampered, or another storage key): %w", ErrCorrupt)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// A journalRecord is one record of a journal (§4).
type journalRec struct {
	phys int64
	node []byte
}

// journal is a parsed and authenticated journal.
type journal struct {
	FileID   [FileIDSize]byte
	NameHash [32]byte
	Records  []journalRec
	Header   *header // the last record, parsed (its MAC is not verified here)
	HeaderB  []byte
}

func journalPreambleBytes(id [FileIDSize]byte, nh [32]byte) []byte {
	b := make([]byte, journalPreamble)
	copy(b[0:4], journalMagic[:])
	b[4] = Version
	copy(b[8:24], id[:])
	copy(b[24:56], nh[:])
	return b
}

// parseJournal checks the length and MAC of a journal, then its structure.
func parseJournal(b, journalKey []byte) (*journal, error) {
	if len(b) < journalPreamble+journalRecord+journalTrailer || (len(b)-journalPreamble-journalTrailer)%journalRecord != 0 {
		return nil, fmt.Errorf("storage: journal length %d invalid: %w", len(b), ErrMalformed)
	}
	if !bytes.Equal(b[0:4], journalMagic[:]) || b[4] != Version || !allZero(b[5:8]) {
		return nil, fmt.Errorf("storage: journal: bad magic, version or reserved bytes: %w", ErrMalformed)
	}
	body, mac := b[:len(b)-32], b[len(b)-32:]
	m := hmac.New(sha256.New, journalKey)
	m.Write(body)
	if subtle.ConstantTimeCompare(m.Sum(nil), mac) != 1 {
		return nil, fmt.Errorf("storage: journal MAC does not verify: %w", ErrCorrupt)
	}
	n := (len(b) - journalPreamble - journalTrailer) / journalRecord
	t := b[len(b)-journalTrailer:]
	if binary.BigEndian.Uint64(t[0:]) != journalEnd || binary.BigEndian.Uint64(t[8:]) != uint64(n) {
		return nil, fmt.Errorf("storage: journal: bad trailer: %w", ErrMalformed)
	}
	j := &journal{}
	copy(j.FileID[:], b[8:24])
	copy(j.NameHash[:], b[24:56])
	for i := range n {
		r := b[journalPreamble+i*journalRecord:][:journalRecord]
		p := binary.BigEndian.Uint64(r)
		if p > uint64(physNodes(MaxSize)) {
			return nil, fmt.Errorf("storage: journal: record %d: node %d out of range: %w", i, p, ErrMalformed)
		}
		j.Records = append(j.Records, journalRec{phys: int64(p), node: r[8:]})
	}
	last := j.Records[n-1]
	if last.phys != 0 {
		return nil, fmt.Errorf("storage: journal: last record is not the header: %w", ErrMalformed)
	}
	h, err := parseHeader(last.node)
	if err != nil {
		return nil, err
	}
	if h.FileID != j.FileID || h.NameHash != j.NameHash {
		return nil, fmt.Errorf("storage: journal: header of another file: %w", ErrMalformed)
	}
	j.Header, j.HeaderB = h, last.node
	return j, nil
}

func hmacSHA256(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

// treeDepth returns the depth of tree node k: 0 for the root.
func treeDepth(k int64) int {
	d := 0
	for k > 0 {
		k = (k - 1) / childPerTree
		d++
	}
	return d
}
