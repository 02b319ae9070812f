package identity

import (
	"fmt"
	"os"

	"github.com/asylo-go/asylo/internal/regularfile"
)

// MeasureFile returns the measurement of the regular file at path: the
// SHA-256 of its bytes, equal to `sha256sum path`. A loader should measure
// the bytes it actually loads (read them once, then Measure), not measure a
// file by name and open it again.
func MeasureFile(path string) (Measurement, error) {
	f, err := os.Open(path)
	if err != nil {
		return Measurement{}, fmt.Errorf("identity: measure: %w", err)
	}
	defer f.Close()
	if err := regularfile.Check(f); err != nil {
		return Measurement{}, fmt.Errorf("identity: measure: %w", err)
	}
	m, _, err := Measure(f)
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
