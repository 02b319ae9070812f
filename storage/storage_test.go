package storage

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var testKey = bytes.Repeat([]byte{0x42}, KeySize)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

func noCounter() Options { return Options{InsecureNoRollbackProtection: true} }

// Values of docs/storage.md §8.
const (
	vecKey       = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	vecFileID    = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
	vecName      = "vector.db"
	vecNameHash  = "e3f1141134d4b11cb1ec363d44254c194a98b2e7d87fd4368e2defa4a3848707"
	vecHeaderKey = "93bf3eb5c1aeb139b587aa97ccfb61993c2a256a4daed9b72b2ecdd2880c2384"
	vecFileKey   = "b17e6c5218676dd769c21bb185782e6b6924dd7663f3385d04000b387c49e3fd"
	vecHeader    = `4153465301010000a0a1a2a3a4a5a6a7a8a9aaabacadaeafe3f1141134d4b11c
                    b1ec363d44254c194a98b2e7d87fd4368e2defa4a38487070000000000000001
                    0000000000000000000000000000000000000000000000000000000000000000
                    00000000000000000000000000000000d85232bfe1b964e67aef9696fd326fe4
                    08d2a00f1a3ef6256450c2fbc93dbc3f`
	vecNodeNonce = "b0b1b2b3b4b5b6b7b8b9babb"
	vecNodeTag   = "06ba2fb07dde304970e1a67ed53d7d55"
	vecNodeHash  = "3a8d7c3e4572b39fd6317b7d08740339859e545809d3c997bfb8ea8993c62c9e"
)

// TestVector checks the bytes of docs/storage.md §8, and that the document
// shows them.
func TestVector(t *testing.T) {
	ctx := context.Background()
	nh := nameHash(vecName)
	if hex.EncodeToString(nh[:]) != vecNameHash {
		t.Errorf("name hash %x", nh)
	}
	k, err := deriveKeys(mustHex(vecKey))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(k.header) != vecHeaderKey {
		t.Errorf("header key %x", k.header)
	}
	fk, err := k.fileKey([FileIDSize]byte(mustHex(vecFileID)), nh)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(fk) != vecFileKey {
		t.Errorf("file key %x", fk)
	}

	// Create with the vector's file id writes the vector's header.
	dir := t.TempDir()
	opts := noCounter()
	opts.rand = bytes.NewReader(mustHex(vecFileID))
	f, err := Create(ctx, DirFS(dir), vecName, mustHex(vecKey), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, vecName))
	if err != nil {
		t.Fatal(err)
	}
	want := append(mustHex(vecHeader), make([]byte, NodeSize-headerUsed)...)
	if len(b) != 2*NodeSize || !bytes.Equal(b[:NodeSize], want) {
		t.Errorf("header:\n%x\nwant\n%x", b[:headerUsed], want[:headerUsed])
	}

	// The node encryption of §8.
	block, _ := aes.NewCipher(fk)
	aead, _ := cipher.NewGCM(block)
	out := aead.Seal(nil, mustHex(vecNodeNonce), bytes.Repeat([]byte("a"), NodeSize), []byte{0, 0, 0, 0, 0, 0, 0, 2})
	if got := hex.EncodeToString(out[NodeSize:]); got != vecNodeTag {
		t.Errorf("node tag %s", got)
	}
	if h := sha256.Sum256(out[:NodeSize]); hex.EncodeToString(h[:]) != vecNodeHash {
		t.Errorf("node ciphertext hash %x", h)
	}

	doc, err := os.ReadFile("../docs/storage.md")
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(string(doc)), "")
	for _, v := range []string{vecNameHash, vecHeaderKey, vecFileKey, vecNodeTag, vecNodeHash, strings.Join(strings.Fields(vecHeader), "")} {
		if !strings.Contains(flat, v) {
			t.Errorf("docs/storage.md does not show %s", v)
		}
	}
}

