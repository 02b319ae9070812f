package host

import (
	"sync"
	"time"
)

// interrupter lets the end of a caller's context interrupt that caller's blocking Read of the
// channel (readOwn), through a read deadline. Only the caller that holds the read token may be
// interrupted: a late interruption, after that caller has gone, does nothing. The frame reader
// resumes an interrupted frame on its next call (wire.Conn.ReadFrameInto), so an interruption
// may come at any byte.
type interrupter struct {
	dl interface{ SetReadDeadline(time.Time) error }

	mu    sync.Mutex
	owner uint64 // the call id of the caller reading, 0 for none
	fired bool   // a deadline in the past is set on the channel
}

// own makes the reading caller id interruptible.
func (ir *interrupter) own(id uint64) {
	ir.mu.Lock()
	ir.owner = id
	ir.mu.Unlock()
}

// release ends id's ownership, clears a deadline its interruption set, and reports whether it
// was interrupted.
func (ir *interrupter) release() bool {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	ir.owner = 0
	fired := ir.fired
	if fired {
		ir.dl.SetReadDeadline(time.Time{})
		ir.fired = false
	}
	return fired
}

// interrupt ends the Read of caller id, if it still reads.
func (ir *interrupter) interrupt(id uint64) {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	if ir.owner == id && !ir.fired {
		ir.fired = true
		ir.dl.SetReadDeadline(time.Unix(1, 0))
	}
}
