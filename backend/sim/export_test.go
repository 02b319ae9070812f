//go:build linux

package sim

import "time"

// PrestartedPid returns the pid of the process waiting for the next enclave, or 0.
func PrestartedPid(b *Backend) int {
	b.prestarted.mu.Lock()
	defer b.prestarted.mu.Unlock()
	if b.prestarted.ready == nil {
		return 0
	}
	return b.prestarted.ready.cmd.Process.Pid
}

// FailPrestart makes every prestarted process started until the returned function is called
// fail with reason.
func FailPrestart(reason string) func() {
	prestartEnv.Store(&[]string{envPrestartFail + "=" + reason})
	return func() { prestartEnv.Store(nil) }
}

// PrestartFailed reports whether the last attempt to prepare a process failed.
func PrestartFailed(b *Backend) bool {
	b.prestarted.mu.Lock()
	defer b.prestarted.mu.Unlock()
	return b.prestarted.lastErr != nil
}

// PrestartExecOnly makes prestarted processes started until the returned function is called
// use exec mode.
func PrestartExecOnly() func() {
	prestartExecOnly.Store(true)
	return func() { prestartExecOnly.Store(false) }
}

// ForgetImages empties b's cache of sealed, measured images, so that the next load of each
// image copies and measures it again.
func ForgetImages(b *Backend) {
	b.imu.Lock()
	defer b.imu.Unlock()
	for k, im := range b.images {
		im.Close()
		delete(b.images, k)
	}
}

// DelayPrestart delays every start of a prestarted process by d until the returned function is
// called.
func DelayPrestart(d time.Duration) func() {
	prestartDelay.Store(int64(d))
	return func() { prestartDelay.Store(0) }
}

// SpawnerDiesAfterFork makes every spawner started until the returned function is called exit
// after starting an enclave, before it reports the pid.
func SpawnerDiesAfterFork() func() {
	prestartEnv.Store(&[]string{envSpawnerDie + "=1"})
	return func() { prestartEnv.Store(nil) }
}

// Exited reports whether the child pid has ended, without reaping it.
func Exited(pid int) bool { return exited(pid) }

// ScanProcForChildren makes the host find a spawner's strays by scanning /proc, as on a kernel
// without CONFIG_PROC_CHILDREN; the returned function undoes it.
func ScanProcForChildren() func() {
	scanProcForChildren.Store(true)
	return func() { scanProcForChildren.Store(false) }
}
