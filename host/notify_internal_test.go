package host

import (
	"io"
	"testing"
	"time"

	"github.com/asylo-go/asylo/internal/wire"
)

type discard struct{ io.Reader }

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Close() error                { return nil }

// blockingNotifier reports each notification and holds the notifier in Notify until released.
type blockingNotifier struct {
	got     chan uint64
	release chan struct{}
}

func (n *blockingNotifier) Notify(sent uint64) {
	n.got <- sent
	<-n.release
}

// A caller that finds another notifying leaves its frame to it: the one notifying must then
// notify again, with a count that covers that frame.
func TestNotifyCoalesces(t *testing.T) {
	bn := &blockingNotifier{got: make(chan uint64, 4), release: make(chan struct{}, 4)}
	e := &Enclave{notifier: bn, conn: wire.NewConn(discard{}, 0)}
	e.conn.WriteFrame(wire.KindCancel, 1)
	done := make(chan struct{})
	go func() { e.notify(); close(done) }()
	if n := <-bn.got; n != 1 {
		t.Fatalf("first notification %d, want 1", n)
	}
	e.conn.WriteFrame(wire.KindCancel, 2)
	e.notify() // returns at once: the first caller is notifying
	bn.release <- struct{}{}
	select {
	case n := <-bn.got:
		if n != 2 {
			t.Fatalf("second notification %d, want 2", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the frame written while another caller notified was never notified")
	}
	bn.release <- struct{}{}
	<-done
	if e.notes.Load() != 0 {
		t.Fatalf("notes = %d after all notified", e.notes.Load())
	}
}
