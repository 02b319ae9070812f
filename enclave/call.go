package enclave

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asylo-go/asylo/internal/wire"
)

// call is one INIT, RUN, CALL or FINALIZE in flight, and also the context its code runs with.
// One object per call instead of what context.WithCancel, context.WithValue, a closure and the
// inline-run state cost separately: five allocations, and about a third of the enclave's work
// for a small call (docs/benchmarks.md, target 2).
//
// It behaves as a context from context.WithCancel (or WithTimeout, when the host sent a
// deadline) of the server's base context: Done is closed and Err set when the host cancels the
// call, its deadline passes, the base context ends, or the call has answered.
type call struct {
	s       *server
	id      uint64
	req     wire.Request
	handler HandlerFunc // CALL only
	body    []byte      // the frame body, given back to s.spare after answering if borrowed

	deadline   time.Time
	timer      *time.Timer // fires at deadline, once someone waits on Done
	stopParent func() bool // stops the base context's AfterFunc, if it can end

	mu   sync.Mutex
	done chan struct{} // made on first Done, or closedChan if cancelled before
	err  error

	// Inline-run state (inline.go).
	claimed atomic.Bool // reading was handed off, or the call ended: whichever came first
	seen    atomic.Bool // the watchdog saw it at one tick already

	kind     wire.Kind // (last, with the flags: c fits the 192-byte size class)
	borrowed bool
	expires  bool // the deadline is the call's own (its timeout), not the base context's
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// arm starts the call's deadline and its link to the base context. Either may fire at once, so
// they are set under c.mu, which cancel takes.
func (c *call) arm() {
	parent := c.s.baseCtx
	if c.req.Timeout <= 0 && parent.Done() == nil {
		// Nothing can end the call but its end (the common case): no lock needed, since
		// nobody else sees c yet.
		c.deadline, _ = parent.Deadline()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := parent.Deadline(); ok {
		c.deadline = d
	}
	if c.req.Timeout > 0 {
		if d := time.Now().Add(c.req.Timeout); c.deadline.IsZero() || d.Before(c.deadline) {
			// No timer yet: Err reads the clock, and Done starts one. A runtime timer per call
			// costs more than its allocation: adding one wakes a thread blocked in the network
			// poller without a timeout, which is where the enclave's idle threads wait
			// (~2 system calls and context switches per call over the socket).
			c.deadline = d
			c.expires = true
		}
	}
	if parent.Done() != nil {
		c.stopParent = context.AfterFunc(parent, func() { c.cancel(parent.Err()) })
	}
}

// cancel ends the context with err, once.
func (c *call) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelLocked(err)
}

func (c *call) cancelLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done == nil {
		c.done = closedChan
	} else {
		close(c.done)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopParent != nil {
		c.stopParent()
	}
}

// Deadline implements context.Context.
func (c *call) Deadline() (time.Time, bool) { return c.deadline, !c.deadline.IsZero() }

// Done implements context.Context.
func (c *call) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err == nil && c.expires {
			if d := time.Until(c.deadline); d > 0 {
				c.timer = time.AfterFunc(d, func() { c.cancel(context.DeadlineExceeded) })
			} else {
				c.cancelLocked(context.DeadlineExceeded)
			}
		}
	}
	return c.done
}

// Err implements context.Context.
func (c *call) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.expires && c.timer == nil && !time.Now().Before(c.deadline) {
		c.cancelLocked(context.DeadlineExceeded)
	}
	return c.err
}

// Value implements context.Context.
func (c *call) Value(key any) any {
	if _, ok := key.(handoffKey); ok {
		return c
	}
	return c.s.baseCtx.Value(key)
}

func (c *call) String() string { return "enclave call context" }

type handoffKey struct{}
