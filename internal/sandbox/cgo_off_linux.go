//go:build linux && !cgo

package sandbox

// buildCgo: see cgo_on_linux.go.
const buildCgo = false