func TestLayout(t *testing.T) {
	// Every physical index maps to exactly one node and back.
	for p := int64(1); p < 5000; p++ {
		if r := refOf(p); r.phys() != p {
			t.Fatalf("refOf(%d) = %+v, phys %d", p, r, r.phys())
		}
	}
	for _, c := range []struct{ size, p int64 }{
		{0, 2}, {1, 3}, {4096, 3}, {4097, 4}, {96 * 4096, 98}, {96*4096 + 1, 100}, {64 << 20, 16384 + 171 + 1},
	} {
		if got := physNodes(c.size); got != c.p {
			t.Errorf("physNodes(%d) = %d, want %d", c.size, got, c.p)
		}
	}
	// A parent's index is lower than its children's.
	for k := int64(1); k < 3000; k++ {
		if pk, _, _ := (nodeRef{tree: true, index: k}).parent(); pk >= k {
			t.Fatalf("parent of tree %d is %d", k, pk)
		}
	}
}

// model checks a File against a byte slice.
type model struct {
	t    *testing.T
	f    *File
	data []byte
}

func (m *model) check(ctx context.Context) {
	m.t.Helper()
	if m.f.Size() != int64(len(m.data)) {
		m.t.Fatalf("size %d, want %d", m.f.Size(), len(m.data))
	}
	got := make([]byte, len(m.data)+10)
	n, err := m.f.ReadAt(ctx, got, 0)
	if n != len(m.data) || (err != io.EOF) {
		m.t.Fatalf("ReadAt: %d, %v; want %d, EOF", n, err, len(m.data))
	}
	if !bytes.Equal(got[:n], m.data) {
		m.t.Fatalf("contents differ")
	}
}

// writeAt writes p at off to the file and the model.
func (m *model) writeAt(ctx context.Context, op int, p []byte, off int64) {
	m.t.Helper()
	if w, err := m.f.WriteAt(ctx, p, off); err != nil || w != len(p) {
		m.t.Fatalf("op %d: WriteAt(%d, %d): %d, %v", op, len(p), off, w, err)
	}
	m.write(p, off)
}

func (m *model) write(p []byte, off int64) {
	if end := off + int64(len(p)); end > int64(len(m.data)) {
		m.data = append(m.data, make([]byte, end-int64(len(m.data)))...)
	}
	copy(m.data[off:], p)
}

// truncate truncates the file and the model to sz.
func (m *model) truncate(ctx context.Context, sz int64) {
	m.t.Helper()
	if err := m.f.Truncate(ctx, sz); err != nil {
		m.t.Fatal(err)
	}
	if sz < int64(len(m.data)) {
		m.data = m.data[:sz]
	} else {
		m.data = append(m.data, make([]byte, sz-int64(len(m.data)))...)
	}
}

// readAt reads n bytes at off (inside the data) and compares them with the
// model, EOF included.
func (m *model) readAt(ctx context.Context, op, n int, off int64) {
	m.t.Helper()
	p := make([]byte, n)
	got, err := m.f.ReadAt(ctx, p, off)
	want := min(len(p), len(m.data)-int(off))
	if got != want || (got < len(p)) != (err == io.EOF) || (err != nil && err != io.EOF) {
		m.t.Fatalf("op %d: ReadAt(%d, %d): %d, %v; want %d", op, len(p), off, got, err, want)
	}
	if !bytes.Equal(p[:got], m.data[off:off+int64(got)]) {
		m.t.Fatalf("op %d: ReadAt(%d, %d) differs", op, len(p), off)
	}
}

