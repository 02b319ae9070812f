package wire

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/shm"
)

type rwc struct {
	io.Reader
	io.Writer
}

func (rwc) Close() error { return nil }

func frameBytes(kind Kind, id uint64, body []byte) []byte {
	h := make([]byte, HeaderSize)
	PutHeader(h, kind, id, len(body))
	return append(h, body...)
}

func readOne(t *testing.T, raw []byte, max int) (Frame, error) {
	t.Helper()
	return NewConn(rwc{Reader: bytes.NewReader(raw), Writer: io.Discard}, max).ReadFrame()
}

func TestFrameRoundTrip(t *testing.T) {
	a, b := net.Pipe()
	ca, cb := NewConn(a, 0), NewConn(b, 0)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: takes the writev path
	go func() {
		ca.WriteFrame(KindCall, 7, []byte("head"), []byte("tail"))
		ca.WriteFrame(KindHello, 0, AppendHello(nil, Hello{Version: Version, MaxBody: 1 << 20}))
		ca.WriteFrame(KindResult, 9, []byte{0, 0}, big)
	}()
	f, err := cb.ReadFrame()
	if err != nil || f.Kind != KindCall || f.ID != 7 || string(f.Body) != "headtail" {
		t.Fatalf("got %+v, %v", f, err)
	}
	f, err = cb.ReadFrame()
	if err != nil || f.Kind != KindHello {
		t.Fatalf("got %+v, %v", f, err)
	}
	h, err := ParseHello(f.Body)
	if err != nil || h.MaxBody != 1<<20 {
		t.Fatalf("hello %+v, %v", h, err)
	}
	f, err = cb.ReadFrame()
	if err != nil || !bytes.Equal(f.Body[2:], big) {
		t.Fatalf("big frame: %v", err)
	}
}

// WriteResult encodes the status itself, on both write paths (one buffer, and writev for large
// bodies).
func TestWriteResult(t *testing.T) {
	a, b := net.Pipe()
	ca, cb := NewConn(a, 0), NewConn(b, 0)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	go func() {
		ca.WriteResult(KindResult, 3, StatusOK, []byte("out"))
		ca.WriteResult(KindHostResult, 4, StatusPanic, []byte("boom"))
		ca.WriteResult(KindResult, 5, StatusOK, big)
	}()
	for _, want := range []struct {
		kind Kind
		id   uint64
		st   Status
		body []byte
	}{{KindResult, 3, StatusOK, []byte("out")}, {KindHostResult, 4, StatusPanic, []byte("boom")}, {KindResult, 5, StatusOK, big}} {
		f, err := cb.ReadFrame()
		if err != nil || f.Kind != want.kind || f.ID != want.id {
			t.Fatalf("got %+v, %v", f, err)
		}
		st, body, err := ParseResult(f.Kind, f.Body)
		if err != nil || st != want.st || !bytes.Equal(body, want.body) {
			t.Fatalf("frame %d: status %v, %d bytes, %v", want.id, st, len(body), err)
		}
	}
}

func TestHeaderValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"unknown kind", frameBytes(11, 1, nil), ErrProtocol},
		{"kind zero", frameBytes(0, 1, nil), ErrProtocol},
		{"call without id", frameBytes(KindCall, 0, make([]byte, 9)), ErrProtocol},
		{"hello with id", frameBytes(KindHello, 5, make([]byte, 8)), ErrProtocol},
		{"flags set", func() []byte { b := frameBytes(KindRun, 1, nil); b[5] = 1; return b }(), ErrProtocol},
		{"reserved set", func() []byte { b := frameBytes(KindRun, 1, nil); b[7] = 1; return b }(), ErrProtocol},
		{"over limit", frameBytes(KindRun, 1, make([]byte, 5000)), ErrTooLarge},
		{"truncated header", frameBytes(KindRun, 1, nil)[:10], ErrProtocol},
		{"truncated body", frameBytes(KindRun, 1, make([]byte, 100))[:50], ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readOne(t, tc.raw, 4096)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := readOne(t, nil, 0); err != io.EOF {
		t.Errorf("clean EOF: %v", err)
	}
}

