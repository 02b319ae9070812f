package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// gatedWriter records writes; while gate is open (not closed) every write waits for it, as a
// blocking write to a full socket does.
type gatedWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	gate   chan struct{}
	err    error
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.err != nil {
		return 0, w.err
	}
	return w.buf.Write(p)
}

// frames parses everything written.
func (w *gatedWriter) frames(t *testing.T) []Frame {
	t.Helper()
	w.mu.Lock()
	raw := bytes.Clone(w.buf.Bytes())
	w.mu.Unlock()
	c := NewConn(rwc{Reader: bytes.NewReader(raw), Writer: io.Discard}, 0)
	var fs []Frame
	for {
		f, err := c.ReadFrame()
		if err == io.EOF {
			return fs
		}
		if err != nil {
			t.Fatalf("after %d frames: %v", len(fs), err)
		}
		fs = append(fs, f)
	}
}

// heldConn returns a combining Conn over a gated writer whose lock a writer of a LOG frame
// "holder" holds, stuck in its write until the gate opens; holder receives that write's error.
func heldConn(t *testing.T) (c *Conn, w *gatedWriter, holder <-chan error) {
	t.Helper()
	w = &gatedWriter{gate: make(chan struct{})}
	c = NewConn(rwc{Writer: w}, 0)
	c.CombineWrites()
	done := make(chan error, 1)
	go func() { done <- c.WriteFrame(KindLog, 0, []byte("holder")) }()
	for !c.wl.held.Load() {
		time.Sleep(time.Millisecond)
	}
	return c, w, done
}

// TestCombineWrites: writers that find the lock taken leave their frames to the holder and
// return at once; the holder writes them all in one system call before it releases the lock.
func TestCombineWrites(t *testing.T) {
	c, w, holderDone := heldConn(t)
	// The holder is stuck in its write: these must not wait for it.
	returned := make(chan error, 3)
	go func() { returned <- c.WriteFrame(KindCall, 7, []byte("seven")) }()
	go func() { returned <- c.WriteResult(KindResult, 8, StatusOK, []byte("eight")) }()
	go func() { returned <- c.WriteFrame(KindHostCall, 9, []byte("ni"), []byte("ne")) }()
	for range 3 {
		select {
		case err := <-returned:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a writer waited for the holder")
		}
	}
	if n := c.FramesWritten(); n != 0 {
		t.Errorf("FramesWritten %d before anything was written", n)
	}
	close(w.gate)
	if err := <-holderDone; err != nil {
		t.Fatal(err)
	}
	if w.writes != 2 {
		t.Errorf("%d writes, want 2 (the holder's frame, then the three it was left)", w.writes)
	}
	fs := w.frames(t)
	if len(fs) != 4 || string(fs[0].Body) != "holder" {
		t.Fatalf("frames %v", fs)
	}
	got := map[uint64]string{}
	for _, f := range fs[1:] {
		got[f.ID] = fmt.Sprintf("%v %q", f.Kind, f.Body)
	}
	want := map[uint64]string{
		7: fmt.Sprintf("%v %q", KindCall, "seven"),
		8: fmt.Sprintf("%v %q", KindResult, "\x00\x00eight"),
		9: fmt.Sprintf("%v %q", KindHostCall, "nine"),
	}
	for id, s := range want {
		if got[id] != s {
			t.Errorf("frame %d: %s, want %s", id, got[id], s)
		}
	}
	if n := c.FramesWritten(); n != 4 {
		t.Errorf("FramesWritten %d, want 4", n)
	}
	if c.wl.held.Load() {
		t.Error("lock still held")
	}
}

// TestCombineWritesBounded: what waits for the holder is bounded; a writer beyond the bound, or
// of a large frame, waits for the lock as without combining.
func TestCombineWritesBounded(t *testing.T) {
	c, w, _ := heldConn(t)
	body := make([]byte, smallWrite)
	left := 0
	for ; (left+1)*(HeaderSize+smallWrite) <= maxPending; left++ {
		if err := c.WriteFrame(KindCall, uint64(left+1), body); err != nil {
			t.Fatal(err)
		}
	}
	blocked := make(chan error, 2)
	go func() { blocked <- c.WriteFrame(KindCall, 100, body) }()                 // over the bound
	go func() { blocked <- c.WriteFrame(KindCall, 101, make([]byte, 64<<10)) }() // large
	select {
	case <-blocked:
		t.Fatal("a writer past the bound did not wait")
	case <-time.After(100 * time.Millisecond):
	}
	close(w.gate)
	for range 2 {
		if err := <-blocked; err != nil {
			t.Fatal(err)
		}
	}
	if fs := w.frames(t); len(fs) != left+3 {
		t.Fatalf("%d frames, want %d", len(fs), left+3)
	}
}

// TestCombineWritesError: a combined write that fails fails the writers after it.
func TestCombineWritesError(t *testing.T) {
	c, w, done := heldConn(t)
	if err := c.WriteFrame(KindLog, 1, []byte("left")); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("broken")
	w.mu.Lock()
	w.err = broken
	w.mu.Unlock()
	close(w.gate)
	if err := <-done; !errors.Is(err, broken) {
		t.Fatalf("holder: %v", err)
	}
	// The lock is free: the next writer takes it and fails on its own write; a writer that
	// would be left a frame fails with the combined write's error.
	c.wl.tryLock()
	if ok, err := c.leave(KindLog, 2, 1, [][]byte{{1}}); !ok || !errors.Is(err, broken) {
		t.Fatalf("leave after a failed combined write: %v, %v", ok, err)
	}
}

// TestCombineWritesConcurrent: many writers over a real pipe, in order per writer, every frame
// whole, none lost. The writers yield between frames, so that the holder often finds nothing
// left to it just as another leaves a frame: one left after the holder's last look would be
// written late (out of its writer's order) or never.
func TestCombineWritesConcurrent(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	c := NewConn(rwc{Writer: pw}, 0)
	c.CombineWrites()
	const writers, each = 16, 2000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				if c.WriteFrame(KindCall, uint64(g<<32|(i+1)), fmt.Appendf(nil, "%d/%d", g, i)) != nil {
					return // the pipe closed: the reader has failed the test
				}
				runtime.Gosched()
			}
		})
	}
	r := NewConn(rwc{Reader: pr}, 0)
	next := make([]int, writers)
	pr.SetReadDeadline(time.Now().Add(20 * time.Second)) // a lost frame would block the read
	for n := 0; n < writers*each; n++ {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("after %d frames: %v", n, err)
		}
		g, i := int(f.ID>>32), int(f.ID&0xffffffff)-1
		if i != next[g] || string(f.Body) != fmt.Sprintf("%d/%d", g, i) {
			t.Fatalf("writer %d: frame %d %q, want %d", g, i, f.Body, next[g])
		}
		next[g]++
	}
	wg.Wait()
	if n := c.FramesWritten(); n != writers*each {
		t.Errorf("FramesWritten %d, want %d", n, writers*each)
	}
}

// TestCombineWritesFlush: Flush returns once the frames left to the holder are written.
func TestCombineWritesFlush(t *testing.T) {
	c, w, _ := heldConn(t)
	if err := c.WriteFrame(KindCall, 1, []byte("left")); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush() }()
	select {
	case <-flushed:
		t.Fatal("Flush returned before the left frame was written")
	case <-time.After(50 * time.Millisecond):
	}
	close(w.gate)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if fs := w.frames(t); len(fs) != 2 || string(fs[1].Body) != "left" {
		t.Fatalf("frames %v", fs)
	}
}
