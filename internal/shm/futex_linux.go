package shm

import (
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The futex words live in a MAP_SHARED mapping used by two processes, so the
// non-private operations (FUTEX_WAIT / FUTEX_WAKE without FUTEX_PRIVATE_FLAG)
// are required: the kernel keys them by (inode, offset).
const (
	futexWaitOp = 0 // FUTEX_WAIT
	futexWakeOp = 1 // FUTEX_WAKE
)

// statSlept and statEagain count futex waits that slept until woken and that
// returned EAGAIN (only used by tests to check that the futex path is taken).
var statSlept, statEagain atomic.Int64

// futexWait sleeps while *addr == val, for at most d. Spurious returns are
// fine: callers re-check their condition.
func futexWait(addr *uint32, val uint32, d time.Duration) {
	if atomic.LoadUint32(addr) != val {
		return
	}
	ts := unix.NsecToTimespec(int64(d))
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitOp,
		uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
	switch errno {
	case 0:
		statSlept.Add(1)
	case unix.EAGAIN:
		statEagain.Add(1)
	case unix.ETIMEDOUT, unix.EINTR:
	default:
		// Futex unavailable (e.g. filtered by a sandbox): degrade to polling
		// rather than spinning hot.
		time.Sleep(time.Millisecond)
	}
}

// futexWake wakes all waiters on addr.
func futexWake(addr *uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp, math.MaxInt32, 0, 0, 0)
}
