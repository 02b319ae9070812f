package storage

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// A Counter is a set of monotonic counters, one per id, all starting at 0.
// Protected files bind their commit number to one (docs/storage.md §6) to
// detect a host that replays an older committed version. Get returns the
// current value; Increment adds one and returns the new value. A Counter is
// only as trustworthy as the place it keeps its state.
type Counter interface {
	Get(ctx context.Context, id string) (uint64, error)
	Increment(ctx context.Context, id string) (uint64, error)
}

// MemoryCounter is a Counter in memory: it survives as long as the process.
// The zero value is ready to use; it is safe for concurrent use.
type MemoryCounter struct {
	mu sync.Mutex
	m  map[string]uint64
}

var _ Counter = (*MemoryCounter)(nil)

func (c *MemoryCounter) Get(ctx context.Context, id string) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id], nil
}

func (c *MemoryCounter) Increment(ctx context.Context, id string) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]uint64)
	}
	c.m[id]++
	return c.m[id], nil
}

// FileCounter is a Counter kept in files in a directory, one per id, each
// replaced atomically on increment (write, fsync, rename, fsync directory).
//
// It is only as trustworthy as that directory: whoever can write it can set
// the counters back. On the sim back-end it lives in the platform state
// directory, so it catches a host that replays a protected file without also
// rolling back the platform state, and nothing more. Use a hardware or remote
// monotonic counter against a host that controls all storage. It is safe for
// concurrent use, also by several processes sharing the directory (on Linux
// and the BSDs, through an flock(2) on the file counter.lock there: each
// increment is a locked read, write and rename).
type FileCounter struct {
	dir string
	mu  sync.Mutex
}

var _ Counter = (*FileCounter)(nil)

// NewFileCounter returns a FileCounter in dir, which must exist.
func NewFileCounter(dir string) *FileCounter { return &FileCounter{dir: dir} }

// path names the counter file by a hash of id, so any id is a safe file name.
func (c *FileCounter) path(id string) string {
	h := sha256.Sum256([]byte(id))
	return filepath.Join(c.dir, "counter-"+hex.EncodeToString(h[:16]))
}

func (c *FileCounter) Get(ctx context.Context, id string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := c.lock(false)
	if err != nil {
		return 0, err
	}
	defer unlock()
	return c.read(id)
}

// lockName is the file in the directory that processes lock around counter
// updates.
const lockName = "counter.lock"

// lock takes the directory's inter-process lock: exclusive to increment,
// shared to read.
func (c *FileCounter) lock(exclusive bool) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(c.dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage: locking counters: %w", err)
	}
	if err := lockFile(f, exclusive); err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: locking counters: %w", err)
	}
	return func() { f.Close() }, nil
}

func (c *FileCounter) read(id string) (uint64, error) {
	b, err := os.ReadFile(c.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storage: reading counter: %w", err)
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("storage: counter file is %d bytes, want 8: %w", len(b), ErrMalformed)
	}
	return binary.BigEndian.Uint64(b), nil
}

func (c *FileCounter) Increment(ctx context.Context, id string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := c.lock(true)
	if err != nil {
		return 0, err
	}
	defer unlock()
	v, err := c.read(id)
	if err != nil {
		return 0, err
	}
	v++
	p := c.path(id)
	tmp := p + ".tmp"
	if err := writeSync(tmp, binary.BigEndian.AppendUint64(nil, v)); err != nil {
		return 0, fmt.Errorf("storage: writing counter: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return 0, fmt.Errorf("storage: writing counter: %w", err)
	}
	if err := (dirFS{dir: c.dir}).syncDir(); err != nil {
		return 0, fmt.Errorf("storage: writing counter: %w", err)
	}
	return v, nil
}

func writeSync(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
