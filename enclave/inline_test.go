package enclave

import (
	"testing"
	"time"
)

// Through a long call whose reading was handed off, the watchdog must park instead of ticking
// (4,000 wake-ups a second otherwise, for as long as the call runs).
func TestWatchdogParksDuringHandedOffCall(t *testing.T) {
	w := &watchdog{kick: make(chan struct{}, 1)}
	stop := make(chan struct{})
	defer close(stop)
	go w.run(stop)
	c := &call{}
	c.claimed.Store(true) // handed off: another goroutine reads
	w.start(c, 0)
	deadline := time.Now().Add(5 * time.Second)
	for w.running.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the watchdog never parked")
		}
		time.Sleep(time.Millisecond)
	}
	for range 50 {
		time.Sleep(time.Millisecond)
		if w.running.Load() {
			t.Fatal("the watchdog started ticking again for a handed-off call")
		}
	}
	// A call that still runs on the reading goroutine wakes it.
	c2 := &call{}
	w.start(c2, 0)
	if !w.running.Load() {
		t.Fatal("a new inline call did not start the watchdog")
	}
	w.end(c2)
}
