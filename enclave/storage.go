package enclave

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/asylo-go/asylo/internal/wire"
	"github.com/asylo-go/asylo/storage"
)

// Storage returns the enclave's view of untrusted storage (the host's LoadConfig.StorageDir) and
// the platform's monotonic counter, for package storage. The host sees and controls everything
// stored there: use OpenFile, which encrypts and authenticates, rather than the raw files.
func Storage(ctx context.Context) (storage.UntrustedFS, storage.Counter, error) {
	s := serverFrom(ctx)
	if s == nil {
		return nil, nil, fmt.Errorf("enclave: Storage called outside an enclave call")
	}
	return hostFS{s}, hostCounter{s}, nil
}

// storageKeyFile holds the enclave's storage key, sealed (to the signer when the enclave is
// signed, so upgrades keep their files; to the measurement otherwise).
const storageKeyFile = "asylo-storage.key"

// OpenFile opens the secure file name in the enclave's storage (package storage: confidential,
// integrity-protected, crash-consistent, with rollback detection by the platform's counter),
// creating it if create is true and it does not exist. Its key is the enclave's storage key,
// created on first use and kept sealed in the storage itself.
func OpenFile(ctx context.Context, name string, create bool) (*storage.File, error) {
	fsys, counter, err := Storage(ctx)
	if err != nil {
		return nil, err
	}
	key, err := storageKey(ctx, fsys)
	if err != nil {
		return nil, err
	}
	opts := storage.Options{Counter: counter}
	f, err := storage.Open(ctx, fsys, name, key, opts)
	if create && errors.Is(err, fs.ErrNotExist) {
		f, err = storage.Create(ctx, fsys, name, key, opts)
	}
	return f, err
}

