package enclave

import (
	"encoding/binary"
	"io"
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

// watchdog is the state shared by the reading goroutine and whoever makes it hand reading off:
// the attention goroutine (attend), or the watchdog goroutine (run) when there is no attention
// channel.
type watchdog struct {
	cur     atomic.Pointer[call]
	starts  atomic.Uint64 // calls started inline, to tell a busy enclave from an idle one
	running atomic.Bool   // the watchdog goroutine is ticking
	kick    chan struct{}

	// With an attention channel (design note 17) nothing ticks: the host notifies the enclave
	// when it sends a frame while calls are in flight, with the number of frames it has sent.
	attentive atomic.Bool
	sent      atomic.Uint64 // the highest count of frames sent the host notified
}

// start records c as running inline and makes sure someone will hand reading off if c holds it
// up. read is the number of frames read so far.
func (w *watchdog) start(c *call, read uint64) {
	w.cur.Store(c)
	if w.attentive.Load() {
		// A frame the host sent is still unread, and c would hold it up: hand reading off.
		// This load follows the store of cur, and attend stores sent before it loads cur, so
		// one of the two sees the other.
		if read < w.sent.Load() {
			c.handoff()
		}
		return
	}
	w.starts.Add(1)
	w.wake()
}

// wake makes sure the watchdog goroutine ticks.
func (w *watchdog) wake() {
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

// attend reads the attention channel (docs/wire.md, "Attention"). Each notification carries the
// number of frames the host had sent when it wrote it: if some are still unread while a call runs
// on the reading goroutine, that call hands reading off. If the channel fails or carries anything
// but 8-byte notifications, the watchdog takes over.
func (s *server) attend(r io.Reader) {
	var buf [16]byte
	for {
		n, err := r.Read(buf[:])
		if err != nil || n != 8 {
			s.watch.attentive.Store(false)
			s.watch.wake() // a call running now is watched from here on
			return
		}
		sent := binary.LittleEndian.Uint64(buf[:8])
		for {
			old := s.watch.sent.Load()
			if sent <= old || s.watch.sent.CompareAndSwap(old, sent) {
				break
			}
		}
		if c := s.watch.cur.Load(); c != nil && s.conn.FramesRead() < sent {
			c.handoff()
		}
	}
}
