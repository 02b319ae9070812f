package host

// OwnReads is how many callers have taken the read token to read for themselves.
func OwnReads(e *Enclave) uint64 { return e.ownReads.Load() }
