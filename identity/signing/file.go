package signing

import (
	"fmt"
	"io"
	"os"

	"github.com/asylo-go/asylo/internal/regularfile"
)

// ManifestPath returns the path of the manifest of the enclave binary at
// binaryPath: binaryPath with ManifestSuffix (".sig") appended.
func ManifestPath(binaryPath string) string {
	return binaryPath + ManifestSuffix
}

// LoadManifestFile reads and parses the manifest at path (see ManifestPath).
// When the file does not exist the error satisfies errors.Is(err,
// fs.ErrNotExist): the enclave is unsigned, and loads only in debug mode
// (docs/identity.md §5). Any other error means the enclave must not load.
// It does not verify the signature: call Verify.
func LoadManifestFile(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("signing: load signature manifest: %w", err)
	}
	defer f.Close()
	if err := regularfile.Check(f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedManifest, err)
	}
	// Read one byte past the limit so ParseManifest reports oversize input.
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("signing: load signature manifest: %w", err)
	}
	mf, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return mf, nil
}