// A peer that announces a huge body and sends nothing must not make the receiver allocate it.
func TestAnnouncedLengthDoesNotAllocate(t *testing.T) {
	h := make([]byte, HeaderSize)
	PutHeader(h, KindRun, 1, HardMaxBody)
	before := heapInUse()
	c := NewConn(rwc{Reader: bytes.NewReader(h), Writer: io.Discard}, HardMaxBody)
	if _, err := c.ReadFrame(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v", err)
	}
	after := heapInUse()
	if after-before > 64<<20 {
		t.Errorf("reading a truncated 1 GiB frame grew the heap by %d MiB", (after-before)>>20)
	}
}

func TestInitRoundTrip(t *testing.T) {
	p := InitParams{
		Timeout: 3 * time.Second, Name: "héllo", LogLevel: -4, Config: []byte("cfg"),
		Identity: identity.Identity{Backend: "sim", Signed: true, Debug: true, ProductID: 7, SVN: 9,
			Measurement: identity.Measurement{1, 2}, SignerID: identity.SignerID{3}},
	}
	got, err := ParseInit(AppendInit(nil, p))
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != p.Name || got.Identity != p.Identity || string(got.Config) != "cfg" || got.Timeout != p.Timeout || got.LogLevel != -4 {
		t.Errorf("round trip: %+v", got)
	}
	b := AppendInit(nil, p)
	b[8] = 200 // name length over the limit
	if _, err := ParseInit(b); !errors.Is(err, ErrProtocol) {
		t.Errorf("long name: %v", err)
	}
	flagsAt := 8 + 1 + len(p.Name) + 4 + 1 + 3 + 32 + 32 + 8
	b = AppendInit(nil, p)
	b[flagsAt] |= 4
	if _, err := ParseInit(b); !errors.Is(err, ErrProtocol) {
		t.Errorf("unknown flag: %v", err)
	}
	for n := range len(AppendInit(nil, InitParams{})) {
		if _, err := ParseInit(AppendInit(nil, p)[:n]); !errors.Is(err, ErrProtocol) {
			t.Errorf("truncated at %d: %v", n, err)
		}
	}
}

func TestRequestAndResult(t *testing.T) {
	b := AppendRequestHeader(nil, KindCall, time.Second, "greet")
	b = append(b, "in"...)
	r, err := ParseRequest(KindCall, b)
	if err != nil || string(r.Method) != "greet" || string(r.Input) != "in" || r.Timeout != time.Second {
		t.Fatalf("%+v %v", r, err)
	}
	bad := AppendRequestHeader(nil, KindCall, 0, "bad name")
	if _, err := ParseRequest(KindCall, bad); !errors.Is(err, ErrProtocol) {
		t.Errorf("bad method name: %v", err)
	}
	if _, err := ParseRequest(KindCall, AppendRequestHeader(nil, KindCall, 0, "")); !errors.Is(err, ErrProtocol) {
		t.Errorf("empty method name: %v", err)
	}
	st, p, err := ParseResult(KindResult, append(AppendStatus(nil, StatusPanic), "boom"...))
	if err != nil || st != StatusPanic || string(p) != "boom" {
		t.Errorf("%v %q %v", st, p, err)
	}
	if _, _, err := ParseResult(KindResult, AppendStatus(nil, 99)); !errors.Is(err, ErrProtocol) {
		t.Errorf("unknown status: %v", err)
	}
	if _, _, err := ParseResult(KindResult, append(AppendStatus(nil, StatusApplication), 0xff)); !errors.Is(err, ErrProtocol) {
		t.Errorf("non-UTF-8 message: %v", err)
	}
	long := strings.Repeat("é", MaxErrorMessage)
	if m := TruncateMessage(long); len(m) > MaxErrorMessage || !strings.HasPrefix(long, m) {
		t.Errorf("TruncateMessage: %d bytes", len(m))
	}
}

