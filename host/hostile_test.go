package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/shm"
	"github.com/asylo-go/asylo/internal/wire"
)

// fakeBackend hands the host one end of a pipe; the test plays a (misbehaving) enclave on the
// other end with script.
type fakeBackend struct {
	script func(c *wire.Conn, raw net.Conn)
	shm    bool // a small shared-memory ring instead of a pipe
	sock   bool // a Unix socketpair (the host's end a *net.UnixConn, as sim's) instead of a pipe
}

func (f fakeBackend) Name() string { return "fake" }

func (f fakeBackend) Start(ctx context.Context, spec backend.Spec) (backend.Instance, error) {
	a, b := net.Pipe()
	if f.sock {
		a, b = unixPair()
	}
	if f.shm {
		hostEnd, file, err := shm.New(shm.Options{Size: shm.MinSize})
		if err != nil {
			return nil, err
		}
		defer file.Close()
		encEnd, err := shm.Open(file, shm.Options{})
		if err != nil {
			return nil, err
		}
		a, b = shmNetConn{c: hostEnd}, shmNetConn{c: encEnd}
	}
	in := &fakeInstance{ch: a, peer: b, done: make(chan struct{})}
	go func() {
		f.script(wire.NewConn(b, 0), b)
		// A misbehaving enclave is killed by the host; one that finished its script exits.
		in.exit(&backend.ExitError{Code: 9})
	}()
	return in, nil
}

// shmNetConn is an internal/shm endpoint where a script wants a net.Conn: reads, writes and
// deadlines go to the ring; nothing else is used.
type shmNetConn struct {
	net.Conn // nil
	c        *shm.Conn
}

func (c shmNetConn) Read(p []byte) (int, error)  { return c.c.Read(p) }
func (c shmNetConn) Write(p []byte) (int, error) { return c.c.Write(p) }
func (c shmNetConn) Close() error                { return c.c.Close() }
func (c shmNetConn) SetReadDeadline(t time.Time) error {
	return c.c.SetReadDeadline(t)
}
func (c shmNetConn) SetWriteDeadline(t time.Time) error {
	return c.c.SetWriteDeadline(t)
}

type fakeInstance struct {
	ch, peer net.Conn
	once     sync.Once
	done     chan struct{}
	err      error
}

func (i *fakeInstance) Channel() io.ReadWriteCloser { return i.ch }
func (i *fakeInstance) Identity() identity.Identity {
	return identity.Identity{Backend: "fake", Debug: true}
}
func (i *fakeInstance) Done() <-chan struct{} { return i.done }
func (i *fakeInstance) Wait() error           { <-i.done; return i.err }
func (i *fakeInstance) Kill() error {
	i.exit(&backend.ExitError{Code: -1, Signal: "killed"})
	return nil
}

func (i *fakeInstance) exit(err error) {
	i.once.Do(func() {
		i.err = err
		i.peer.Close()
		close(i.done)
	})
}

func hello(c *wire.Conn) {
	c.WriteFrame(wire.KindHello, 0, wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxBody: 1 << 20}))
}

// greet plays a well-behaved enclave's start: HELLO, then INIT answered OK. It returns false if
// the host sent something else than INIT.
func greet(c *wire.Conn) bool {
	hello(c)
	f, err := c.ReadFrame()
	if err != nil || f.Kind != wire.KindInit {
		return false
	}
	return c.WriteFrame(wire.KindResult, f.ID, wire.AppendStatus(nil, wire.StatusOK)) == nil
}

func raw(kind wire.Kind, id uint64, body []byte) []byte {
	h := make([]byte, wire.HeaderSize)
	wire.PutHeader(h, kind, id, len(body))
	return append(h, body...)
}

var quiet = slog.New(slog.DiscardHandler)

