package signing_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/identity/signing"
)

// Sign an enclave image, write its manifest beside it, and verify it the way
// a loader does.
func Example() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	binary := filepath.Join(dir, "enclave")
	if err := os.WriteFile(binary, []byte("enclave image bytes"), 0o755); err != nil {
		log.Fatal(err)
	}

	// Signer side: the key lives in a PEM file (MarshalPEM), the manifest
	// goes beside the binary.
	key, err := signing.GenerateKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	m, err := identity.MeasureFile(binary)
	if err != nil {
		log.Fatal(err)
	}
	manifest, err := signing.Sign(key, m, 7, 2, false)
	if err != nil {
		log.Fatal(err)
	}
	data, err := manifest.Marshal()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(signing.ManifestPath(binary), data, 0o644); err != nil {
		log.Fatal(err)
	}

	// Loader side.
	loaded, err := signing.LoadManifestFile(signing.ManifestPath(binary))
	if errors.Is(err, fs.ErrNotExist) {
		log.Fatal("unsigned enclave: load only in debug mode")
	} else if err != nil {
		log.Fatal(err) // present but unreadable or malformed: refuse to load
	}
	id, err := loaded.Verify(m)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed:", id.Signed, "by our key:", id.SignerID == key.SignerID())
	fmt.Println("product:", id.ProductID, "svn:", id.SVN, "debug:", id.Debug)

	// Verify against another build's measurement.
	_, err = loaded.Verify(identity.Measurement{1})
	fmt.Println("other build refused:", errors.Is(err, signing.ErrMeasurementMismatch))
	// Output:
	// signed: true by our key: true
	// product: 7 svn: 2 debug: false
	// other build refused: true
}
