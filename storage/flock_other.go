//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package storage

import "os"

// lockFile is a no-op here: FileCounter is then safe within one process only.
func lockFile(*os.File, bool) error { return nil }
