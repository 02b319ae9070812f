package enclave

import (
	"sync/atomic"
	"time"
)

// Calls run on the goroutine that read them (design note 9): a call that finishes quickly then
// costs no goroutine hand-off, which on small VMs is a cross-CPU thread wake-up of 10-20 µs.
// Someone must still read while a call runs long (other calls, CANCEL for this one), so a
// watchdog hands reading to a new goroutine once a call has run inline across two of its ticks.
//
// The watchdog ticks instead of arming a timer per call because arming a timer that is the
// earliest one pending makes the Go runtime wake its network poller thread to shorten its
// sleep: that wake-up cost more than the call itself (docs/benchmarks.md). The ticker runs only
// while calls arrive and stops after watchIdleTicks quiet ticks.
const (
	// watchTick: a call runs inline for between one and two ticks before another goroutine
	// starts reading.
	watchTick = 250 * time.Microsecond
	// watchIdleTicks: quiet ticks before the watchdog parks (20 ms).
	watchIdleTicks = 80
)

// handoff starts a new reading goroutine, once, unless the call has already ended.
func (c *call) handoff() {
	if c.claimed.CompareAndSwap(false, true) {
		go c.s.reader()
	}
}

// watchdog is the state shared by the reading goroutine and the watchdog goroutine.
type watchdog struct {
	cur     atomic.Pointer[call]
	starts  atomic.Uint64 // calls started inline, to tell a busy enclave from an idle one
	running atomic.Bool   // the watchdog goroutine is ticking
	kick    chan struct{}
}

// start records c as running inline and makes sure the watchdog ticks.
func (w *watchdog) start(c *call) {
	w.cur.Store(c)
	w.starts.Add(1)
	if !w.running.Load() && w.running.CompareAndSwap(false, true) {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// end records that c no longer runs inline.
func (w *watchdog) end(c *call) { w.cur.CompareAndSwap(c, nil) }

// run is the watchdog goroutine; it returns when stop is closed.
func (w *watchdog) run(stop <-chan struct{}) {
	for {
		select {
		case <-w.kick:
		case <-stop:
			return
		}
		t := time.NewTicker(watchTick)
		quiet, last := 0, w.starts.Load()
		for quiet < watchIdleTicks {
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
				return
			}
			if c := w.cur.Load(); c != nil && c.seen.Swap(true) {
				c.handoff()
			}
			// A call whose reading was handed off no longer needs watching: through a long
			// call, the watchdog parks instead of ticking.
			cur := w.cur.Load()
			if n := w.starts.Load(); n != last || (cur != nil && !cur.claimed.Load()) {
				quiet, last = 0, n
			} else {
				quiet++
			}
		}
		t.Stop()
		w.running.Store(false)
		// A call that started between the last check and running=false found the watchdog
		// running and did not kick it: look again before parking.
		if cur := w.cur.Load(); cur != nil && !cur.claimed.Load() && w.running.CompareAndSwap(false, true) {
			select {
			case w.kick <- struct{}{}:
			default:
			}
		}
	}
}
