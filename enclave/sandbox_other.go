//go:build !linux

package enclave

// Enclaves are sandboxed by the sim back-end, which runs on Linux only; elsewhere an enclave
// runs in-process (backend/inprocess), with no sandbox to report on.
var sandboxWarnings []string