func TestLogRoundTrip(t *testing.T) {
	r := LogRecord{Level: 4, Message: "msg", Attrs: []Attr{{"k", "v"}, {"a.b", "c"}}}
	got, err := ParseLog(AppendLog(nil, r))
	if err != nil || got.Message != "msg" || len(got.Attrs) != 2 || got.Attrs[1] != (Attr{"a.b", "c"}) {
		t.Fatalf("%+v %v", got, err)
	}
	huge := LogRecord{Message: strings.Repeat("m", 3*MaxLogRecord), Attrs: []Attr{{strings.Repeat("k", MaxLogRecord), "v"}}}
	if b := AppendLog(nil, huge); len(b) > MaxLogRecord {
		t.Errorf("AppendLog produced %d bytes", len(b))
	} else if _, err := ParseLog(b); err != nil {
		t.Errorf("bounded record refused: %v", err)
	}
}

var identityFixture = identity.Identity{Backend: "sim", Measurement: identity.Measurement{9}}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken") }

// The frame counts the attention channel carries: a frame counts once it is written or read
// whole, an interrupted read counts once when it completes, and a failed write not at all.
func TestFrameCounts(t *testing.T) {
	a, b := net.Pipe()
	ca, cb := NewConn(a, 0), NewConn(b, 0)
	big := bytes.Repeat([]byte("x"), 100<<10) // the writev path
	done := make(chan struct{})
	go func() {
		defer close(done)
		ca.WriteFrame(KindCall, 1, []byte("a"))
		ca.WriteFrame(KindCall, 2, big)
	}()
	if _, err := cb.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	// Interrupt the big frame part-way through, then resume it.
	b.SetReadDeadline(time.Now().Add(time.Millisecond))
	for {
		_, err := cb.ReadFrame()
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
		if n := cb.FramesRead(); n != 1 {
			t.Fatalf("FramesRead = %d during an interrupted read, want 1", n)
		}
		b.SetReadDeadline(time.Now().Add(time.Millisecond))
	}
	<-done
	if r, w := cb.FramesRead(), ca.FramesWritten(); r != 2 || w != 2 {
		t.Fatalf("FramesRead = %d, FramesWritten = %d, want 2 and 2", r, w)
	}
	cf := NewConn(rwc{Reader: bytes.NewReader(nil), Writer: failWriter{}}, 0)
	if err := cf.WriteFrame(KindCall, 1, []byte("a")); err == nil || cf.FramesWritten() != 0 {
		t.Fatalf("failed write: %v, FramesWritten = %d", err, cf.FramesWritten())
	}
}

