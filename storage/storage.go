// Package storage keeps confidential, integrity-protected files with random
// access on storage the host controls: the design of the SGX protected file
// system and Gramine's protected files (fixed-size AES-256-GCM encrypted
// nodes under a Merkle tree whose root is authenticated in a header), with
// crash-consistent commits through a journal and rollback detection bound to
// a monotonic Counter. It runs inside the enclave and uses the standard
// library only; every byte goes through UntrustedFS, which the host
// implements (DirFS is the implementation over the os package).
//
// Specification: docs/storage.md, protected-file format version 1 (Version),
// with its commit protocol, crash-safety argument, threat model and test
// vectors.
//
// The storage key is 32 bytes from the caller: derive it with the seal
// package (generate it once, keep it sealed with seal.Sealer.SealToSigner or
// SealToMeasurement, unseal it at start-up). Per-file keys are derived from
// it with HKDF-SHA-256 and the file's random id and name.
//
// A File is safe for concurrent use; its methods are serialized.
package storage

import (
	"cmp"
	"container/list"
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"slices"
	"sync"
)

// DefaultCacheNodes is the default number of nodes (4 KiB each) a File
// caches: 4 MiB.
const DefaultCacheNodes = 1024

// maxBatch bounds the nodes encrypted and written, or read and decrypted, in
// one host call.
const maxBatch = 64

// Options configure Open and Create.
type Options struct {
	// Counter detects rollback of the whole file (docs/storage.md §6). It is
	// required unless InsecureNoRollbackProtection is set.
	Counter Counter

	// InsecureNoRollbackProtection opens without a Counter: a host that
	// replays an older committed version of the file is then not detected.
	InsecureNoRollbackProtection bool

	// CacheNodes is the number of 4 KiB nodes kept in memory (default
	// DefaultCacheNodes, minimum 16). Changed tree nodes stay in memory until
	// the next commit besides (about 1 % of the data changed), and large
	// reads and writes, which bypass the cache, use up to four I/O buffers
	// of 388 KiB, allocated on first use.
	CacheNodes int

	rand io.Reader // tests only; crypto/rand otherwise
}

func (o *Options) check() error {
	if o.Counter == nil && !o.InsecureNoRollbackProtection {
		return fmt.Errorf("storage: no Counter configured (set InsecureNoRollbackProtection to go without rollback detection): %w", ErrInvalidArgument)
	}
	if o.CacheNodes != 0 && o.CacheNodes < 16 {
		return fmt.Errorf("storage: CacheNodes %d below 16: %w", o.CacheNodes, ErrInvalidArgument)
	}
	return nil
}

// A File is an open protected file. Changes become durable and visible to a
// later Open only when committed by Sync or Close; a commit is atomic, also
// across crashes (docs/storage.md §5).
type File struct {
	mu sync.Mutex

	fsys      UntrustedFS
	name      string
	keys      *keys
	aead      cipher.AEAD  // for the methods' own goroutine
	workers   chan *worker // for pieces in flight (bulk.go)
	rand      io.Reader
	counter   Counter
	counterID string
	cacheMax  int

	main          UntrustedFile
	hdr           header // committed
	committedPhys int64  // P_c
	size          int64  // current logical size
	writes        uint64 // node encryptions, committed or not
	root          entry  // current entry of tree node 0 when it is not dirty
	modified      bool

	nodes      map[int64]*node // by physical index
	lru        list.List       // clean nodes and dirty data nodes, most recent first
	dirtyTrees map[int64]*node // by tree index
	free       [][]byte

	pending   UntrustedFile // ~pending, nil until needed
	pendOff   int64
	pendMAC   hash.Hash
	pendCount uint64
	pendIndex map[int64]int64 // physical index -> offset of the node in ~pending

	scratch []byte
	err     error // sticky: a failed write or commit
	closed  bool
}

type node struct {
	ref   nodeRef
	phys  int64
	buf   []byte
	dirty bool
	elem  *list.Element
}

