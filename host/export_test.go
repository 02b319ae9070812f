package host

// OwnReads is how many callers have taken the read token to read for themselves.
func OwnReads(e *Enclave) uint64 { return e.ownReads.Load() }

// Notifications is how many times the host notified the enclave's attention channel.
func Notifications(e *Enclave) uint64 { return e.notified.Load() }

// Pending is the number of calls whose RESULT has not been read.
func Pending(e *Enclave) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending)
}