// reopen closes the file, opens it again and checks the backing file's size.
func (m *model) reopen(ctx context.Context, dir, name string, opts Options) {
	m.t.Helper()
	if err := m.f.Close(ctx); err != nil {
		m.t.Fatal(err)
	}
	f, err := Open(ctx, DirFS(dir), name, testKey, opts)
	if err != nil {
		m.t.Fatal(err)
	}
	m.f = f
	st, err := os.Stat(filepath.Join(dir, name))
	if err != nil || st.Size() != physNodes(int64(len(m.data)))*NodeSize {
		m.t.Fatalf("backing size %v, %v", st.Size(), err)
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, cache := range []int{16, DefaultCacheNodes} {
		rng := rand.New(rand.NewPCG(1, uint64(cache)))
		dir := t.TempDir()
		opts := Options{Counter: &MemoryCounter{}, CacheNodes: cache}
		f, err := Create(ctx, DirFS(dir), "rt", testKey, opts)
		if err != nil {
			t.Fatal(err)
		}
		m := &model{t: t, f: f}
		for i := range 400 {
			switch op := rng.IntN(10); {
			case op < 6: // write
				var off int64
				switch rng.IntN(3) {
				case 0:
					off = rng.Int64N(int64(len(m.data)) + 1)
				case 1:
					off = rng.Int64N(600 << 10) // sparse, up to several tree nodes
				default:
					off = int64(rng.IntN(100)) * NodeSize
				}
				n := []int{1, 100, NodeSize - 1, NodeSize, NodeSize + 1, 3 * NodeSize, rng.IntN(200 << 10)}[rng.IntN(7)]
				p := make([]byte, n)
				for k := range p {
					p[k] = byte(rng.Uint32())
				}
				m.writeAt(ctx, i, p, off)
			case op < 7: // truncate
				sz := rng.Int64N(int64(len(m.data)) + 2*NodeSize + 1)
				if rng.IntN(4) == 0 {
					sz = rng.Int64N(700 << 10)
				}
				m.truncate(ctx, sz)
			case op < 8: // random read
				if len(m.data) == 0 {
					continue
				}
				off := rng.Int64N(int64(len(m.data)))
				m.readAt(ctx, i, rng.IntN(3*NodeSize)+1, off)
			case op < 9:
				if err := m.f.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			default: // close and reopen
				m.reopen(ctx, dir, "rt", opts)
			}
			if i%40 == 0 {
				m.check(ctx)
			}
		}
		m.check(ctx)
		if err := m.f.Close(ctx); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("leftover files: %v", entries)
		}
	}
}

// smallFile creates a committed file of 3.5 nodes plus a write past a gap.
func smallFile(t *testing.T, dir, name string, opts Options) []byte {
	t.Helper()
	ctx := context.Background()
	f, err := Create(ctx, DirFS(dir), name, testKey, opts)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3*NodeSize+NodeSize/2)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if _, err := f.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return data
}

