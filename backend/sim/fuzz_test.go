//go:build linux

package sim_test

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/identity"
)

// FuzzLoadImage: whatever file it is given, LoadImage returns an error that says it is not an
// enclave, or an image whose measurement is that of the file's bytes; it never panics (it parses
// the ELF headers to check the architecture and find a program interpreter).
func FuzzLoadImage(f *testing.F) {
	img, err := os.ReadFile(testEnclave(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(img)                         // an image LoadImage accepts, so that the seeds check its measurement
	f.Add(img[:min(len(img), 64<<10)]) // headers intact, sections cut off: refused
	f.Add([]byte("\x7fELF"))
	f.Add([]byte("#!/bin/sh\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "image")
		if err := os.WriteFile(path, data, 0o755); err != nil {
			t.Fatal(err)
		}
		im, err := sim.LoadImage(path)
		if err != nil {
			if !errors.Is(err, backend.ErrNotEnclave) {
				t.Fatalf("LoadImage: %v, want ErrNotEnclave", err)
			}
			return
		}
		defer im.Close()
		if im.Measurement != identity.Measurement(sha256.Sum256(data)) || im.Size != int64(len(data)) {
			t.Fatalf("measured %s over %d bytes, not the file's", im.Measurement, im.Size)
		}
	})
}
