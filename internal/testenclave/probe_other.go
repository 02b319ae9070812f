//go:build !linux

package testenclave

import (
	"context"
	"errors"
)

// Probe tries the actions the sim sandbox forbids; the sandbox exists on Linux only.
func Probe(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("testenclave: the sandbox probe runs on Linux only")
}