// openRead opens name and reads all of it.
func openRead(ctx context.Context, dir, name string, opts Options) ([]byte, error) {
	f, err := Open(ctx, DirFS(dir), name, testKey, opts)
	if err != nil {
		return nil, err
	}
	defer f.Close(ctx)
	b := make([]byte, f.Size())
	if _, err := f.ReadAt(ctx, b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

func TestFlipEveryByte(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := smallFile(t, dir, "flip", noCounter())
	path := filepath.Join(dir, "flip")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(orig) != 6*NodeSize { // header, tree 0, 4 data nodes
		t.Fatalf("backing file is %d bytes", len(orig))
	}
	if got, err := openRead(ctx, dir, "flip", noCounter()); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("unmodified: %v", err)
	}
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	counts := map[string]int{}
	for i := range orig {
		b := []byte{orig[i] ^ 0x01}
		if i%3 == 1 {
			b[0] = orig[i] ^ 0x80
		}
		if _, err := fh.WriteAt(b, int64(i)); err != nil {
			t.Fatal(err)
		}
		_, err := openRead(ctx, dir, "flip", noCounter())
		switch {
		case err == nil:
			t.Fatalf("byte %d flipped: file still opens and reads", i)
		case i < NodeSize && (errors.Is(err, ErrMalformed) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTooLarge)):
		case i >= NodeSize && errors.Is(err, ErrCorrupt):
		default:
			t.Fatalf("byte %d flipped: unexpected error %v", i, err)
		}
		for _, e := range []error{ErrMalformed, ErrCorrupt} {
			if errors.Is(err, e) {
				counts[e.Error()]++
			}
		}
		if _, err := fh.WriteAt(orig[i:i+1], int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d flips refused: %v", len(orig), counts)
}

func TestSwapNodes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	smallFile(t, dir, "swap", noCounter())
	path := filepath.Join(dir, "swap")
	orig, _ := os.ReadFile(path)
	for _, pair := range [][2]int64{{2, 3}, {2, 5}, {1, 2}} {
		b := bytes.Clone(orig)
		a, c := pair[0]*NodeSize, pair[1]*NodeSize
		copy(b[a:a+NodeSize], orig[c:c+NodeSize])
		copy(b[c:c+NodeSize], orig[a:a+NodeSize])
		os.WriteFile(path, b, 0o600)
		if _, err := openRead(ctx, dir, "swap", noCounter()); !errors.Is(err, ErrCorrupt) {
			t.Errorf("nodes %v swapped: %v, want ErrCorrupt", pair, err)
		}
	}
	// A node of another file (same key, same position) does not verify.
	smallFile(t, dir, "other", noCounter())
	other, _ := os.ReadFile(filepath.Join(dir, "other"))
	b := bytes.Clone(orig)
	copy(b[2*NodeSize:3*NodeSize], other[2*NodeSize:])
	os.WriteFile(path, b, 0o600)
	if _, err := openRead(ctx, dir, "swap", noCounter()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("node from another file: %v, want ErrCorrupt", err)
	}
}

func TestSwapFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	smallFile(t, dir, "a", noCounter())
	smallFile(t, dir, "b", noCounter())
	fsys := DirFS(dir)
	must(t, fsys.Rename(ctx, "a", "tmp"))
	must(t, fsys.Rename(ctx, "b", "a"))
	must(t, fsys.Rename(ctx, "tmp", "b"))
	for _, n := range []string{"a", "b"} {
		if _, err := openRead(ctx, dir, n, noCounter()); !errors.Is(err, ErrWrongFile) {
			t.Errorf("swapped file %s: %v, want ErrWrongFile", n, err)
		}
	}
	// Renamed to a fresh name.
	must(t, fsys.Rename(ctx, "a", "c"))
	if _, err := openRead(ctx, dir, "c", noCounter()); !errors.Is(err, ErrWrongFile) {
		t.Errorf("renamed file: %v, want ErrWrongFile", err)
	}
	// Another storage key.
	smallFile(t, dir, "d", noCounter())
	if _, err := Open(ctx, fsys, "d", bytes.Repeat([]byte{1}, 32), noCounter()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("wrong key: %v, want ErrCorrupt", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTruncateExtendBacking(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	smallFile(t, dir, "tr", noCounter())
	path := filepath.Join(dir, "tr")
	orig, _ := os.ReadFile(path)
	for _, n := range []int{0, 1, NodeSize, len(orig) - NodeSize, len(orig) - 1} {
		os.WriteFile(path, orig[:n], 0o600)
		if _, err := openRead(ctx, dir, "tr", noCounter()); !errors.Is(err, ErrTruncated) {
			t.Errorf("truncated to %d: %v, want ErrTruncated", n, err)
		}
	}
	for _, n := range []int{1, NodeSize, 3 * NodeSize} {
		os.WriteFile(path, append(bytes.Clone(orig), make([]byte, n)...), 0o600)
		if _, err := openRead(ctx, dir, "tr", noCounter()); !errors.Is(err, ErrTruncated) {
			t.Errorf("extended by %d: %v, want ErrTruncated", n, err)
		}
	}
}

func TestRollback(t *testing.T) {
	ctx := context.Background()
	dir, saved := t.TempDir(), t.TempDir()
	ctr := &MemoryCounter{}
	opts := Options{Counter: ctr}
	smallFile(t, dir, "rb", opts)
	old, _ := os.ReadFile(filepath.Join(dir, "rb"))
	os.WriteFile(filepath.Join(saved, "rb"), old, 0o600)

	f, err := Open(ctx, DirFS(dir), "rb", testKey, opts)
	must(t, err)
	_, err = f.WriteAt(ctx, []byte("new version"), 10)
	must(t, err)
	must(t, f.Close(ctx))

	// Replay the older committed version.
	os.WriteFile(filepath.Join(dir, "rb"), old, 0o600)
	if _, err := openRead(ctx, dir, "rb", opts); !errors.Is(err, ErrRollback) {
		t.Errorf("replayed with counter: %v, want ErrRollback", err)
	}
	// Without a counter a whole older version is undetectable (docs/storage.md §6).
	if got, err := openRead(ctx, dir, "rb", noCounter()); err != nil || bytes.Contains(got, []byte("new version")) {
		t.Errorf("replayed without counter: %v", err)
	}
	// An older incarnation of the name after Create.
	smallFile(t, dir, "rb", opts)
	os.WriteFile(filepath.Join(dir, "rb"), old, 0o600)
	if _, err := openRead(ctx, dir, "rb", opts); !errors.Is(err, ErrRollback) {
		t.Errorf("older incarnation: %v, want ErrRollback", err)
	}
	// A counter that went back (its storage was rolled back).
	smallFile(t, dir, "c2", Options{Counter: ctr})
	if _, err := openRead(ctx, dir, "c2", Options{Counter: &MemoryCounter{}}); !errors.Is(err, ErrRollback) {
		t.Errorf("counter behind: %v, want ErrRollback", err)
	}
}

// TestCounterFinish: a crash between the commit point and the increment
// leaves the counter one behind; Open accepts and finishes it.
func TestCounterFinish(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mem := &MemoryCounter{}
	smallFile(t, dir, "cf", Options{Counter: mem})
	behind := &MemoryCounter{}
	id := labelCounter + hex.EncodeToString(func() []byte { h := nameHash("cf"); return h[:] }())
	c, _ := mem.Get(ctx, id)
	for range c - 1 {
		behind.Increment(ctx, id)
	}
	if _, err := openRead(ctx, dir, "cf", Options{Counter: behind}); err != nil {
		t.Fatalf("counter one behind: %v", err)
	}
	if got, _ := behind.Get(ctx, id); got != c {
		t.Errorf("counter %d after open, want %d", got, c)
	}
}

func TestFileCounter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := NewFileCounter(dir)
	for i := range uint64(3) {
		if v, err := c.Get(ctx, "x"); err != nil || v != i {
			t.Fatalf("Get = %d, %v", v, err)
		}
		if v, err := c.Increment(ctx, "x"); err != nil || v != i+1 {
			t.Fatalf("Increment = %d, %v", v, err)
		}
	}
	if v, _ := NewFileCounter(dir).Get(ctx, "x"); v != 3 {
		t.Errorf("reopened counter %d", v)
	}
	if v, _ := c.Get(ctx, "y"); v != 0 {
		t.Errorf("other id %d", v)
	}
	// With a protected file.
	fdir := t.TempDir()
	smallFile(t, fdir, "f", Options{Counter: c})
	if _, err := openRead(ctx, fdir, "f", Options{Counter: NewFileCounter(dir)}); err != nil {
		t.Fatal(err)
	}
}

func TestDirFSNames(t *testing.T) {
	ctx := context.Background()
	fsys := DirFS(t.TempDir())
	for _, n := range []string{"", ".", "..", "/etc/passwd", "a/b", "../x", "a\\b", "a\x00b", strings.Repeat("x", 256)} {
		if _, err := fsys.OpenFile(ctx, n, true); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("OpenFile(%q): %v", n, err)
		}
		if err := fsys.Rename(ctx, "ok", n); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Rename(%q): %v", n, err)
		}
		if err := fsys.Remove(ctx, n); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Remove(%q): %v", n, err)
		}
		if _, err := Create(ctx, fsys, n, testKey, noCounter()); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Create(%q): %v", n, err)
		}
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Create(ctx, DirFS(dir), "x", testKey, Options{}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("no counter: %v", err)
	}
	if _, err := Create(ctx, DirFS(dir), "x", testKey[:16], noCounter()); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("short key: %v", err)
	}
	f, err := Create(ctx, DirFS(dir), "x", testKey, noCounter())
	must(t, err)
	if _, err := f.WriteAt(ctx, []byte{1}, MaxSize); !errors.Is(err, ErrTooLarge) {
		t.Errorf("write past MaxSize: %v", err)
	}
	if err := f.Truncate(ctx, MaxSize+1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("truncate past MaxSize: %v", err)
	}
	// The largest size is fine: it is all holes.
	must(t, f.Truncate(ctx, MaxSize))
	must(t, f.Sync(ctx))
	must(t, f.Truncate(ctx, 0))
	must(t, f.Close(ctx))
	if _, err := f.ReadAt(ctx, make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
	if _, err := f.WriteAt(ctx, []byte{1}, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
	if err := f.Close(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("second close: %v", err)
	}
	if _, err := Open(ctx, DirFS(dir), "missing", testKey, noCounter()); err == nil {
		t.Error("opened a missing file")
	}
}

// TestStaleJournal: a journal left by the file Create replaced is ignored;
// a tampered journal is refused.
func TestJournalRecovery(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	smallFile(t, dir, "j", noCounter())
	// Make a journal by stopping a commit after its commit point: write it by
	// hand from a second directory's commit.
	dir2 := t.TempDir()
	b, _ := os.ReadFile(filepath.Join(dir, "j"))
	os.WriteFile(filepath.Join(dir2, "j"), b, 0o600)
	f, err := Open(ctx, DirFS(dir2), "j", testKey, noCounter())
	must(t, err)
	_, err = f.WriteAt(ctx, []byte("journaled"), 5)
	must(t, err)
	hook := &stopFS{UntrustedFS: DirFS(dir2), stopAt: "Remove j~journal"}
	f.fsys = hook
	if err := f.Close(ctx); err == nil {
		t.Fatal("commit did not stop")
	}
	jb, err := os.ReadFile(filepath.Join(dir2, "j~journal"))
	must(t, err)
	main2, _ := os.ReadFile(filepath.Join(dir2, "j"))

	// Replayed onto the old file in dir: applied.
	os.WriteFile(filepath.Join(dir, "j~journal"), jb, 0o600)
	got, err := openRead(ctx, dir, "j", noCounter())
	if err != nil || !bytes.Contains(got, []byte("journaled")) {
		t.Fatalf("journal not applied: %v", err)
	}
	if nb, _ := os.ReadFile(filepath.Join(dir, "j")); !bytes.Equal(nb, main2) {
		t.Error("applied file differs")
	}
	// Stale journal after Create: ignored.
	smallFile(t, dir, "j", noCounter())
	os.WriteFile(filepath.Join(dir, "j~journal"), jb, 0o600)
	if got, err := openRead(ctx, dir, "j", noCounter()); err != nil || bytes.Contains(got, []byte("journaled")) {
		t.Fatalf("stale journal: %v", err)
	}
	// Tampered journal: refused.
	jb2 := bytes.Clone(jb)
	jb2[len(jb2)/2] ^= 1
	os.WriteFile(filepath.Join(dir, "j~journal"), jb2, 0o600)
	if _, err := openRead(ctx, dir, "j", noCounter()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("tampered journal: %v", err)
	}
	os.Remove(filepath.Join(dir, "j~journal"))
	// A pending journal: the backing file is cut back to the committed end.
	os.WriteFile(filepath.Join(dir, "j~pending"), []byte("partial"), 0o600)
	orig, _ := os.ReadFile(filepath.Join(dir, "j"))
	os.WriteFile(filepath.Join(dir, "j"), append(bytes.Clone(orig), make([]byte, 3*NodeSize)...), 0o600)
	if _, err := openRead(ctx, dir, "j", noCounter()); err != nil {
		t.Fatalf("pending: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "j~pending")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pending not removed: %v", err)
	}
}

// stopFS fails the named operation.
type stopFS struct {
	UntrustedFS
	stopAt string
}

func (s *stopFS) Remove(ctx context.Context, name string) error {
	if s.stopAt == "Remove "+name {
		return errors.New("stopped")
	}
	return s.UntrustedFS.Remove(ctx, name)
}

// Example shows the life of a protected file.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "storage-example")
	defer os.RemoveAll(dir)

	// In an enclave the key is unsealed with the seal package, and the
	// counter is a platform monotonic counter.
	key := bytes.Repeat([]byte{7}, KeySize)
	opts := Options{Counter: &MemoryCounter{}}

	f, _ := Create(ctx, DirFS(dir), "secrets.db", key, opts)
	f.WriteAt(ctx, []byte("hello, enclave"), 100000)
	f.Close(ctx) // commits

	f, _ = Open(ctx, DirFS(dir), "secrets.db", key, opts)
	p := make([]byte, 14)
	f.ReadAt(ctx, p, 100000)
	fmt.Println(string(p), f.Size())
	f.Close(ctx)
	// Output: hello, enclave 100014
}

// TestFileCounterProcesses increments one counter from several processes
// sharing the directory at once: no increment may be lost (each reads, writes
// and renames under the directory's lock).
func TestFileCounterProcesses(t *testing.T) {
	if dir := os.Getenv("ASYLO_TEST_COUNTER_DIR"); dir != "" {
		c := NewFileCounter(dir)
		for range counterIncrements {
			if _, err := c.Increment(context.Background(), "shared"); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	const procs = 3
	dir := t.TempDir()
	var cmds []*exec.Cmd
	for range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileCounterProcesses$")
		cmd.Env = append(os.Environ(), "ASYLO_TEST_COUNTER_DIR="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("incrementing process: %v", err)
		}
	}
	if v, err := NewFileCounter(dir).Get(context.Background(), "shared"); err != nil || v != procs*counterIncrements {
		t.Fatalf("counter = %d, %v after %d processes x %d increments", v, err, procs, counterIncrements)
	}
}

const counterIncrements = 30
