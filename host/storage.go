package host

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"sync"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/internal/wire"
	"github.com/asylo-go/asylo/storage"
)

// maxOpenFiles bounds the host files one enclave may hold open.
const maxOpenFiles = 256

// hostFiles serves the storage host calls of one enclave over LoadConfig.StorageDir. It moves
// opaque bytes: the enclave encrypts and authenticates what it stores.
type hostFiles struct {
	fsys storage.UntrustedFS // nil: no storage configured

	mu    sync.Mutex
	next  uint32
	files map[uint32]storage.UntrustedFile
}

func newHostFiles(dir string) *hostFiles {
	h := &hostFiles{files: map[uint32]storage.UntrustedFile{}}
	if dir != "" {
		h.fsys = storage.DirFS(dir)
	}
	return h
}

func (h *hostFiles) file(id uint32) (storage.UntrustedFile, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[id]
	return f, ok
}

func (h *hostFiles) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, f := range h.files {
		f.Close()
		delete(h.files, id)
	}
}

func errStatus(err error) (wire.Status, []byte) {
	if errors.Is(err, fs.ErrNotExist) {
		return wire.StatusNotFound, []byte(wire.TruncateMessage(err.Error()))
	}
	return wire.StatusApplication, []byte(wire.TruncateMessage(err.Error()))
}

// serve answers one storage or counter op.
func (h *hostFiles) serve(ctx context.Context, inst backend.Instance, op wire.Op, body []byte) (wire.Status, []byte) {
	r, err := wire.ParseFSRequest(op, body)
	if err != nil {
		return wire.StatusInvalidArgument, []byte(wire.TruncateMessage(err.Error()))
	}
	if op == wire.OpCounterGet || op == wire.OpCounterInc {
		c, ok := inst.(backend.MonotonicCounter)
		if !ok {
			return wire.StatusUnimplemented, []byte("this back-end has no monotonic counter")
		}
		var v uint64
		if op == wire.OpCounterGet {
			v, err = c.CounterGet(ctx, r.Name)
		} else {
			v, err = c.CounterIncrement(ctx, r.Name)
		}
		if err != nil {
			return errStatus(err)
		}
		return wire.StatusOK, binary.LittleEndian.AppendUint64(nil, v)
	}
	if h.fsys == nil {
		return wire.StatusUnimplemented, []byte("no storage directory configured (host.LoadConfig.StorageDir)")
	}
	switch op {
	case wire.OpFSOpen:
		h.mu.Lock()
		full := len(h.files) >= maxOpenFiles
		h.mu.Unlock()
		if full {
			return wire.StatusResourceExhausted, []byte("too many open files")
		}
		f, err := h.fsys.OpenFile(ctx, r.Name, r.Create)
		if err != nil {
			return errStatus(err)
		}
		h.mu.Lock()
		h.next++
		id := h.next
		h.files[id] = f
		h.mu.Unlock()
		return wire.StatusOK, binary.LittleEndian.AppendUint32(nil, id)
	case wire.OpFSRename:
		if err := h.fsys.Rename(ctx, r.Name, r.NewName); err != nil {
			return errStatus(err)
		}
		return wire.StatusOK, nil
	case wire.OpFSRemove:
		if err := h.fsys.Remove(ctx, r.Name); err != nil {
			return errStatus(err)
		}
		return wire.StatusOK, nil
	}
	f, ok := h.file(r.Handle)
	if !ok {
		return wire.StatusInvalidArgument, []byte("unknown file handle")
	}
	switch op {
	case wire.OpFSRead:
		buf := make([]byte, r.Length)
		n, err := f.ReadAt(ctx, buf, int64(r.Offset))
		if err != nil && !errors.Is(err, io.EOF) {
			return errStatus(err)
		}
		return wire.StatusOK, buf[:n]
	case wire.OpFSWrite:
		n, err := f.WriteAt(ctx, r.Data, int64(r.Offset))
		if err != nil {
			return errStatus(err)
		}
		return wire.StatusOK, binary.LittleEndian.AppendUint32(nil, uint32(n))
	case wire.OpFSTruncate:
		err = f.Truncate(ctx, int64(r.Offset))
	case wire.OpFSSync:
		err = f.Sync(ctx)
	case wire.OpFSSize:
		n, err := f.Size(ctx)
		if err != nil {
			return errStatus(err)
		}
		return wire.StatusOK, binary.LittleEndian.AppendUint64(nil, uint64(n))
	case wire.OpFSClose:
		h.mu.Lock()
		delete(h.files, r.Handle)
		h.mu.Unlock()
		err = f.Close()
	}
	if err != nil {
		return errStatus(err)
	}
	return wire.StatusOK, nil
}