// Create creates the protected file name in fsys, replacing any file of that
// name atomically, empty, under the 32-byte storage key.
func Create(ctx context.Context, fsys UntrustedFS, name string, key []byte, opts Options) (*File, error) {
	f, err := newFile(fsys, name, key, opts)
	if err != nil {
		return nil, err
	}
	h := header{NameHash: nameHash(name), Commit: 1}
	if _, err := io.ReadFull(f.rand, h.FileID[:]); err != nil {
		return nil, fmt.Errorf("storage: create: reading random file id: %w", err)
	}
	if f.counter != nil {
		c, err := f.counter.Get(ctx, f.counterID)
		if err != nil {
			return nil, fmt.Errorf("storage: create: reading counter: %w", err)
		}
		h.Commit = c + 1
	}
	tmp := name + suffixNew
	nf, err := fsys.OpenFile(ctx, tmp, true)
	if err != nil {
		return nil, fmt.Errorf("storage: create: %w", err)
	}
	err = writeNew(ctx, nf, h.marshal(f.keys.header))
	if cerr := nf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("storage: create: %w", err)
	}
	if err := fsys.Rename(ctx, tmp, name); err != nil {
		return nil, fmt.Errorf("storage: create: %w", err)
	}
	for _, s := range []string{suffixJournal, suffixPending} {
		if err := fsys.Remove(ctx, name+s); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("storage: create: %w", err)
		}
	}
	if f.counter != nil {
		if err := f.increment(ctx, h.Commit); err != nil {
			return nil, fmt.Errorf("storage: create: %w", err)
		}
	}
	if err := f.open(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

func writeNew(ctx context.Context, nf UntrustedFile, hb []byte) error {
	if err := nf.Truncate(ctx, 0); err != nil {
		return err
	}
	if _, err := nf.WriteAt(ctx, hb, 0); err != nil {
		return err
	}
	if err := nf.Truncate(ctx, 2*NodeSize); err != nil {
		return err
	}
	return nf.Sync(ctx)
}

// Open opens the existing protected file name in fsys under the 32-byte
// storage key, first finishing or undoing a commit that a crash interrupted.
func Open(ctx context.Context, fsys UntrustedFS, name string, key []byte, opts Options) (*File, error) {
	f, err := newFile(fsys, name, key, opts)
	if err != nil {
		return nil, err
	}
	if err := f.open(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

func newFile(fsys UntrustedFS, name string, key []byte, opts Options) (*File, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if err := checkName(name + suffixJournal); err != nil {
		return nil, err
	}
	k, err := deriveKeys(key)
	if err != nil {
		return nil, err
	}
	nh := nameHash(name)
	f := &File{
		fsys:       fsys,
		name:       name,
		keys:       k,
		rand:       opts.rand,
		counter:    opts.Counter,
		counterID:  labelCounter + hex.EncodeToString(nh[:]),
		cacheMax:   opts.CacheNodes,
		nodes:      make(map[int64]*node),
		dirtyTrees: make(map[int64]*node),
		pendIndex:  make(map[int64]int64),
	}
	if f.rand == nil {
		f.rand = rand.Reader
	}
	if f.cacheMax == 0 {
		f.cacheMax = DefaultCacheNodes
	}
	return f, nil
}

// open recovers, then reads and checks the header (docs/storage.md §3).
func (f *File) open(ctx context.Context) (err error) {
	main, err := f.fsys.OpenFile(ctx, f.name, false)
	if err != nil {
		return fmt.Errorf("storage: open %q: %w", f.name, err)
	}
	defer func() {
		if err != nil {
			main.Close()
		}
	}()
	f.main = main
	if err := f.recover(ctx); err != nil {
		return err
	}
	hb := make([]byte, NodeSize)
	if err := readFull(ctx, main, hb, 0); err != nil {
		return fmt.Errorf("storage: open %q: reading header: %w", f.name, err)
	}
	h, err := f.checkHeader(hb)
	if err != nil {
		return fmt.Errorf("storage: open %q: %w", f.name, err)
	}
	if err := f.checkCounter(ctx, h.Commit, true); err != nil {
		return fmt.Errorf("storage: open %q: %w", f.name, err)
	}
	sz, err := main.Size(ctx)
	if err != nil {
		return fmt.Errorf("storage: open %q: %w", f.name, err)
	}
	if want := physNodes(h.Size) * NodeSize; sz != want {
		return fmt.Errorf("storage: open %q: backing file is %d bytes, header says %d: %w", f.name, sz, want, ErrTruncated)
	}
	fk, err := f.keys.fileKey(h.FileID, h.NameHash)
	if err != nil {
		return err
	}
	if f.aead, err = newAEAD(fk); err != nil {
		return err
	}
	f.workers = make(chan *worker, inflight)
	for range inflight {
		a, err := newAEAD(fk)
		if err != nil {
			return err
		}
		f.workers <- &worker{aead: a}
	}
	f.hdr = *h
	f.committedPhys = physNodes(h.Size)
	f.size = h.Size
	f.writes = h.Writes
	f.root = h.Root
	if _, err := f.getNode(ctx, nodeRef{tree: true}); err != nil {
		return fmt.Errorf("storage: open %q: %w", f.name, err)
	}
	return nil
}

// checkHeader runs checks 2-4 of docs/storage.md §3 on a header node.
func (f *File) checkHeader(hb []byte) (*header, error) {
	h, err := parseHeader(hb)
	if err != nil {
		return nil, err
	}
	if err := verifyHeaderMAC(hb, f.keys.header); err != nil {
		return nil, err
	}
	if h.NameHash != nameHash(f.name) {
		return nil, fmt.Errorf("storage: header belongs to another name: %w", ErrWrongFile)
	}
	return h, nil
}

// checkCounter is the rollback check of docs/storage.md §6 for commit v. With
// finish, a commit that crashed before its increment is finished.
func (f *File) checkCounter(ctx context.Context, v uint64, finish bool) error {
	if f.counter == nil {
		return nil
	}
	c, err := f.counter.Get(ctx, f.counterID)
	if err != nil {
		return fmt.Errorf("reading counter: %w", err)
	}
	switch {
	case v == c:
		return nil
	case v == c+1:
		if finish {
			return f.increment(ctx, v)
		}
		return nil
	default:
		return fmt.Errorf("commit %d, counter %d: %w", v, c, ErrRollback)
	}
}

func (f *File) increment(ctx context.Context, want uint64) error {
	c, err := f.counter.Increment(ctx, f.counterID)
	if err != nil {
		return fmt.Errorf("incrementing counter: %w", err)
	}
	if c != want {
		return fmt.Errorf("counter incremented to %d, want %d (another writer?): %w", c, want, ErrRollback)
	}
	return nil
}

// recover finishes a commit past its commit point or undoes one before it
// (docs/storage.md §5).
func (f *File) recover(ctx context.Context) error {
	jname := f.name + suffixJournal
	jf, err := f.fsys.OpenFile(ctx, jname, false)
	if err == nil {
		b, err := readAll(ctx, jf)
		jf.Close()
		if err != nil {
			return fmt.Errorf("storage: open %q: reading journal: %w", f.name, err)
		}
		j, err := parseJournal(b, f.keys.journal)
		if err != nil {
			return fmt.Errorf("storage: open %q: %w", f.name, err)
		}
		if j.NameHash != nameHash(f.name) {
			return fmt.Errorf("storage: open %q: journal of another name: %w", f.name, ErrWrongFile)
		}
		if err := verifyHeaderMAC(j.HeaderB, f.keys.header); err != nil {
			return fmt.Errorf("storage: open %q: journal: %w", f.name, err)
		}
		hb := make([]byte, NodeSize)
		if readFull(ctx, f.main, hb, 0) == nil {
			if h, err := f.checkHeader(hb); err == nil && h.FileID != j.FileID {
				// A journal of the file that Create replaced.
				if err := f.fsys.Remove(ctx, jname); err != nil {
					return fmt.Errorf("storage: open %q: %w", f.name, err)
				}
				return f.undoPending(ctx)
			}
		}
		if err := f.checkCounter(ctx, j.Header.Commit, false); err != nil {
			return fmt.Errorf("storage: open %q: journal: %w", f.name, err)
		}
		if err := f.apply(ctx, j); err != nil {
			return fmt.Errorf("storage: open %q: applying journal: %w", f.name, err)
		}
		if err := f.fsys.Remove(ctx, f.name+suffixPending); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("storage: open %q: %w", f.name, err)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: open %q: %w", f.name, err)
	}
	return f.undoPending(ctx)
}

// undoPending removes the effects of a commit that did not reach its commit
// point: nodes past the committed end, and ~pending.
func (f *File) undoPending(ctx context.Context) error {
	pname := f.name + suffixPending
	pf, err := f.fsys.OpenFile(ctx, pname, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: open %q: %w", f.name, err)
	}
	pf.Close()
	hb := make([]byte, NodeSize)
	if err := readFull(ctx, f.main, hb, 0); err != nil {
		return fmt.Errorf("storage: open %q: reading header: %w", f.name, err)
	}
	h, err := f.checkHeader(hb)
	if err != nil {
		return fmt.Errorf("storage: open %q: %w", f.name, err)
	}
	sz, err := f.main.Size(ctx)
	if err != nil {
		return fmt.Errorf("storage: open %q: %w", f.name, err)
	}
	want := physNodes(h.Size) * NodeSize
	if sz < want {
		return fmt.Errorf("storage: open %q: backing file is %d bytes, header says %d: %w", f.name, sz, want, ErrTruncated)
	}
	if sz > want {
		if err := f.main.Truncate(ctx, want); err != nil {
			return fmt.Errorf("storage: open %q: %w", f.name, err)
		}
		if err := f.main.Sync(ctx); err != nil {
			return fmt.Errorf("storage: open %q: %w", f.name, err)
		}
	}
	if err := f.fsys.Remove(ctx, pname); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: open %q: %w", f.name, err)
	}
	return nil
}

// apply is steps 5 and 6 of the commit protocol: it writes the journal's
// records into the backing file, truncates it to the new length, syncs it and
// removes the journal. It is idempotent.
func (f *File) apply(ctx context.Context, j *journal) error {
	// Records past the new end are nodes written before a later
	// truncation in the same session: skipped. Of a node written more than
	// once, the last record wins and the others are dropped, so that the
	// writes below can go in any order, in parallel.
	newP := physNodes(j.Header.Size)
	last := make(map[int64]journalRec, len(j.Records))
	for _, r := range j.Records {
		if r.phys < newP {
			last[r.phys] = r
		}
	}
	recs := slices.SortedFunc(maps.Values(last), func(a, b journalRec) int { return cmp.Compare(a.phys, b.phys) })
	// Records of consecutive nodes are coalesced into one write.
	var writes [][]journalRec
	for i := 0; i < len(recs); {
		k := i + 1
		for k < len(recs) && recs[k].phys == recs[k-1].phys+1 && k-i < maxBatch {
			k++
		}
		writes = append(writes, recs[i:k])
		i = k
	}
	err := inParallel(len(writes), func(i int) error {
		w := writes[i]
		buf := w[0].node
		if len(w) > 1 {
			buf = make([]byte, 0, len(w)*NodeSize)
			for _, r := range w {
				buf = append(buf, r.node...)
			}
		}
		_, err := f.main.WriteAt(ctx, buf, w[0].phys*NodeSize)
		return err
	})
	if err != nil {
		return err
	}
	if err := f.main.Truncate(ctx, newP*NodeSize); err != nil {
		return err
	}
	if err := f.main.Sync(ctx); err != nil {
		return err
	}
	return f.fsys.Remove(ctx, f.name+suffixJournal)
}

func readFull(ctx context.Context, uf UntrustedFile, p []byte, off int64) error {
	n, err := uf.ReadAt(ctx, p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("short read of %d bytes at %d: %w", n, off, ErrTruncated)
	}
	return err
}

func readAll(ctx context.Context, uf UntrustedFile) ([]byte, error) {
	sz, err := uf.Size(ctx)
	if err != nil {
		return nil, err
	}
	if sz > journalPreamble+journalTrailer+journalRecord*(physNodes(MaxSize)+1) || sz < 0 {
		return nil, fmt.Errorf("journal of %d bytes: %w", sz, ErrMalformed)
	}
	b := make([]byte, sz)
	if err := readFull(ctx, uf, b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// Size returns the logical size of the file, including uncommitted changes.
func (f *File) Size() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

func (f *File) usable() error {
	if f.closed {
		return fmt.Errorf("storage: %q: %w", f.name, ErrClosed)
	}
	if f.err != nil {
		return fmt.Errorf("storage: %q: an earlier write failed, reopen the file: %w", f.name, f.err)
	}
	return nil
}

// fail makes err sticky: after a failed write or commit the in-memory state
// may not match storage, so the File refuses further use.
func (f *File) fail(err error) error {
	if f.err == nil {
		f.err = err
	}
	return err
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt: fewer bytes only at the
// end of the file, with io.EOF. A node that fails authentication gives
// ErrCorrupt.
func (f *File) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("storage: read at negative offset: %w", ErrInvalidArgument)
	}
	if off >= f.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := min(int64(len(p)), f.size-off)
	done := int64(0)
	for done < want {
		pos := off + done
		j0 := pos / NodeSize
		// A long run of whole uncached nodes: straight into p.
		if pos%NodeSize == 0 && (want-done)/NodeSize >= minThrough {
			if c := f.readableRun(j0, int(min((want-done)/NodeSize, maxThrough))); c >= minThrough {
				if err := f.readThrough(ctx, p[done:done+int64(c)*NodeSize], j0); err != nil {
					return int(done), err
				}
				done += int64(c) * NodeSize
				if err := f.evict(ctx); err != nil {
					return int(done), err
				}
				continue
			}
		}
		// Otherwise one batch of nodes at a time: read ahead, copy out, evict.
		// (Only up to the next node boundary if a long run may start there.)
		j1 := min((off+want+NodeSize-1)/NodeSize, j0+maxBatch)
		if in := pos % NodeSize; in != 0 && (want-done-(NodeSize-in))/NodeSize >= minThrough {
			j1 = j0 + 1
		}
		if err := f.prefetch(ctx, j0, j1); err != nil {
			return int(done), err
		}
		for j := j0; j < j1 && done < want; j++ {
			n, err := f.getNode(ctx, nodeRef{index: j})
			if err != nil {
				return int(done), err
			}
			pos := off + done
			c := copy(p[done:want], n.buf[pos-j*NodeSize:])
			done += int64(c)
		}
		if err := f.evict(ctx); err != nil {
			return int(done), err
		}
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

// WriteAt writes p at off, extending the file if needed (a gap reads as
// zeros and is not stored). The change is committed by Sync or Close.
func (f *File) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("storage: write at negative offset: %w", ErrInvalidArgument)
	}
	if off > MaxSize || int64(len(p)) > MaxSize-off {
		return 0, fmt.Errorf("storage: write past %d bytes: %w", int64(MaxSize), ErrTooLarge)
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		j := pos / NodeSize
		in := int(pos - j*NodeSize)
		// A long run of whole uncached nodes: straight from p to the host.
		if in == 0 && (len(p)-done)/NodeSize >= minThrough {
			if c := f.writableRun(j, min((len(p)-done)/NodeSize, maxThrough)); c >= minThrough {
				if err := f.writeThrough(ctx, p[done:done+c*NodeSize], j); err != nil {
					return done, err
				}
				done += c * NodeSize
				if end := pos + int64(c)*NodeSize; end > f.size {
					f.size = end
				}
				f.modified = true
				continue
			}
		}
		c := min(NodeSize-in, len(p)-done)
		var n *node
		var err error
		if c == NodeSize {
			n, err = f.getNodeForOverwrite(ctx, j)
		} else {
			n, err = f.getNode(ctx, nodeRef{index: j})
		}
		if err != nil {
			return done, err
		}
		copy(n.buf[in:], p[done:done+c])
		f.markDirty(n)
		done += c
		if end := pos + int64(c); end > f.size {
			f.size = end
		}
		f.modified = true
		if f.lru.Len() > f.cacheMax {
			if err := f.evict(ctx); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// Truncate changes the logical size. Shrinking drops the nodes past the new
// end; growing adds zeros that are not stored.
func (f *File) Truncate(ctx context.Context, size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("storage: truncate to negative size: %w", ErrInvalidArgument)
	}
	if size > MaxSize {
		return fmt.Errorf("storage: truncate past %d bytes: %w", int64(MaxSize), ErrTooLarge)
	}
	if size == f.size {
		return nil
	}
	if size > f.size {
		f.size = size
		f.modified = true
		return nil
	}
	n0, n1 := dataNodes(f.size), dataNodes(size)
	m0, m1 := treeNodes(n0), treeNodes(n1)
	// The tail of the new last data node reads as zeros after a later extension.
	if in := size % NodeSize; in != 0 {
		n, err := f.getNode(ctx, nodeRef{index: n1 - 1})
		if err != nil {
			return err
		}
		clear(n.buf[in:])
		f.markDirty(n)
	}
	// Entries of dropped data nodes in tree nodes that stay.
	if k := n1 / dataPerTree; k < m1 {
		t, err := f.getNode(ctx, nodeRef{tree: true, index: k})
		if err != nil {
			return err
		}
		from, to := n1%dataPerTree, min(int64(dataPerTree), n0-k*dataPerTree)
		if from < to {
			clear(t.buf[from*entrySize : to*entrySize])
			f.markDirty(t)
		}
	}
	// Entries of dropped tree nodes in tree nodes that stay.
	for k := m1; k < m0; k++ {
		pk, slot, _ := nodeRef{tree: true, index: k}.parent()
		if pk >= m1 {
			continue
		}
		t, err := f.getNode(ctx, nodeRef{tree: true, index: pk})
		if err != nil {
			return err
		}
		clear(t.buf[slot*entrySize : (slot+1)*entrySize])
		f.markDirty(t)
	}
	limit := physNodes(size)
	for p, n := range f.nodes {
		if p >= limit {
			f.drop(n)
		}
	}
	for p := range f.pendIndex {
		if p >= limit {
			delete(f.pendIndex, p)
		}
	}
	f.size = size
	f.modified = true
	return nil
}

// Sync commits all changes (docs/storage.md §5): when it returns, a later
// Open sees them, and a crash at any point before leaves the previous commit.
func (f *File) Sync(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return err
	}
	return f.commit(ctx)
}

// Close commits all changes and closes the file. The File is closed even if
// the commit fails; a later Open then sees the previous commit.
func (f *File) Close(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("storage: %q: %w", f.name, ErrClosed)
	}
	var err error
	if f.err == nil {
		err = f.commit(ctx)
	} else {
		err = f.usable()
	}
	f.closed = true
	if f.pending != nil {
		f.pending.Close()
		f.pending = nil
	}
	if cerr := f.main.Close(); err == nil {
		err = cerr
	}
	f.nodes, f.dirtyTrees, f.free, f.workers = nil, nil, nil, nil
	f.lru.Init()
	return err
}

// Node cache.

func (f *File) newNode(ref nodeRef) *node {
	return f.addNode(ref, f.nodeBuf())
}

// nodeBuf returns a zeroed node buffer.
func (f *File) nodeBuf() []byte {
	if l := len(f.free); l > 0 {
		b := f.free[l-1]
		f.free = f.free[:l-1]
		clear(b)
		return b
	}
	return make([]byte, NodeSize)
}

// addNode caches ref with contents buf.
func (f *File) addNode(ref nodeRef, buf []byte) *node {
	n := &node{ref: ref, phys: ref.phys(), buf: buf}
	f.nodes[n.phys] = n
	n.elem = f.lru.PushFront(n)
	return n
}

// drop removes n from the cache, discarding changes.
func (f *File) drop(n *node) {
	delete(f.nodes, n.phys)
	if n.elem != nil {
		f.lru.Remove(n.elem)
		n.elem = nil
	}
	if n.ref.tree {
		delete(f.dirtyTrees, n.ref.index)
	}
	if len(f.free) < f.freeMax() {
		f.free = append(f.free, n.buf)
	}
	n.buf = nil
}

func (f *File) markDirty(n *node) {
	n.dirty = true
	if n.ref.tree {
		if n.elem != nil {
			f.lru.Remove(n.elem)
			n.elem = nil
		}
		f.dirtyTrees[n.ref.index] = n
		return
	}
	f.lru.MoveToFront(n.elem)
}

func (f *File) markClean(n *node) {
	n.dirty = false
	if n.ref.tree {
		delete(f.dirtyTrees, n.ref.index)
		if n.elem == nil && f.nodes[n.phys] == n {
			n.elem = f.lru.PushFront(n)
		}
	}
}

// entryOf returns the current entry authenticating ref.
func (f *File) entryOf(ctx context.Context, ref nodeRef) (entry, error) {
	k, slot, ok := ref.parent()
	if !ok {
		return f.root, nil
	}
	t, err := f.getNode(ctx, nodeRef{tree: true, index: k})
	if err != nil {
		return entry{}, err
	}
	var e entry
	copy(e[:], t.buf[slot*entrySize:])
	return e, nil
}

// getNode returns the node, reading and verifying it if it is not cached.
// It never evicts, so pointers stay valid until the next evict.
func (f *File) getNode(ctx context.Context, ref nodeRef) (*node, error) {
	if n, ok := f.nodes[ref.phys()]; ok {
		if n.elem != nil {
			f.lru.MoveToFront(n.elem)
		}
		return n, nil
	}
	e, err := f.entryOf(ctx, ref)
	if err != nil {
		return nil, err
	}
	if !e.valid() {
		return nil, fmt.Errorf("storage: node %d: malformed entry: %w", ref.phys(), ErrCorrupt)
	}
	n := f.newNode(ref)
	if e.isHole() {
		return n, nil
	}
	ct := f.scratchBuf(NodeSize + tagSize)
	if off, ok := f.pendIndex[n.phys]; ok {
		err = readFull(ctx, f.pending, ct[:NodeSize], off)
	} else {
		err = readFull(ctx, f.main, ct[:NodeSize], n.phys*NodeSize)
	}
	if err == nil {
		err = f.open1(n, &e, ct)
	}
	if err != nil {
		f.drop(n)
		return nil, err
	}
	return n, nil
}

// getNodeForOverwrite returns data node j for a write that replaces all of
// it: its old contents are not read, only its parent.
func (f *File) getNodeForOverwrite(ctx context.Context, j int64) (*node, error) {
	ref := nodeRef{index: j}
	if n, ok := f.nodes[ref.phys()]; ok {
		f.lru.MoveToFront(n.elem)
		return n, nil
	}
	k, _, _ := ref.parent()
	if _, err := f.getNode(ctx, nodeRef{tree: true, index: k}); err != nil {
		return nil, err
	}
	return f.newNode(ref), nil
}

func (f *File) scratchBuf(n int) []byte {
	if cap(f.scratch) < n {
		f.scratch = make([]byte, n)
	}
	return f.scratch[:n]
}

// open1 decrypts the ciphertext in ct[:NodeSize] (ct has room for the tag
// after it) into n under entry e.
func (f *File) open1(n *node, e *entry, ct []byte) error {
	ct = ct[:NodeSize+tagSize]
	save := [tagSize]byte(ct[NodeSize:])
	copy(ct[NodeSize:], e[nonceSize:])
	var aad [8]byte
	binary.BigEndian.PutUint64(aad[:], uint64(n.phys))
	_, err := f.aead.Open(n.buf[:0], e[:nonceSize], ct, aad[:])
	copy(ct[NodeSize:], save[:])
	if err != nil {
		return fmt.Errorf("storage: %q: node %d does not authenticate (tampered, moved or stale): %w", f.name, n.phys, ErrCorrupt)
	}
	if n.ref.tree && !allZero(n.buf[entriesSize:]) {
		return fmt.Errorf("storage: %q: tree node %d has non-zero padding: %w", f.name, n.phys, ErrCorrupt)
	}
	return nil
}

// prefetch reads the uncached stored data nodes in [j0, j1) with one host
// read per run of consecutive nodes.
func (f *File) prefetch(ctx context.Context, j0, j1 int64) error {
	for j := j0; j < j1; {
		k := j / dataPerTree
		end := min(j1, (k+1)*dataPerTree)
		t, err := f.getNode(ctx, nodeRef{tree: true, index: k})
		if err != nil {
			return err
		}
		for j < end {
			// Find a run of nodes to read from the backing file.
			s := j
			for s < end && !f.stored(t, s) {
				s++
			}
			e := s
			for e < end && f.stored(t, e) {
				e++
			}
			if s < e {
				if err := f.readRun(ctx, t, s, e); err != nil {
					return err
				}
			}
			j = e
		}
	}
	return nil
}

// stored reports whether data node j is uncached and must be read from the
// backing file.
func (f *File) stored(t *node, j int64) bool {
	p := dataPhys(j)
	if _, ok := f.nodes[p]; ok {
		return false
	}
	if _, ok := f.pendIndex[p]; ok {
		return false
	}
	slot := j % dataPerTree
	return !(*entry)(t.buf[slot*entrySize : (slot+1)*entrySize]).isHole()
}

func (f *File) readRun(ctx context.Context, t *node, s, e int64) error {
	cnt := int(e - s)
	buf := f.scratchBuf(cnt*NodeSize + tagSize)
	if err := readFull(ctx, f.main, buf[:cnt*NodeSize], dataPhys(s)*NodeSize); err != nil {
		return err
	}
	for i := range cnt {
		j := s + int64(i)
		slot := j % dataPerTree
		var en entry
		copy(en[:], t.buf[slot*entrySize:])
		if !en.valid() {
			return fmt.Errorf("storage: node %d: malformed entry: %w", dataPhys(j), ErrCorrupt)
		}
		n := f.newNode(nodeRef{index: j})
		if err := f.open1(n, &en, buf[i*NodeSize:]); err != nil {
			f.drop(n)
			return err
		}
	}
	return nil
}

// evict shrinks the cache to three quarters of its size, writing out changed
// data nodes in batches.
func (f *File) evict(ctx context.Context) error {
	if f.lru.Len() <= f.cacheMax {
		return nil
	}
	target := f.cacheMax * 3 / 4
	var batch []*node
	for f.lru.Len() > target {
		n := f.lru.Back().Value.(*node)
		f.lru.Remove(n.elem)
		n.elem = nil
		delete(f.nodes, n.phys)
		if n.dirty {
			batch = append(batch, n)
		} else if len(f.free) < f.freeMax() {
			f.free = append(f.free, n.buf)
		}
	}
	if len(batch) > 0 {
		if err := f.writeOut(ctx, batch); err != nil {
			return f.fail(err)
		}
	}
	return nil
}

// ensurePending creates ~pending with the journal preamble (docs/storage.md
// §5): before any node of this commit reaches the host.
func (f *File) ensurePending(ctx context.Context) error {
	if f.pending != nil {
		return nil
	}
	pf, err := f.fsys.OpenFile(ctx, f.name+suffixPending, true)
	if err != nil {
		return err
	}
	pre := journalPreambleBytes(f.hdr.FileID, f.hdr.NameHash)
	if err := pf.Truncate(ctx, 0); err != nil {
		pf.Close()
		return err
	}
	if _, err := pf.WriteAt(ctx, pre, 0); err != nil {
		pf.Close()
		return err
	}
	f.pending = pf
	f.pendOff = int64(len(pre))
	f.pendMAC = hmac.New(sha256.New, f.keys.journal)
	f.pendMAC.Write(pre)
	f.pendCount = 0
	return nil
}

// appendPending appends b (whole records) to ~pending.
func (f *File) appendPending(ctx context.Context, b []byte, records int) error {
	if _, err := f.pending.WriteAt(ctx, b, f.pendOff); err != nil {
		return err
	}
	f.pendMAC.Write(b)
	f.pendOff += int64(len(b))
	f.pendCount += uint64(records)
	return nil
}

// writeOut encrypts changed nodes with fresh nonces, records their entries in
// their parents (or the root entry), and writes them: directly into the
// backing file past the committed end, into ~pending otherwise. A node's
// parent must not be among ns.
func (f *File) writeOut(ctx context.Context, ns []*node) error {
	slices.SortFunc(ns, func(a, b *node) int { return cmp.Compare(a.phys, b.phys) })
	items := make([]sealItem, len(ns))
	for i, n := range ns {
		items[i] = sealItem{ref: n.ref, phys: n.phys, pt: n.buf}
	}
	if err := f.loadParents(ctx, items); err != nil {
		return err
	}
	if err := f.sealWrite(ctx, items); err != nil {
		return err
	}
	for _, n := range ns {
		f.markClean(n)
		if n.elem == nil && f.nodes[n.phys] != n && len(f.free) < f.freeMax() {
			// Evicted: recycle its buffer.
			f.free = append(f.free, n.buf)
			n.buf = nil
		}
	}
	return nil
}

// commit is the commit protocol of docs/storage.md §5.
func (f *File) commit(ctx context.Context) error {
	if !f.modified {
		return nil
	}
	if err := f.commitSteps(ctx); err != nil {
		return f.fail(fmt.Errorf("storage: commit %q: %w", f.name, err))
	}
	return nil
}

func (f *File) commitSteps(ctx context.Context) error {
	// Step 1: changed data nodes, then tree nodes children first.
	var batch []*node
	for _, n := range f.nodes {
		if n.dirty && !n.ref.tree {
			batch = append(batch, n)
		}
	}
	if err := f.writeOut(ctx, batch); err != nil {
		return err
	}
	if err := f.ensurePending(ctx); err != nil {
		return err
	}
	for len(f.dirtyTrees) > 0 {
		// The deepest level first: every child is written before its
		// parent, and the nodes of one level are independent.
		deepest := -1
		for k := range f.dirtyTrees {
			deepest = max(deepest, treeDepth(k))
		}
		var level []*node
		for k, n := range f.dirtyTrees {
			if treeDepth(k) == deepest {
				level = append(level, n)
			}
		}
		if err := f.writeOut(ctx, level); err != nil {
			return err
		}
	}
	// Step 1 (end): the new header.
	nh := f.hdr
	nh.Commit++
	nh.Size = f.size
	nh.Writes = f.writes
	nh.Root = f.root
	hb := nh.marshal(f.keys.header)
	// Step 2: header record and trailer.
	rec := make([]byte, 0, journalRecord+journalTrailer)
	rec = binary.BigEndian.AppendUint64(rec, 0)
	rec = append(rec, hb...)
	if err := f.appendPending(ctx, rec, 1); err != nil {
		return err
	}
	tr := binary.BigEndian.AppendUint64(nil, journalEnd)
	tr = binary.BigEndian.AppendUint64(tr, f.pendCount)
	f.pendMAC.Write(tr)
	tr = f.pendMAC.Sum(tr)
	if _, err := f.pending.WriteAt(ctx, tr, f.pendOff); err != nil {
		return err
	}
	// Step 3: the backing file's length covers both states; sync.
	newP := physNodes(f.size)
	if err := f.main.Truncate(ctx, max(newP, f.committedPhys)*NodeSize); err != nil {
		return err
	}
	if err := f.main.Sync(ctx); err != nil {
		return err
	}
	if err := f.pending.Sync(ctx); err != nil {
		return err
	}
	err := f.pending.Close()
	f.pending = nil
	if err != nil {
		return err
	}
	// Step 4: commit point.
	if err := f.fsys.Rename(ctx, f.name+suffixPending, f.name+suffixJournal); err != nil {
		return err
	}
	// Steps 5-6: apply the journal as written.
	jf, err := f.fsys.OpenFile(ctx, f.name+suffixJournal, false)
	if err != nil {
		return err
	}
	b, err := readAll(ctx, jf)
	jf.Close()
	if err != nil {
		return err
	}
	j, err := parseJournal(b, f.keys.journal)
	if err != nil {
		return err
	}
	if err := f.apply(ctx, j); err != nil {
		return err
	}
	f.hdr = nh
	f.committedPhys = newP
	clear(f.pendIndex)
	f.modified = false
	// Step 7.
	if f.counter != nil {
		if err := f.increment(ctx, nh.Commit); err != nil {
			return err
		}
	}
	return nil
}

// freeMax bounds the recycled node buffers: one eviction's worth.
func (f *File) freeMax() int { return f.cacheMax/4 + maxBatch }
