package host

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/asylo-go/asylo/internal/wire"
)

// An enclave reaches only files inside StorageDir, and only through handles it was given.
func TestHostFilesConfinement(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(filepath.Dir(dir), "outside"), []byte("secret"), 0o600)
	h := newHostFiles(dir)
	defer h.closeAll()
	ctx := context.Background()
	open := func(name string) (wire.Status, []byte) {
		return h.serve(ctx, nil, wire.OpFSOpen, wire.AppendFSRequest(nil, wire.OpFSOpen, wire.FSRequest{Name: name, Create: true}))
	}
	for _, name := range []string{"..", "../outside", "a/b", "/etc/passwd", ".", ""} {
		if st, _ := open(name); st == wire.StatusOK {
			t.Errorf("opened %q", name)
		}
	}
	st, b := open("ok")
	if st != wire.StatusOK || len(b) != 4 {
		t.Fatalf("open ok: %v %q", st, b)
	}
	hd := binary.LittleEndian.Uint32(b)
	if st, _ := h.serve(ctx, nil, wire.OpFSSize, wire.AppendFSRequest(nil, wire.OpFSSize, wire.FSRequest{Handle: hd + 1})); st != wire.StatusInvalidArgument {
		t.Errorf("unknown handle: %v", st)
	}
	if st, _ := h.serve(ctx, nil, wire.OpFSOpen, wire.AppendFSRequest(nil, wire.OpFSOpen, wire.FSRequest{Name: "missing"})[:1]); st != wire.StatusInvalidArgument {
		t.Errorf("empty name: %v", st)
	}
	if st, _ := h.serve(ctx, nil, wire.OpFSOpen, append([]byte{0}, "missing"...)); st != wire.StatusNotFound {
		t.Errorf("missing file without create: %v", st)
	}
	if st, _ := newHostFiles("").serve(ctx, nil, wire.OpFSOpen, append([]byte{1}, "x"...)); st != wire.StatusUnimplemented {
		t.Errorf("no storage dir: %v", st)
	}
}
