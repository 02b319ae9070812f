package sim

// PrestartedPid returns the pid of the process waiting for the next enclave, or 0.
func PrestartedPid(b *Backend) int {
	b.prestarted.mu.Lock()
	defer b.prestarted.mu.Unlock()
	if b.prestarted.ready == nil {
		return 0
	}
	return b.prestarted.ready.cmd.Process.Pid
}