func storageKey(ctx context.Context, fsys storage.UntrustedFS) ([]byte, error) {
	s := serverFrom(ctx)
	s.storageMu.Lock()
	defer s.storageMu.Unlock()
	if s.storageKey != nil {
		return s.storageKey, nil
	}
	sl, err := Sealer(ctx)
	if err != nil {
		return nil, err
	}
	ad := []byte(storageKeyFile)
	blob, err := readAll(ctx, fsys, storageKeyFile)
	switch {
	case err == nil:
		key, err := sl.Unseal(ctx, blob, ad)
		if err != nil {
			return nil, fmt.Errorf("enclave: storage key: %w", err)
		}
		s.storageKey = key
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("enclave: storage key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	seal := sl.SealToMeasurement
	if sl.Identity().Signed {
		seal = sl.SealToSigner
	}
	if blob, err = seal(key, ad); err != nil {
		return nil, err
	}
	// Write beside, then rename into place: a crash leaves no half-written key file.
	tmp := storageKeyFile + ".tmp"
	if err := writeAll(ctx, fsys, tmp, blob); err != nil {
		return nil, fmt.Errorf("enclave: storage key: %w", err)
	}
	if err := fsys.Rename(ctx, tmp, storageKeyFile); err != nil {
		return nil, fmt.Errorf("enclave: storage key: %w", err)
	}
	s.storageKey = key
	return key, nil
}

const maxKeyFile = 4096

func readAll(ctx context.Context, fsys storage.UntrustedFS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(ctx, name, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := f.Size(ctx)
	if err != nil {
		return nil, err
	}
	if n <= 0 || n > maxKeyFile {
		return nil, fmt.Errorf("%s is %d bytes", name, n)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(ctx, b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

func writeAll(ctx context.Context, fsys storage.UntrustedFS, name string, b []byte) error {
	f, err := fsys.OpenFile(ctx, name, true)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(ctx, 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(ctx, b, 0); err != nil {
		return err
	}
	return f.Sync(ctx)
}

// hostFS is storage.UntrustedFS over host calls. Every answer is checked for shape; the
// storage package checks content.
type hostFS struct{ s *server }

func (h hostFS) OpenFile(ctx context.Context, name string, create bool) (storage.UntrustedFile, error) {
	b, err := h.s.hostCall(ctx, wire.OpFSOpen, wire.AppendFSRequest(nil, wire.OpFSOpen, wire.FSRequest{Name: name, Create: create}))
	if err != nil {
		return nil, err
	}
	if len(b) != 4 {
		return nil, fmt.Errorf("enclave: %w: file handle of %d bytes", wire.ErrProtocol, len(b))
	}
	return &hostFile{s: h.s, handle: binary.LittleEndian.Uint32(b)}, nil
}

func (h hostFS) Rename(ctx context.Context, oldName, newName string) error {
	_, err := h.s.hostCall(ctx, wire.OpFSRename, wire.AppendFSRequest(nil, wire.OpFSRename, wire.FSRequest{Name: oldName, NewName: newName}))
	return err
}

func (h hostFS) Remove(ctx context.Context, name string) error {
	_, err := h.s.hostCall(ctx, wire.OpFSRemove, wire.AppendFSRequest(nil, wire.OpFSRemove, wire.FSRequest{Name: name}))
	return err
}

type hostFile struct {
	s      *server
	handle uint32
}

func (f *hostFile) call(ctx context.Context, op wire.Op, r wire.FSRequest) ([]byte, error) {
	r.Handle = f.handle
	return f.s.hostCall(ctx, op, wire.AppendFSRequest(nil, op, r))
}

func (f *hostFile) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("enclave: negative offset")
	}
	n := 0
	for n < len(p) {
		want := min(len(p)-n, wire.MaxFileIO)
		b, err := f.call(ctx, wire.OpFSRead, wire.FSRequest{Offset: uint64(off) + uint64(n), Length: uint32(want)})
		if err != nil {
			return n, err
		}
		if len(b) > want {
			return n, fmt.Errorf("enclave: %w: read returned %d bytes, asked %d", wire.ErrProtocol, len(b), want)
		}
		n += copy(p[n:], b)
		if len(b) < want {
			return n, io.EOF
		}
	}
	return n, nil
}

func (f *hostFile) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("enclave: negative offset")
	}
	n := 0
	for n < len(p) {
		chunk := p[n:min(len(p), n+wire.MaxFileIO)]
		b, err := f.call(ctx, wire.OpFSWrite, wire.FSRequest{Offset: uint64(off) + uint64(n), Data: chunk})
		if err != nil {
			return n, err
		}
		if len(b) != 4 || binary.LittleEndian.Uint32(b) != uint32(len(chunk)) {
			return n, fmt.Errorf("enclave: %w: short or malformed write answer", wire.ErrProtocol)
		}
		n += len(chunk)
	}
	return n, nil
}

func (f *hostFile) Truncate(ctx context.Context, size int64) error {
	if size < 0 {
		return fmt.Errorf("enclave: negative size")
	}
	_, err := f.call(ctx, wire.OpFSTruncate, wire.FSRequest{Offset: uint64(size)})
	return err
}

func (f *hostFile) Sync(ctx context.Context) error {
	_, err := f.call(ctx, wire.OpFSSync, wire.FSRequest{})
	return err
}

func (f *hostFile) Size(ctx context.Context) (int64, error) {
	b, err := f.call(ctx, wire.OpFSSize, wire.FSRequest{})
	if err != nil {
		return 0, err
	}
	if len(b) != 8 || binary.LittleEndian.Uint64(b) > 1<<62 {
		return 0, fmt.Errorf("enclave: %w: malformed size answer", wire.ErrProtocol)
	}
	return int64(binary.LittleEndian.Uint64(b)), nil
}

func (f *hostFile) Close() error {
	_, err := f.call(context.Background(), wire.OpFSClose, wire.FSRequest{})
	return err
}

// hostCounter is storage.Counter over the platform's counters.
type hostCounter struct{ s *server }

func (c hostCounter) Get(ctx context.Context, id string) (uint64, error) {
	return c.do(ctx, wire.OpCounterGet, id)
}

func (c hostCounter) Increment(ctx context.Context, id string) (uint64, error) {
	return c.do(ctx, wire.OpCounterInc, id)
}

func (c hostCounter) do(ctx context.Context, op wire.Op, id string) (uint64, error) {
	b, err := c.s.hostCall(ctx, op, wire.AppendFSRequest(nil, op, wire.FSRequest{Name: id}))
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("enclave: %w: counter answer of %d bytes", wire.ErrProtocol, len(b))
	}
	return binary.LittleEndian.Uint64(b), nil
}
