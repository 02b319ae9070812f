//go:build !linux

package seccomppolicy

import "errors"

// Arches is empty off Linux: there is no seccomp.
var Arches []string

// Generate is available on Linux only.
func Generate(goarch string) ([]byte, error) {
	return nil, errors.New("seccomppolicy: generating the seccomp program needs linux")
}
