package signing

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/asylo-go/asylo/identity"
)

func TestManifestPath(t *testing.T) {
	for in, want := range map[string]string{
		"enclave":              "enclave.sig",
		"/opt/app/enclave.elf": "/opt/app/enclave.elf.sig",
		"dir/":                 "dir/.sig",
	} {
		if got := ManifestPath(in); got != want {
			t.Errorf("ManifestPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoadManifestFile(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "enclave")
	image := []byte("\x7fELF pretend enclave image")
	if err := os.WriteFile(bin, image, 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := identity.MeasureFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if m != sha256.Sum256(image) {
		t.Fatalf("MeasureFile = %s, want SHA-256 of the bytes", m)
	}

	// Absent: unsigned.
	_, err = LoadManifestFile(ManifestPath(bin))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadManifestFile(absent) = %v, want fs.ErrNotExist", err)
	}
	if errors.Is(err, ErrMalformedManifest) {
		t.Errorf("absent manifest reported as malformed: %v", err)
	}

	// Present and valid.
	k, _ := GenerateKey(nil)
	mf, err := Sign(k, m, 9, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := mf.Marshal()
	if err := os.WriteFile(ManifestPath(bin), data, 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadManifestFile(ManifestPath(bin))
	if err != nil {
		t.Fatal(err)
	}
	id, err := loaded.Verify(m)
	if err != nil || !id.Signed || id.ProductID != 9 || id.SVN != 3 || id.SignerID != k.SignerID() {
		t.Fatalf("Verify = %+v, %v", id, err)
	}

	// The image changed after signing.
	if err := os.WriteFile(bin, append(image, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	m2, _ := identity.MeasureFile(bin)
	if _, err := loaded.Verify(m2); !errors.Is(err, ErrMeasurementMismatch) {
		t.Errorf("Verify(rebuilt image) = %v, want ErrMeasurementMismatch", err)
	}

	// Oversize and corrupt files.
	big := filepath.Join(dir, "big.sig")
	os.WriteFile(big, append(bytes.TrimSpace(data), bytes.Repeat([]byte(" "), 2*MaxManifestSize)...), 0o644)
	if _, err := LoadManifestFile(big); !errors.Is(err, ErrMalformedManifest) {
		t.Errorf("LoadManifestFile(oversize) = %v, want ErrMalformedManifest", err)
	}
	bad := filepath.Join(dir, "bad.sig")
	os.WriteFile(bad, data[:20], 0o644)
	if _, err := LoadManifestFile(bad); !errors.Is(err, ErrMalformedManifest) {
		t.Errorf("LoadManifestFile(truncated) = %v, want ErrMalformedManifest", err)
	}

	// A directory is neither a manifest nor an image.
	if _, err := LoadManifestFile(dir); !errors.Is(err, ErrMalformedManifest) {
		t.Errorf("LoadManifestFile(dir) = %v, want ErrMalformedManifest", err)
	}
	if _, err := identity.MeasureFile(dir); err == nil {
		t.Error("identity.MeasureFile(dir) succeeded")
	}
	if _, err := identity.MeasureFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("identity.MeasureFile(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadVectorFiles(t *testing.T) {
	for _, v := range vectors {
		mf, err := LoadManifestFile(v.sigFile)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mf.Verify(vectorMeasurement(t)); err != nil {
			t.Errorf("%s: %v", v.sigFile, err)
		}
	}
}
