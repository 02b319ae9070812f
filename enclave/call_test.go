package enclave

import (
	"context"
	"errors"
	"testing"
	"time"
	"unsafe"

	"github.com/asylo-go/asylo/internal/wire"
)

func testCall(t *testing.T, parent context.Context, timeout time.Duration) (*server, *call) {
	t.Helper()
	s := &server{}
	s.baseCtx = context.WithValue(parent, serverKey{}, s)
	c := &call{s: s, kind: wire.KindCall, id: 1, req: wire.Request{Timeout: timeout}}
	c.arm()
	t.Cleanup(func() { c.cancel(context.Canceled) })
	return s, c
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// The per-call context must behave like the context.WithCancel / WithTimeout it replaces.
func TestCallContextCancel(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	s, c := testCall(t, parent, 0)
	if _, ok := c.Deadline(); ok {
		t.Error("deadline set without a timeout")
	}
	if c.Err() != nil || closed(c.Done()) {
		t.Fatal("new call context already done")
	}
	child, stop := context.WithCancel(c)
	defer stop()
	c.cancel(context.Canceled)
	c.cancel(context.DeadlineExceeded) // later causes are ignored
	if !closed(c.Done()) || c.Err() != context.Canceled {
		t.Fatalf("after cancel: done %v, err %v", closed(c.Done()), c.Err())
	}
	// A cancelable (and not cancelled) base context must not hide the call's own error.
	if got := context.Cause(c); got != context.Canceled {
		t.Errorf("Cause = %v, want context.Canceled", got)
	}
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("derived context not cancelled with the call")
	}
	if got := c.Value(serverKey{}); got != s {
		t.Errorf("Value(serverKey) = %v", got)
	}
	if got := c.Value(handoffKey{}); got != c {
		t.Errorf("Value(handoffKey) = %v", got)
	}
	if got := c.Value("missing"); got != nil {
		t.Errorf("Value(missing) = %v", got)
	}
}

func TestCallContextDeadline(t *testing.T) {
	_, c := testCall(t, context.Background(), 20*time.Millisecond)
	d, ok := c.Deadline()
	if !ok || time.Until(d) > 20*time.Millisecond {
		t.Fatalf("Deadline = %v, %v", d, ok)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("deadline never fired")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) || context.Cause(c) != context.DeadlineExceeded {
		t.Fatalf("Err = %v, Cause = %v", c.Err(), context.Cause(c))
	}
}

// A call's own deadline starts no runtime timer until someone waits on Done (see arm), yet Err
// and Done report its end as a timer would.
func TestCallContextDeadlineLazy(t *testing.T) {
	t.Run("Err", func(t *testing.T) {
		_, c := testCall(t, context.Background(), 20*time.Millisecond)
		if c.Err() != nil {
			t.Fatal("done before its deadline")
		}
		time.Sleep(30 * time.Millisecond)
		if c.timer != nil {
			t.Fatal("a timer started without anyone waiting on Done")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err after the deadline = %v", c.Err())
		}
		if !closed(c.Done()) || context.Cause(c) != context.DeadlineExceeded {
			t.Fatalf("after Err: Done closed %v, Cause %v", closed(c.Done()), context.Cause(c))
		}
	})
	t.Run("Done after the deadline", func(t *testing.T) {
		_, c := testCall(t, context.Background(), time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		if !closed(c.Done()) || !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Done closed %v, Err %v", closed(c.Done()), c.Err())
		}
	})
	t.Run("derived", func(t *testing.T) {
		// A context derived from the call waits on its Done, which must start the timer.
		_, c := testCall(t, context.Background(), 20*time.Millisecond)
		child, stop := context.WithCancel(c)
		defer stop()
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("derived context not ended by the call's deadline")
		}
		if !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Fatalf("derived Err = %v", child.Err())
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("call Err = %v", c.Err())
		}
	})
	t.Run("ends first", func(t *testing.T) {
		_, c := testCall(t, context.Background(), time.Hour)
		c.cancel(context.Canceled)
		if c.timer != nil || c.Err() != context.Canceled {
			t.Fatalf("timer %v, Err %v", c.timer, c.Err())
		}
	})
}

func TestCallContextParent(t *testing.T) {
	parent, cancelParent := context.WithTimeout(context.Background(), time.Hour)
	_, c := testCall(t, parent, 2*time.Hour)
	pd, _ := parent.Deadline()
	if d, _ := c.Deadline(); !d.Equal(pd) {
		t.Errorf("Deadline = %v, want the base context's earlier %v", d, pd)
	}
	done := c.Done() // made before the cancellation, closed by it
	cancelParent()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("base context's end did not reach the call")
	}
	if c.Err() != context.Canceled {
		t.Fatalf("Err = %v", c.Err())
	}
}

// Every call allocates one call; on 64-bit platforms it fits the runtime's 192-byte size class
// (the next is 208).
func TestCallSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) == 8 && unsafe.Sizeof(call{}) > 192 {
		t.Errorf("call is %d bytes, more than the 192-byte size class", unsafe.Sizeof(call{}))
	}
}