func TestHostileHandshake(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(c *wire.Conn, _ net.Conn)
	}{
		{"no hello", func(c *wire.Conn, _ net.Conn) {}},
		{"wrong version", func(c *wire.Conn, _ net.Conn) {
			c.WriteFrame(wire.KindHello, 0, wire.AppendHello(nil, wire.Hello{Version: 2, MaxBody: 1 << 20}))
		}},
		{"result first", func(c *wire.Conn, _ net.Conn) { c.WriteFrame(wire.KindResult, 1, wire.AppendStatus(nil, 0)) }},
		{"garbage", func(c *wire.Conn, _ net.Conn) { c.WriteFrame(99, 0) }},
		{"tiny max body", func(c *wire.Conn, _ net.Conn) {
			c.WriteFrame(wire.KindHello, 0, wire.AppendHello(nil, wire.Hello{Version: 1, MaxBody: 10}))
		}},
		{"init answered for another id", func(c *wire.Conn, _ net.Conn) {
			hello(c)
			c.ReadFrame()
			c.WriteFrame(wire.KindResult, 42, wire.AppendStatus(nil, wire.StatusOK))
			time.Sleep(time.Second)
		}},
		{"unknown status", func(c *wire.Conn, _ net.Conn) {
			hello(c)
			f, _ := c.ReadFrame()
			c.WriteFrame(wire.KindResult, f.ID, wire.AppendStatus(nil, 1000))
			time.Sleep(time.Second)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := host.Load(ctx, host.LoadConfig{Name: "evil", Backend: fakeBackend{script: tc.script}, Logger: quiet})
			if !errors.Is(err, host.ErrEnclaveLost) {
				t.Errorf("Load = %v, want ErrEnclaveLost", err)
			}
		})
	}
}

