package host

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// interruptReader is the host's reading side of a channel that has read deadlines (a socket):
// it lets a caller that reads its own result block in Read and still return when its context
// ends, without ever cutting a frame in two. A caller arms it only between frames (nothing of
// the next frame has been read); once Read returns data, it is disarmed, so an interruption can
// only end a wait in which nothing was consumed.
type interruptReader struct {
	r  io.Reader
	dl interface{ SetReadDeadline(time.Time) error }

	armed atomic.Uint64 // the caller (its call id) that may be interrupted, 0 for none
	mu    sync.Mutex    // orders arming, interrupting and disarming
	fired bool          // a deadline in the past is set on the channel
}

func (ir *interruptReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 && ir.armed.Load() != 0 {
		ir.disarm()
	}
	return n, err
}

// arm makes the next wait interruptible by interrupt(id).
func (ir *interruptReader) arm(id uint64) {
	ir.mu.Lock()
	ir.armed.Store(id)
	ir.mu.Unlock()
}

// disarm ends interruptibility and clears a deadline that an interruption set. It reports
// whether an interruption happened since arm.
func (ir *interruptReader) disarm() bool {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	ir.armed.Store(0)
	fired := ir.fired
	if fired {
		ir.dl.SetReadDeadline(time.Time{})
		ir.fired = false
	}
	return fired
}

// interrupt ends the wait of caller id, if it is armed.
func (ir *interruptReader) interrupt(id uint64) {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	if ir.armed.Load() == id && !ir.fired {
		ir.fired = true
		ir.dl.SetReadDeadline(time.Unix(1, 0))
	}
}
