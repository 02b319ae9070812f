package storage

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// Large reads and writes take the bulk paths (bulk.go): whole uncached nodes
// straight between the caller's buffer and the host, in pieces on several
// goroutines. These tests mix them with the cache paths.

func fill(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

func TestBulkRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, cache := range []int{16, DefaultCacheNodes} {
		rng := rand.New(rand.NewPCG(7, uint64(cache)))
		dir := t.TempDir()
		opts := Options{Counter: &MemoryCounter{}, CacheNodes: cache}
		f, err := Create(ctx, DirFS(dir), "bulk", testKey, opts)
		if err != nil {
			t.Fatal(err)
		}
		m := &model{t: t, f: f}
		for i := range 120 {
			switch op := rng.IntN(20); {
			case op < 7: // large write: aligned, unaligned, or past the end
				var off int64
				switch rng.IntN(3) {
				case 0:
					off = int64(rng.IntN(600)) * NodeSize
				case 1:
					off = rng.Int64N(int64(len(m.data)) + 1)
				default:
					off = int64(len(m.data)) + int64(rng.IntN(300))*NodeSize
				}
				n := (minThrough+rng.IntN(400))*NodeSize + []int{0, 0, 1, NodeSize - 1}[rng.IntN(4)]
				m.writeAt(ctx, i, fill(rng, n), off)
			case op < 10: // small writes: dirty nodes in the cache, amid the runs
				for range 1 + rng.IntN(4) {
					off := rng.Int64N(int64(len(m.data)) + NodeSize)
					m.writeAt(ctx, i, fill(rng, 1+rng.IntN(2*NodeSize)), off)
				}
			case op < 15: // large read
				if len(m.data) == 0 {
					continue
				}
				off := rng.Int64N(int64(len(m.data)))
				if rng.IntN(2) == 0 {
					off -= off % NodeSize
				}
				m.readAt(ctx, i, rng.IntN(2<<20)+1, off)
			case op < 16: // truncate, often to leave holes when growing
				m.truncate(ctx, rng.Int64N(int64(len(m.data))+200*NodeSize+1))
			case op < 18:
				if err := m.f.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			default:
				m.reopen(ctx, dir, "bulk", opts)
			}
			if i%20 == 0 {
				m.check(ctx)
			}
		}
		m.check(ctx)
		if err := m.f.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := openRead(ctx, dir, "bulk", opts); err != nil || !bytes.Equal(got, m.data) {
			t.Fatalf("after reopen: %v", err)
		}
	}
}

// bulkFile creates a committed file of n data nodes with random contents.
func bulkFile(t *testing.T, dir, name string, n int) []byte {
	t.Helper()
	ctx := context.Background()
	f, err := Create(ctx, DirFS(dir), name, testKey, noCounter())
	if err != nil {
		t.Fatal(err)
	}
	data := fill(rand.New(rand.NewPCG(1, uint64(n))), n*NodeSize)
	if _, err := f.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return data
}

// A large read leaves the data nodes out of the cache; a large write does not
// put them in it.
func TestBulkBypassesCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := bulkFile(t, dir, "b", 1000)
	f, err := Open(ctx, DirFS(dir), "b", testKey, noCounter())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(ctx)
	p := make([]byte, len(data))
	if n, err := f.ReadAt(ctx, p, 0); n != len(p) || err != nil || !bytes.Equal(p, data) {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	trees := treeNodes(1000)
	if len(f.nodes) != int(trees) {
		t.Errorf("%d nodes cached after a large read, want the %d tree nodes", len(f.nodes), trees)
	}
	if _, err := f.WriteAt(ctx, data[:64*NodeSize], 0); err != nil {
		t.Fatal(err)
	}
	if len(f.nodes) != int(trees) || len(f.pendIndex) != 64 {
		t.Errorf("after a large write: %d nodes cached, %d in ~pending; want %d and 64", len(f.nodes), len(f.pendIndex), trees)
	}
}