// WriteFrameContext returns when its context ends even if the peer has stopped reading: a frame
// not yet begun is not written at all, one begun is finished in the background before any later
// frame, and a writer waiting for the write lock gives up too. The stream stays whole.
func TestWriteFrameContext(t *testing.T) {
	a, b := net.Pipe() // a write waits until the peer reads it
	ca := NewConn(a, 0)
	quick := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}

	// Nobody reads: the frame is not begun.
	start := time.Now()
	begun, err := ca.WriteFrameContext(quick(50*time.Millisecond), KindCall, 1, []byte("never"))
	if begun || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("unread write: begun %v, %v after %v", begun, err, time.Since(start))
	}

	// The peer reads part of a large frame and stops.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	head := make([]byte, 1000)
	go io.ReadFull(b, head)
	begun, err = ca.WriteFrameContext(quick(100*time.Millisecond), KindCall, 2, []byte("hd"), big)
	if !begun || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("half-read write: begun %v, %v", begun, err)
	}
	// Another writer waits for the lock, which the background write holds, and gives up.
	if begun, err := ca.WriteFrameContext(quick(50*time.Millisecond), KindCall, 3, []byte("late")); begun || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write behind a stalled one: begun %v, %v", begun, err)
	}
	done := make(chan error, 1)
	go func() { done <- ca.WriteFrame(KindCancel, 2) }()

	// The peer reads again: the rest of frame 2, whole, then the CANCEL.
	cb2 := NewConn(rwc{Reader: io.MultiReader(bytes.NewReader(head), b), Writer: io.Discard}, 0)
	f, err := cb2.ReadFrame()
	if err != nil || f.Kind != KindCall || f.ID != 2 || !bytes.Equal(f.Body, append([]byte("hd"), big...)) {
		t.Fatalf("the begun frame: %v %d (%d bytes), %v", f.Kind, f.ID, len(f.Body), err)
	}
	if f, err := cb2.ReadFrame(); err != nil || f.Kind != KindCancel || f.ID != 2 {
		t.Fatalf("next frame: %v %d, %v", f.Kind, f.ID, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := ca.FramesWritten(); n != 2 {
		t.Fatalf("FramesWritten = %d, want 2", n)
	}

	// With a context that cannot end, or a stream without write deadlines, it is WriteFrame.
	var sink bytes.Buffer
	cs := NewConn(rwc{Reader: bytes.NewReader(nil), Writer: &sink}, 0)
	if begun, err := cs.WriteFrameContext(quick(time.Hour), KindCall, 4, []byte("x")); !begun || err != nil || sink.Len() != HeaderSize+1 {
		t.Fatalf("plain stream: begun %v, %v, %d bytes", begun, err, sink.Len())
	}
}

// Over a stream that can take bytes without waiting (internal/shm), WriteFrameContext writes a
// frame that fits at once without making the write interruptible, and one that fits only in part
// as before: the rest waits, the context's end returns begun, and the frame is finished in the
// background, whole.
func TestWriteFrameContextNoWait(t *testing.T) {
	a, f, err := shm.New(shm.Options{Size: shm.MinSize, Spin: -1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := shm.Open(f, shm.Options{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	ca, cb := NewConn(a, 0), NewConn(b, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	rbuf := make([]byte, 64)
	into := func(Frame, int) []byte { return rbuf }
	fits := []byte("fits")
	allocs := testing.AllocsPerRun(100, func() {
		if begun, err := ca.WriteFrameContext(ctx, KindCall, 1, fits); !begun || err != nil {
			t.Fatalf("begun %v, %v", begun, err)
		}
		if f, err := cb.ReadFrameInto(into); err != nil || f.ID != 1 || string(f.Body) != "fits" {
			t.Fatalf("read %v %q, %v", f.ID, f.Body, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame that fits, want none (an interruptible write has some)", allocs)
	}

	// Three quarters of the ring is taken; the next frame fits only in part.
	filler := make([]byte, shm.MinSize*3/4)
	if _, err := a.Write(filler); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), shm.MinSize/2)
	short, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	if begun, err := ca.WriteFrameContext(short, KindCall, 2, body); !begun || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("frame that fits in part: begun %v, %v", begun, err)
	}
	if _, err := io.ReadFull(b, make([]byte, len(filler))); err != nil {
		t.Fatal(err)
	}
	if f, err := cb.ReadFrame(); err != nil || f.ID != 2 || !bytes.Equal(f.Body, body) {
		t.Fatalf("the frame finished in the background: %v (%d bytes), %v", f.ID, len(f.Body), err)
	}
}

// The write lock excludes, hands itself on to parked waiters (none sleeps through a release),
// and lets a waiter give up when its context ends.
func TestWriteLock(t *testing.T) {
	l := writeLock{wake: make(chan struct{}, 1)}
	var inside, entered atomic.Int32
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				done := make(chan struct{})
				if (g+i)%7 == 0 {
					close(done) // gives up if it must wait
				}
				if !l.tryLock() && !l.lock(done) {
					continue
				}
				if inside.Add(1) != 1 {
					t.Error("two holders")
				}
				entered.Add(1)
				if i%3 == 0 {
					runtime.Gosched()
				}
				inside.Add(-1)
				l.unlock()
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("a waiter slept through releases")
	}
	if entered.Load() < 8*2000*6/7-8 {
		t.Errorf("only %d entries", entered.Load())
	}
	// A waiter whose context ends stops waiting; the lock still works after.
	l.tryLock()
	done := make(chan struct{})
	go func() { time.Sleep(10 * time.Millisecond); close(done) }()
	if l.lock(done) {
		t.Fatal("lock taken while held")
	}
	l.unlock()
	if !l.lock(nil) {
		t.Fatal("free lock not taken")
	}
	l.unlock()
}
