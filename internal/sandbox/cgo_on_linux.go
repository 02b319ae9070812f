//go:build linux && cgo

package sandbox

// buildCgo mirrors the build constraint libpsx uses to choose its
// implementation: with cgo it enumerates threads through /proc/<getpid()>/task
// and signals them; without cgo it uses syscall.AllThreadsSyscall.
const buildCgo = true
