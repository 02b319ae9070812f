package storage

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// Bulk I/O. Nodes move between the enclave and the host in pieces of up to
// one tree node's group of data nodes (pieceNodes), one host call each. Up
// to inflight pieces run at once, each on its own goroutine that encrypts and
// writes, or reads and decrypts, so that the host's I/O of one piece
// overlaps the cryptography of another and the cryptography runs on several
// cores. Large reads and writes of whole nodes skip the node cache: a run of
// at least minThrough uncached nodes is decrypted straight into the caller's
// buffer, or encrypted straight from it and written out (where eviction
// would have put it, docs/storage.md §5). None of this changes what is
// written, only when and by which goroutine.
const (
	// minThrough is the shortest run of whole nodes that skips the cache.
	minThrough = 16
	// maxThrough bounds one such run (4 MiB).
	maxThrough = 1024
	// pieceNodes bounds the nodes of a piece.
	pieceNodes = dataPerTree
	// inflight bounds the pieces in flight; each has a worker with its own
	// AEAD and I/O buffer.
	inflight = 4
	// pieceBuf is the size of a worker's buffer, allocated on first use:
	// a tree node and its data nodes, or as many journal records, plus room
	// for a tag.
	pieceBuf = (pieceNodes+1)*NodeSize + tagSize
)

// A worker encrypts or decrypts one piece at a time. crypto/cipher does not
// promise that an AEAD is safe for concurrent use, so each has its own.
type worker struct {
	aead cipher.AEAD
	buf  []byte
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key) // AES-256: the key is 32 bytes
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (w *worker) buffer(n int) []byte {
	if w.buf == nil {
		w.buf = make([]byte, pieceBuf)
	}
	return w.buf[:n]
}