// Tampering is caught on the bulk read path too: in a data node, in a tree
// node read along with its data nodes, by swapping nodes, by truncation.
func TestBulkTamper(t *testing.T) {
	ctx := context.Background()
	const n = 700 // 8 tree nodes
	for _, c := range []struct {
		name   string
		tamper func(b []byte) []byte
		bad    int64 // first corrupted data node; the ones before read fine
	}{
		{"data node", func(b []byte) []byte { b[dataPhys(300)*NodeSize+77] ^= 1; return b }, 300},
		{"tree node", func(b []byte) []byte { b[treePhys(3)*NodeSize+5] ^= 0x80; return b }, 3 * dataPerTree},
		{"swap", func(b []byte) []byte {
			x, y := dataPhys(500)*NodeSize, dataPhys(501)*NodeSize
			tmp := bytes.Clone(b[x : x+NodeSize])
			copy(b[x:], b[y:y+NodeSize])
			copy(b[y:], tmp)
			return b
		}, 500},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			data := bulkFile(t, dir, "t", n)
			path := filepath.Join(dir, "t")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, c.tamper(b), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := Open(ctx, DirFS(dir), "t", testKey, noCounter())
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close(ctx)
			p := make([]byte, len(data))
			if _, err := f.ReadAt(ctx, p, 0); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read of all: %v, want ErrCorrupt", err)
			}
			// The file stays usable for the other ranges.
			good := c.bad / dataPerTree * dataPerTree
			if k, err := f.ReadAt(ctx, p[:good*NodeSize], 0); err != nil || !bytes.Equal(p[:k], data[:good*NodeSize]) {
				t.Fatalf("read before the damage: %d, %v", k, err)
			}
			if _, err := f.ReadAt(ctx, p[:(n-600)*NodeSize], 600*NodeSize); err != nil || !bytes.Equal(p[:(n-600)*NodeSize], data[600*NodeSize:]) {
				t.Fatalf("read after the damage: %v", err)
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		dir := t.TempDir()
		bulkFile(t, dir, "t", n)
		f, err := Open(ctx, DirFS(dir), "t", testKey, noCounter())
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close(ctx)
		if err := os.Truncate(filepath.Join(dir, "t"), dataPhys(400)*NodeSize); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, n*NodeSize)
		if _, err := f.ReadAt(ctx, p, 0); !errors.Is(err, ErrTruncated) {
			t.Fatalf("read of a truncated file: %v, want ErrTruncated", err)
		}
	})
}

// Large overwrites of committed data go to ~pending: they read back before
// the commit, survive it, and vanish if the File is abandoned uncommitted.
func TestBulkPending(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := bulkFile(t, dir, "p", 600)
	f, err := Open(ctx, DirFS(dir), "p", testKey, noCounter())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	next := bytes.Clone(data)
	for _, w := range []struct{ off, n int }{{10, 300}, {200, 40}, {590, 100}} {
		p := fill(rng, w.n*NodeSize)
		if _, err := f.WriteAt(ctx, p, int64(w.off)*NodeSize); err != nil {
			t.Fatal(err)
		}
		if end := (w.off + w.n) * NodeSize; end > len(next) {
			next = append(next, make([]byte, end-len(next))...)
		}
		copy(next[w.off*NodeSize:], p)
	}
	got := make([]byte, len(next))
	for _, off := range []int{0, 5 * NodeSize, 150*NodeSize + 9} {
		k, err := f.ReadAt(ctx, got[off:], int64(off))
		if k != len(got)-off || err != nil || !bytes.Equal(got[off:], next[off:]) {
			t.Fatalf("read at %d before commit: %d, %v", off, k, err)
		}
	}
	// Abandoned without a commit (as if the enclave died): the old state.
	if b, err := openRead(ctx, dir, "p", noCounter()); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("uncommitted: %v", err)
	}
	// The abandoned File's ~pending was removed by that Open; start again.
	f, err = Open(ctx, DirFS(dir), "p", testKey, noCounter())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(ctx, next, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if b, err := openRead(ctx, dir, "p", noCounter()); err != nil || !bytes.Equal(b, next) {
		t.Fatalf("committed: %v", err)
	}
}
