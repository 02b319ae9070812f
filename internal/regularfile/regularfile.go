// Package regularfile opens files that must be regular files: an enclave image or manifest given
// as a directory, device or pipe could block a reader or never end.
package regularfile

import (
	"fmt"
	"os"
)

// Check returns an error if f is not a regular file.
func Check(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (mode %s)", f.Name(), fi.Mode().Type())
	}
	return nil
}