// inParallel runs fn(0) … fn(n-1) on at most inflight goroutines and returns
// the error of the first that failed. A panic in fn is raised again on the
// calling goroutine, as if fn had run there.
func inParallel(n int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, inflight)
	var panicked sync.Once
	var pv any
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() {
				if v := recover(); v != nil {
					panicked.Do(func() { pv = v })
				}
				<-sem
			}()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	if pv != nil {
		panic(pv)
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// runPieces runs fn for pieces 0 … n-1 in parallel, each with a worker. A
// panic leaves the File unusable.
func (f *File) runPieces(n int, fn func(i int, w *worker) error) error {
	defer func() {
		if v := recover(); v != nil {
			f.fail(fmt.Errorf("storage: %q: internal error: %v", f.name, v))
			panic(v)
		}
	}()
	return inParallel(n, func(i int) error {
		w := <-f.workers
		defer func() { f.workers <- w }()
		return fn(i, w)
	})
}

// A sealItem is a node to encrypt and write out.
type sealItem struct {
	ref    nodeRef
	phys   int64
	pt     []byte // the 4096-byte plaintext
	parent *node  // the tree node holding its entry; nil for the root
	slot   int
	e      entry // the fresh nonce, then nonce ‖ tag
}

// loadParents reads the tree nodes holding the items' entries. getNode never
// evicts, so the pointers stay valid until the next evict.
func (f *File) loadParents(ctx context.Context, items []sealItem) error {
	var t *node
	for i := range items {
		k, slot, ok := items[i].ref.parent()
		if !ok {
			continue
		}
		if t == nil || t.ref.index != k {
			var err error
			if t, err = f.getNode(ctx, nodeRef{tree: true, index: k}); err != nil {
				return err
			}
		}
		items[i].parent, items[i].slot = t, slot
	}
	return nil
}

// nonces draws a fresh random nonce for each item.
//
// The nonce is 96 random bits, fresh per encryption (docs/storage.md §2): a
// counter-derived nonce would repeat after a crash or a replayed file, and
// GCM does not survive a repeated nonce. The file key is limited to
// MaxWrites encryptions, the NIST bound for random nonces. A nonce is never
// all zero (that marks a hole).
func (f *File) nonces(items []sealItem) error {
	if f.writes+uint64(len(items)) > MaxWrites {
		return fmt.Errorf("storage: %q: file key has done %d encryptions, copy the data to a new file: %w", f.name, f.writes, ErrTooLarge)
	}
	b := make([]byte, nonceSize*len(items))
	if _, err := io.ReadFull(f.rand, b); err != nil {
		return fmt.Errorf("storage: reading random nonce: %w", err)
	}
	for i := range items {
		e := &items[i].e
		*e = entry{}
		copy(e[:nonceSize], b[i*nonceSize:])
		for e.isHole() {
			if _, err := io.ReadFull(f.rand, e[:nonceSize]); err != nil {
				return fmt.Errorf("storage: reading random nonce: %w", err)
			}
		}
	}
	return nil
}

// sealWrite encrypts the items (sorted by physical index, each once, parents
// loaded) under fresh nonces and writes them: directly into the backing file
// past the committed end, into ~pending otherwise (docs/storage.md §5); then
// it records their entries in their parents (or the root entry). An error
// leaves the File inconsistent with storage: callers make it sticky.
func (f *File) sealWrite(ctx context.Context, items []sealItem) error {
	if len(items) == 0 {
		return nil
	}
	if err := f.ensurePending(ctx); err != nil {
		return err
	}
	if err := f.nonces(items); err != nil {
		return err
	}
	// Pieces: runs of consecutive direct nodes (one write each), and
	// groups of journal records at consecutive offsets of ~pending.
	type piece struct {
		items   []sealItem
		journal bool
		off     int64 // in the backing file or in ~pending
		turn    chan struct{}
	}
	var pieces []piece
	pendOff := f.pendOff
	for i := 0; i < len(items); {
		journal := items[i].phys < f.committedPhys
		k := i + 1
		for k < len(items) && k-i < pieceNodes {
			if journal && items[k].phys >= f.committedPhys ||
				!journal && items[k].phys != items[k-1].phys+1 {
				break
			}
			k++
		}
		pc := piece{items: items[i:k], journal: journal, off: items[i].phys * NodeSize}
		if journal {
			pc.off = pendOff
			pendOff += int64(k-i) * journalRecord
			pc.turn = make(chan struct{})
		}
		pieces = append(pieces, pc)
		i = k
	}
	// The journal's MAC covers the records in file order: each journal
	// piece takes its turn after the previous one.
	var prevTurn chan struct{}
	prev := make([]chan struct{}, len(pieces))
	for i := range pieces {
		if pieces[i].journal {
			prev[i] = prevTurn
			prevTurn = pieces[i].turn
		}
	}
	err := f.runPieces(len(pieces), func(i int, w *worker) error {
		pc := &pieces[i]
		if pc.journal {
			defer close(pc.turn)
		}
		stride, at := NodeSize, 0
		if pc.journal {
			stride, at = journalRecord, 8
		}
		buf := w.buffer(len(pc.items)*stride + tagSize)
		var aad [8]byte
		for k := range pc.items {
			it := &pc.items[k]
			binary.BigEndian.PutUint64(aad[:], uint64(it.phys))
			// The tag spills into the next slot, which is sealed after.
			out := w.aead.Seal(buf[k*stride+at:k*stride+at], it.e[:nonceSize], it.pt, aad[:])
			copy(it.e[nonceSize:], out[NodeSize:])
		}
		buf = buf[:len(pc.items)*stride]
		if !pc.journal {
			_, err := f.main.WriteAt(ctx, buf, pc.off)
			return err
		}
		for k := range pc.items {
			binary.BigEndian.PutUint64(buf[k*journalRecord:], uint64(pc.items[k].phys))
		}
		if prev[i] != nil {
			<-prev[i]
		}
		f.pendMAC.Write(buf)
		_, err := f.pending.WriteAt(ctx, buf, pc.off)
		return err
	})
	if err != nil {
		return err
	}
	for _, pc := range pieces {
		if !pc.journal {
			continue
		}
		for k, it := range pc.items {
			f.pendIndex[it.phys] = pc.off + int64(k*journalRecord) + 8
		}
		f.pendCount += uint64(len(pc.items))
	}
	f.pendOff = pendOff
	f.writes += uint64(len(items))
	for i := range items {
		it := &items[i]
		if it.parent == nil {
			f.root = it.e
			continue
		}
		copy(it.parent.buf[it.slot*entrySize:], it.e[:])
		f.markDirty(it.parent)
	}
	return nil
}

// writableRun returns how many of the data nodes j, j+1, … (at most limit) can be
// written without the cache: they are not cached. (A node with a record in
// ~pending is fine: a later record wins.)
func (f *File) writableRun(j int64, limit int) int {
	c := 0
	for c < limit {
		if _, ok := f.nodes[dataPhys(j+int64(c))]; ok {
			break
		}
		c++
	}
	return c
}

// writeThrough encrypts the whole data nodes j0 … j0+len(p)/NodeSize-1 from p
// and writes them out, as eviction would after copying them into the cache.
func (f *File) writeThrough(ctx context.Context, p []byte, j0 int64) error {
	items := make([]sealItem, len(p)/NodeSize)
	for i := range items {
		j := j0 + int64(i)
		items[i] = sealItem{ref: nodeRef{index: j}, phys: dataPhys(j), pt: p[i*NodeSize : (i+1)*NodeSize]}
	}
	if err := f.loadParents(ctx, items); err != nil {
		return err
	}
	if err := f.sealWrite(ctx, items); err != nil {
		return f.fail(err)
	}
	return nil
}

// readableRun returns how many of the data nodes j, j+1, … (at most limit) can be
// read without the cache: they are neither cached nor in ~pending, so their
// current version is in the backing file (or they are holes).
func (f *File) readableRun(j int64, limit int) int {
	c := 0
	for c < limit {
		p := dataPhys(j + int64(c))
		if _, ok := f.nodes[p]; ok {
			break
		}
		if _, ok := f.pendIndex[p]; ok {
			break
		}
		c++
	}
	return c
}

// readThrough reads, verifies and decrypts the data nodes j0 …
// j0+len(p)/NodeSize-1 straight into p; they must form a readableRun. A
// node that does not authenticate fails the call with ErrCorrupt (the file
// stays usable).
//
// One piece per tree node's group of data nodes: a single host read covers
// them and, if the tree node is not cached and lies before them in the
// committed part of the backing file, the tree node too, which the piece
// then verifies and decrypts first (and the cache keeps).
func (f *File) readThrough(ctx context.Context, p []byte, j0 int64) error {
	jEnd := j0 + int64(len(p)/NodeSize)
	type piece struct {
		tree   []byte // plaintext of the tree node: cached, or decrypted by the piece
		fold   bool   // the piece reads and decrypts the tree node
		te     entry  // the tree node's entry, if fold
		k      int64  // the tree node
		lo, hi int64  // data nodes [lo, hi)
	}
	var pieces []piece
	for k := j0 / dataPerTree; k*dataPerTree < jEnd; k++ {
		pc := piece{k: k, lo: max(j0, k*dataPerTree), hi: min(jEnd, (k+1)*dataPerTree)}
		ref := nodeRef{tree: true, index: k}
		pk, _, _ := ref.parent()
		_, cached := f.nodes[ref.phys()]
		_, pending := f.pendIndex[ref.phys()]
		_, parentCached := f.nodes[treePhys(pk)]
		if !cached && !pending && (k == 0 || parentCached) && pc.lo == k*dataPerTree && dataPhys(pc.hi-1) < f.committedPhys {
			e, err := f.entryOf(ctx, ref)
			if err != nil {
				return err
			}
			if !e.valid() {
				return fmt.Errorf("storage: node %d: malformed entry: %w", ref.phys(), ErrCorrupt)
			}
			if !e.isHole() {
				pc.fold, pc.te = true, e
				pc.tree = f.nodeBuf()
				pieces = append(pieces, pc)
				continue
			}
		}
		t, err := f.getNode(ctx, ref)
		if err != nil {
			return err
		}
		pc.tree = t.buf
		pieces = append(pieces, pc)
	}
	err := f.runPieces(len(pieces), func(i int, w *worker) error {
		pc := &pieces[i]
		ents := pc.tree[:dataPerTree*entrySize]
		if !pc.fold {
			// Trim leading and trailing holes: past the committed end
			// the backing file may stop before them.
			for pc.lo < pc.hi && (*entry)(ents[(pc.lo-pc.k*dataPerTree)*entrySize:]).isHole() {
				clear(p[(pc.lo-j0)*NodeSize:][:NodeSize])
				pc.lo++
			}
			for pc.hi > pc.lo && (*entry)(ents[(pc.hi-1-pc.k*dataPerTree)*entrySize:]).isHole() {
				clear(p[(pc.hi-1-j0)*NodeSize:][:NodeSize])
				pc.hi--
			}
			if pc.lo == pc.hi {
				return nil
			}
		}
		a := dataPhys(pc.lo)
		if pc.fold {
			a = treePhys(pc.k)
		}
		buf := w.buffer(int(dataPhys(pc.hi-1)-a+1)*NodeSize + tagSize)
		if err := readFull(ctx, f.main, buf[:len(buf)-tagSize], a*NodeSize); err != nil {
			return err
		}
		var aad [8]byte
		if pc.fold {
			// The tree node first; its tag goes over the start of the
			// first data node, saved and put back.
			ct := buf[:NodeSize+tagSize]
			save := [tagSize]byte(ct[NodeSize:])
			copy(ct[NodeSize:], pc.te[nonceSize:])
			binary.BigEndian.PutUint64(aad[:], uint64(a))
			_, err := w.aead.Open(pc.tree[:0], pc.te[:nonceSize], ct, aad[:])
			copy(ct[NodeSize:], save[:])
			if err != nil {
				pc.fold = false // nothing to keep
				return fmt.Errorf("storage: %q: node %d does not authenticate (tampered, moved or stale): %w", f.name, a, ErrCorrupt)
			}
			if !allZero(pc.tree[entriesSize:]) {
				pc.fold = false
				return fmt.Errorf("storage: %q: tree node %d has non-zero padding: %w", f.name, a, ErrCorrupt)
			}
		}
		// Last node first: each tag goes after its ciphertext, over the
		// start of a node already decrypted (or spare room).
		for j := pc.hi - 1; j >= pc.lo; j-- {
			e := (*entry)(ents[(j-pc.k*dataPerTree)*entrySize:])
			out := p[(j-j0)*NodeSize:][:NodeSize]
			if !e.valid() {
				return fmt.Errorf("storage: node %d: malformed entry: %w", dataPhys(j), ErrCorrupt)
			}
			if e.isHole() {
				clear(out)
				continue
			}
			ph := dataPhys(j)
			ct := buf[(ph-a)*NodeSize:][:NodeSize+tagSize]
			copy(ct[NodeSize:], e[nonceSize:])
			binary.BigEndian.PutUint64(aad[:], uint64(ph))
			if _, err := w.aead.Open(out[:0], e[:nonceSize], ct, aad[:]); err != nil {
				return fmt.Errorf("storage: %q: node %d does not authenticate (tampered, moved or stale): %w", f.name, ph, ErrCorrupt)
			}
		}
		return nil
	})
	// Keep the tree nodes the pieces decrypted.
	for _, pc := range pieces {
		if pc.fold {
			if _, ok := f.nodes[treePhys(pc.k)]; !ok {
				f.addNode(nodeRef{tree: true, index: pc.k}, pc.tree)
			}
		}
	}
	return err
}