// After a good start, any protocol violation by the enclave fails pending calls with
// ErrEnclaveLost, and the host goes on.
func TestHostileEnclave(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(c *wire.Conn, call wire.Frame)
	}{
		{"result for unknown id", func(c *wire.Conn, f wire.Frame) {
			c.WriteFrame(wire.KindResult, f.ID+100, wire.AppendStatus(nil, 0))
		}},
		{"oversized error message", func(c *wire.Conn, f wire.Frame) {
			c.WriteFrame(wire.KindResult, f.ID, wire.AppendStatus(nil, wire.StatusApplication), bytes.Repeat([]byte("x"), 5000))
		}},
		{"init frame from enclave", func(c *wire.Conn, f wire.Frame) { c.WriteFrame(wire.KindInit, 1) }},
		{"malformed log", func(c *wire.Conn, f wire.Frame) { c.WriteFrame(wire.KindLog, 0, []byte{1}) }},
		{"truncated frame then close", func(c *wire.Conn, f wire.Frame) {
			c.WriteFrame(wire.KindResult, f.ID) // no status: malformed body
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := func(c *wire.Conn, _ net.Conn) {
				if !greet(c) {
					return
				}
				f, err := c.ReadFrame()
				if err != nil {
					return
				}
				go func() { // keep draining so host writes never block
					for {
						if _, err := c.ReadFrame(); err != nil {
							return
						}
					}
				}()
				tc.reply(c, f)
				time.Sleep(2 * time.Second)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e, err := host.Load(ctx, host.LoadConfig{Name: "evil", Backend: fakeBackend{script: script}, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Call(ctx, "m", []byte("x"))
			var le *host.LostError
			if !errors.As(err, &le) {
				t.Fatalf("Call = %v, want *LostError", err)
			}
			if !errors.Is(le, wire.ErrProtocol) && !errors.Is(le, wire.ErrTooLarge) {
				t.Errorf("cause %v, want a protocol error", le.Cause)
			}
			if _, err := e.Call(ctx, "m", nil); !errors.Is(err, host.ErrEnclaveLost) {
				t.Errorf("later Call = %v", err)
			}
		})
	}
}

// FuzzHostReader plays an enclave that says HELLO, answers INIT, then sends arbitrary bytes:
// the host must end up with a usable answer or ErrEnclaveLost, never panic or hang.
func FuzzHostReader(f *testing.F) {
	f.Add(raw(wire.KindResult, 2, wire.AppendStatus(nil, wire.StatusOK)))
	f.Add(raw(wire.KindLog, 0, wire.AppendLog(nil, wire.LogRecord{Message: "m"})))
	f.Add(raw(wire.KindHostCall, 1, wire.AppendHostCallHeader(nil, wire.OpUntrustedTime)))
	f.Add(raw(wire.KindResult, 2, append(wire.AppendStatus(nil, wire.StatusPanic), "boom"...)))
	f.Fuzz(func(t *testing.T, stream []byte) {
		script := func(c *wire.Conn, rawConn net.Conn) {
			if !greet(c) {
				return
			}
			go func() {
				for {
					if _, err := c.ReadFrame(); err != nil {
						return
					}
				}
			}()
			rawConn.Write(stream)
			time.Sleep(50 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e, err := host.Load(ctx, host.LoadConfig{Backend: fakeBackend{script: script}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		c2, cancel2 := context.WithTimeout(ctx, 3*time.Second)
		defer cancel2()
		_, err = e.Call(c2, "m", nil)
		if err != nil && !errors.Is(err, host.ErrEnclaveLost) && !errors.Is(err, context.DeadlineExceeded) {
			var ee *host.EnclaveError
			if !errors.As(err, &ee) {
				t.Fatalf("unexpected error %v", err)
			}
		}
		e.Destroy(ctx, nil)
	})
}

// An enclave that answers FINALIZE but does not exit is killed, not waited for forever.
func TestDestroyKillsLingeringEnclave(t *testing.T) {
	script := func(c *wire.Conn, _ net.Conn) {
		if !greet(c) {
			return
		}
		f, err := c.ReadFrame()
		if err != nil || f.Kind != wire.KindFinalize {
			return
		}
		c.WriteFrame(wire.KindResult, f.ID, wire.AppendStatus(nil, wire.StatusOK))
		time.Sleep(time.Minute) // and never exit
	}
	e, err := host.Load(context.Background(), host.LoadConfig{Backend: fakeBackend{script: script}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := e.Destroy(context.Background(), nil); err != nil {
		t.Errorf("Destroy: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Destroy took %v", d)
	}
}

// An enclave that sends half of a RESULT and stalls must not hold a caller past its context:
// the caller reads for itself (design note 16), and its context's end interrupts even a frame
// half read. The frame is resumed where it stopped: when the rest comes, it is delivered and the
// enclave stays usable.
func TestHostileStalledFrame(t *testing.T) {
	rest := make(chan struct{})
	script := func(c *wire.Conn, raw_ net.Conn) {
		if !greet(c) {
			return
		}
		calls := make(chan wire.Frame, 4)
		go func() { // keep reading (net.Pipe has no buffer: the host's CANCEL must get through)
			for {
				f, err := c.ReadFrame()
				if err != nil {
					close(calls)
					return
				}
				if f.Kind == wire.KindCall {
					calls <- f
				}
			}
		}()
		f, ok := <-calls
		for ; ok; f, ok = <-calls { // answer calls until the one to stall
			if r, _ := wire.ParseRequest(f.Kind, f.Body); string(r.Method) == "stall" {
				break
			}
			c.WriteFrame(wire.KindResult, f.ID, wire.AppendStatus(nil, wire.StatusOK), []byte("warm"))
		}
		if !ok {
			return
		}
		frame := raw(wire.KindResult, f.ID, append(wire.AppendStatus(nil, wire.StatusOK), bytes.Repeat([]byte("r"), 5000)...))
		raw_.Write(frame[:3000])
		<-rest
		raw_.Write(frame[3000:])
		// Answer one more call, to show the stream is intact.
		if f, ok = <-calls; ok {
			c.WriteFrame(wire.KindResult, f.ID, wire.AppendStatus(nil, wire.StatusOK), []byte("again"))
		}
		time.Sleep(2 * time.Second)
	}
	e, err := host.Load(context.Background(), host.LoadConfig{Name: "evil", Backend: fakeBackend{script: script}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	// A few calls first, so that callers read for themselves (the read loop steps aside).
	for range 5 {
		if out, err := e.Call(context.Background(), "m", nil); err != nil || string(out) != "warm" {
			t.Fatalf("warm-up call: %q, %v", out, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = e.Call(ctx, "stall", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the stalled frame held the caller for %v", d)
	}
	close(rest)
	out, err := e.Call(context.Background(), "m", nil)
	if err != nil || string(out) != "again" {
		t.Fatalf("after the stalled frame was completed: %q, %v", out, err)
	}
	if err := e.Err(); err != nil {
		t.Fatalf("enclave lost: %v", err)
	}
}

// overTransports runs f with a fake enclave over a pipe and over a small shared-memory ring.
func overTransports(t *testing.T, f func(t *testing.T, useShm bool)) {
	for _, useShm := range []bool{false, true} {
		t.Run(map[bool]string{false: "pipe", true: "shm"}[useShm], func(t *testing.T) { f(t, useShm) })
	}
}

// recordFrames reads frames from c until it fails, reporting each CANCEL and, through onCall,
// each CALL on got; it answers FINALIZE and ends there.
func recordFrames(c *wire.Conn, got chan<- string, onCall func(f wire.Frame)) {
	for {
		f, err := c.ReadFrame()
		if err != nil {
			return
		}
		switch f.Kind {
		case wire.KindCall:
			onCall(f)
		case wire.KindCancel:
			got <- "CANCEL"
		case wire.KindFinalize:
			c.WriteFrame(wire.KindResult, f.ID, wire.AppendStatus(nil, wire.StatusOK))
			return
		}
	}
}

// loadFake loads a fake enclave that plays script, destroyed when t ends.
func loadFake(t *testing.T, script func(c *wire.Conn, raw net.Conn), useShm bool) *host.Enclave {
	t.Helper()
	e, err := host.Load(context.Background(), host.LoadConfig{Name: "fake", Backend: fakeBackend{script: script, shm: useShm}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Destroy(context.Background(), nil) })
	return e
}

// expectFrames fails unless the fake enclave reports want, in order.
func expectFrames(t *testing.T, got <-chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case g := <-got:
			if g != w {
				t.Fatalf("the enclave read %q, want %q", g, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the enclave never read %q", w)
		}
	}
}

// callTimesOut makes a call with a 200 ms deadline, which must end it promptly.
func callTimesOut(t *testing.T, e *host.Enclave, name string, in []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := e.Call(ctx, name, in); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call(%s) = %v, want context.DeadlineExceeded", name, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Call(%s) returned after %v", name, d)
	}
}

// An enclave that stops reading must not hold callers past their contexts: not the caller whose
// request it stopped reading part-way, not one waiting to write behind it, and not their
// cancellations. When it reads again, the stream is whole.
func TestHostileStopsReading(t *testing.T) {
	overTransports(t, func(t *testing.T, useShm bool) {
		resume := make(chan struct{})
		got := make(chan string, 8)
		script := func(c *wire.Conn, raw_ net.Conn) {
			if !greet(c) {
				return
			}
			head := make([]byte, 4096) // the start of the first call, then nothing
			if _, err := io.ReadFull(raw_, head); err != nil {
				return
			}
			<-resume
			rc := wire.NewConn(struct {
				io.Reader
				io.WriteCloser
			}{io.MultiReader(bytes.NewReader(head), raw_), raw_}, 0)
			recordFrames(rc, got, func(f wire.Frame) {
				r, _ := wire.ParseRequest(f.Kind, f.Body)
				got <- fmt.Sprintf("CALL %s %d", r.Method, len(r.Input))
				c.WriteFrame(wire.KindResult, f.ID, wire.AppendStatus(nil, wire.StatusOK), []byte("ok"))
			})
		}
		e := loadFake(t, script, useShm)
		callTimesOut(t, e, "big", bytes.Repeat([]byte("b"), 1<<19)) // stalls part-way through its request
		callTimesOut(t, e, "small", []byte("s"))                    // waits to write behind it
		if n := host.Pending(e); n != 1 {
			t.Fatalf("%d calls pending, want 1 (the begun one)", n)
		}
		close(resume)
		expectFrames(t, got, "CALL big 524288", "CANCEL")
		if out, err := e.Call(context.Background(), "after", nil); err != nil || string(out) != "ok" {
			t.Fatalf("a call after the enclave read again: %q, %v", out, err)
		}
		expectFrames(t, got, "CALL after 0")
	})
}

// An enclave that reads a request whole and then stops reading must not hold up the CANCEL its
// caller sends when giving up, nor the caller with it.
func TestHostileStopsReadingAfterRequest(t *testing.T) {
	overTransports(t, func(t *testing.T, useShm bool) {
		resume := make(chan struct{})
		got := make(chan string, 4)
		script := func(c *wire.Conn, _ net.Conn) {
			if !greet(c) {
				return
			}
			recordFrames(c, got, func(wire.Frame) {
				got <- "CALL"
				<-resume // and read nothing meanwhile
			})
		}
		e := loadFake(t, script, useShm)
		callTimesOut(t, e, "m", nil)
		close(resume)
		expectFrames(t, got, "CALL", "CANCEL")
	})
}
