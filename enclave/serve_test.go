package enclave_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/internal/blocksock"
	"github.com/asylo-go/asylo/internal/wire"
)

type nopApp struct{}

func (nopApp) Initialize(context.Context, []byte) error         { return nil }
func (nopApp) Run(_ context.Context, in []byte) ([]byte, error) { return in, nil }
func (nopApp) Finalize(context.Context, []byte) error           { return nil }

// hostile drives a Serve from the host's side of a pipe.
type hostile struct {
	t    *testing.T
	c    *wire.Conn
	raw  net.Conn
	done chan error
}

func startServe(t *testing.T, opts ...enclave.Option) *hostile {
	a, b := net.Pipe()
	return startServeOn(t, a, b, opts...)
}

// socketPair is a connected pair of unix sockets of type typ: unlike net.Pipe, a write does not
// wait for the reader.
func socketPair(t *testing.T, typ int) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	var c [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return c[0], c[1]
}

func startServeOn(t *testing.T, a, b net.Conn, opts ...enclave.Option) *hostile {
	return startServeApp(t, a, b, nopApp{}, opts...)
}

func startServeApp(t *testing.T, a, b net.Conn, app enclave.Application, opts ...enclave.Option) *hostile {
	h := &hostile{t: t, c: wire.NewConn(a, 0), raw: a, done: make(chan error, 1)}
	go func() { h.done <- enclave.Serve(context.Background(), b, app, opts...) }()
	f, err := h.c.ReadFrame()
	if err != nil || f.Kind != wire.KindHello {
		t.Fatalf("first frame %v, %v", f.Kind, err)
	}
	t.Cleanup(func() { a.Close() })
	return h
}

func (h *hostile) send(kind wire.Kind, id uint64, body ...[]byte) {
	h.t.Helper()
	if err := h.c.WriteFrame(kind, id, body...); err != nil {
		h.t.Fatalf("send %v: %v", kind, err)
	}
}

func (h *hostile) result(id uint64) (wire.Status, string) {
	h.t.Helper()
	h.raw.SetReadDeadline(time.Now().Add(20 * time.Second)) // fail, not hang
	defer h.raw.SetReadDeadline(time.Time{})
	f, err := h.c.ReadFrame()
	if err != nil || f.Kind != wire.KindResult || f.ID != id {
		h.t.Fatalf("want RESULT %d, got %v %d %v", id, f.Kind, f.ID, err)
	}
	st, body, err := wire.ParseResult(f.Kind, f.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return st, string(body)
}

func (h *hostile) ended() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		return err
	case <-time.After(5 * time.Second):
		h.t.Fatal("Serve did not end")
		return nil
	}
}

func run(input string) []byte {
	return append(wire.AppendRequestHeader(nil, wire.KindRun, 0, ""), input...)
}

// docs/wire.md lets the host reuse a call id once it has the RESULT. The runtime writes an inline
// call's RESULT before removing the call from its table (design note 20), so the reuse must
// still find the id free, however quickly it follows.
func TestIDReusedAfterResult(t *testing.T) {
	a, b := socketPair(t, unix.SOCK_STREAM)
	h := startServeOn(t, a, b)
	h.send(wire.KindInit, 1, wire.AppendInit(nil, wire.InitParams{Name: "x"}))
	if st, _ := h.result(1); st != wire.StatusOK {
		t.Fatalf("INIT: %v", st)
	}
	for i := range 200 {
		h.send(wire.KindRun, 7, run("again"))
		if st, out := h.result(7); st != wire.StatusOK || out != "again" {
			t.Fatalf("RUN %d with id 7: %v %q", i, st, out)
		}
	}
}

func TestStateMachine(t *testing.T) {
	h := startServe(t)
	h.send(wire.KindRun, 1, run("early"))
	if st, _ := h.result(1); st != wire.StatusBadState {
		t.Errorf("RUN before INIT: %v", st)
	}
	h.send(wire.KindInit, 2, wire.AppendInit(nil, wire.InitParams{Name: "x"}))
	if st, _ := h.result(2); st != wire.StatusOK {
		t.Fatalf("INIT: %v", st)
	}
	h.send(wire.KindInit, 3, wire.AppendInit(nil, wire.InitParams{Name: "x"}))
	if st, _ := h.result(3); st != wire.StatusBadState {
		t.Errorf("second INIT: %v", st)
	}
	h.send(wire.KindRun, 4, run("hi"))
	if st, out := h.result(4); st != wire.StatusOK || out != "hi" {
		t.Errorf("RUN: %v %q", st, out)
	}
	h.send(wire.KindCall, 5, wire.AppendRequestHeader(nil, wire.KindCall, 0, "missing"))
	if st, _ := h.result(5); st != wire.StatusUnknownMethod {
		t.Errorf("unknown method: %v", st)
	}
	h.send(wire.KindCancel, 999) // unknown id: ignored
	h.send(wire.KindFinalize, 6, wire.AppendRequestHeader(nil, wire.KindFinalize, 0, ""))
	if st, _ := h.result(6); st != wire.StatusOK {
		t.Errorf("FINALIZE: %v", st)
	}
	if err := h.ended(); err != nil {
		t.Errorf("Serve after FINALIZE: %v", err)
	}
}

// gatedApp's Initialize and Finalize wait until their channel is closed.
type gatedApp struct{ init, fin chan struct{} }

func (a gatedApp) Initialize(context.Context, []byte) error       { <-a.init; return nil }
func (gatedApp) Run(_ context.Context, in []byte) ([]byte, error) { return in, nil }
func (a gatedApp) Finalize(context.Context, []byte) error         { <-a.fin; return nil }

// TestStateMachineTransitions: while Initialize or Finalize runs, every other request is refused
// with BAD_STATE and a message naming the state, and the transition still completes.
func TestStateMachineTransitions(t *testing.T) {
	app := gatedApp{init: make(chan struct{}), fin: make(chan struct{})}
	a, b := net.Pipe()
	h := startServeApp(t, a, b, app)
	refused := func(id uint64, kind wire.Kind, body []byte, state string) {
		t.Helper()
		h.send(kind, id, body)
		st, msg := h.result(id)
		if st != wire.StatusBadState || !strings.Contains(msg, "in state "+state) {
			t.Errorf("%v while %s: %v %q, want BAD_STATE naming the state", kind, state, st, msg)
		}
	}
	initBody := wire.AppendInit(nil, wire.InitParams{Name: "x"})
	finBody := wire.AppendRequestHeader(nil, wire.KindFinalize, 0, "")
	h.send(wire.KindInit, 1, initBody)
	refused(2, wire.KindRun, run("early"), "initializing")
	refused(3, wire.KindCall, wire.AppendRequestHeader(nil, wire.KindCall, 0, "any"), "initializing")
	refused(4, wire.KindInit, initBody, "initializing")
	refused(5, wire.KindFinalize, finBody, "initializing")
	close(app.init)
	if st, _ := h.result(1); st != wire.StatusOK {
		t.Fatalf("INIT: %v", st)
	}
	h.send(wire.KindFinalize, 6, finBody)
	refused(7, wire.KindRun, run("late"), "finalizing")
	refused(8, wire.KindFinalize, finBody, "finalizing")
	close(app.fin)
	if st, _ := h.result(6); st != wire.StatusOK {
		t.Fatalf("FINALIZE: %v", st)
	}
	if err := h.ended(); err != nil {
		t.Errorf("Serve after FINALIZE: %v", err)
	}
}

func TestTooManyCalls(t *testing.T) {
	block := make(chan struct{})
	h := startServe(t, enclave.MaxConcurrentCalls(2), enclave.Handle("block", func(ctx context.Context, _ []byte) ([]byte, error) {
		<-block
		return nil, nil
	}))
	h.send(wire.KindInit, 1, wire.AppendInit(nil, wire.InitParams{}))
	h.result(1)
	call := wire.AppendRequestHeader(nil, wire.KindCall, 0, "block")
	h.send(wire.KindCall, 2, call)
	h.send(wire.KindCall, 3, call)
	h.send(wire.KindCall, 4, call)
	if st, _ := h.result(4); st != wire.StatusResourceExhausted {
		t.Errorf("third concurrent call: %v", st)
	}
	close(block)
}

// Every protocol violation by the host ends the connection with ErrProtocol.
func TestHostileFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(h *hostile)
	}{
		{"RESULT from host", func(h *hostile) { h.send(wire.KindResult, 1, wire.AppendStatus(nil, 0)) }},
		{"HELLO from host", func(h *hostile) {
			h.send(wire.KindHello, 0, wire.AppendHello(nil, wire.Hello{Version: 1, MaxBody: 1 << 20}))
		}},
		{"HOSTRESULT for unknown id", func(h *hostile) { h.send(wire.KindHostResult, 77, wire.AppendStatus(nil, 0)) }},
		{"malformed INIT", func(h *hostile) { h.send(wire.KindInit, 1, []byte{1, 2, 3}) }},
		{"malformed CALL", func(h *hostile) {
			h.send(wire.KindCall, 1, wire.AppendRequestHeader(nil, wire.KindCall, 0, "no spaces"))
		}},
		{"duplicate call id", func(h *hostile) {
			h.send(wire.KindInit, 1, wire.AppendInit(nil, wire.InitParams{}))
			h.result(1)
			h.send(wire.KindCall, 2, wire.AppendRequestHeader(nil, wire.KindCall, 0, "block"))
			h.send(wire.KindCall, 2, wire.AppendRequestHeader(nil, wire.KindCall, 0, "block"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startServe(t, enclave.Handle("block", func(ctx context.Context, _ []byte) ([]byte, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}))
			tc.do(h)
			go io.Copy(io.Discard, readerOf(h.c))
			if err := h.ended(); !errors.Is(err, wire.ErrProtocol) {
				t.Errorf("Serve returned %v, want ErrProtocol", err)
			}
		})
	}
}

func readerOf(c *wire.Conn) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		_, err := c.ReadFrame()
		return 0, err
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) {
	n, err := f(p)
	if err == nil && n == 0 {
		return 0, nil
	}
	return n, err
}

type rwc struct {
	io.Reader
	io.Writer
}

func (rwc) Close() error { return nil }

// FuzzServe feeds an arbitrary byte stream to the runtime as if from the host: Serve must
// return, never panic or hang.
func FuzzServe(f *testing.F) {
	frame := func(k wire.Kind, id uint64, body []byte) []byte {
		h := make([]byte, wire.HeaderSize)
		wire.PutHeader(h, k, id, len(body))
		return append(h, body...)
	}
	init := frame(wire.KindInit, 1, wire.AppendInit(nil, wire.InitParams{Name: "f"}))
	f.Add(init)
	f.Add(append(append([]byte{}, init...), frame(wire.KindRun, 2, run("x"))...))
	f.Add(append(append([]byte{}, init...), frame(wire.KindFinalize, 3, wire.AppendRequestHeader(nil, wire.KindFinalize, 0, ""))...))
	f.Fuzz(func(t *testing.T, stream []byte) {
		done := make(chan error, 1)
		go func() {
			done <- enclave.Serve(context.Background(), rwc{Reader: bytes.NewReader(stream), Writer: io.Discard}, nopApp{})
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve hung")
		}
	})
}

// records is an attention channel that returns one record per Read (as a SOCK_SEQPACKET socket
// does), then io.EOF.
type records struct{ rs [][]byte }

func (r *records) Read(p []byte) (int, error) {
	if len(r.rs) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.rs[0])
	r.rs = r.rs[1:]
	return n, nil
}

func (r *records) Close() error { return nil }

// FuzzServeAttention is FuzzServe with an attention channel that carries arbitrary records
// (each a length byte, then up to that many bytes of the input): counts of any value, records
// of any length, its end at any point. Serve must return, never panic or hang.
func FuzzServeAttention(f *testing.F) {
	init := append(make([]byte, wire.HeaderSize), wire.AppendInit(nil, wire.InitParams{Name: "f"})...)
	wire.PutHeader(init, wire.KindInit, 1, len(init)-wire.HeaderSize)
	call := append(make([]byte, wire.HeaderSize), wire.AppendRequestHeader(nil, wire.KindCall, 0, "echo")...)
	wire.PutHeader(call, wire.KindCall, 2, len(call)-wire.HeaderSize)
	stream := append(append([]byte{}, init...), call...)
	f.Add(stream, []byte{8, 2, 0, 0, 0, 0, 0, 0, 0})
	f.Add(stream, []byte{8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 1, 2, 3})
	f.Add(stream, []byte{0})
	f.Fuzz(func(t *testing.T, stream, attn []byte) {
		var rs [][]byte
		for len(attn) > 0 {
			n := min(int(attn[0]), len(attn)-1)
			rs = append(rs, attn[1:1+n])
			attn = attn[1+n:]
		}
		done := make(chan error, 1)
		go func() {
			done <- enclave.Serve(context.Background(), rwc{Reader: bytes.NewReader(stream), Writer: io.Discard}, nopApp{},
				enclave.WithAttention(&records{rs}),
				enclave.Handle("echo", func(_ context.Context, in []byte) ([]byte, error) { return in, nil }))
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve hung")
		}
	})
}

// TestLongCallHandsOffReading: a call that blocks on the reading goroutine must not stop the
// enclave from reading, both while the watchdog ticks and after it parked for being idle: a
// CANCEL for the blocked call and a second call still get through.
func TestLongCallHandsOffReading(t *testing.T) {
	h := startServe(t, enclave.Handle("wait", func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}), enclave.Handle("echo", func(_ context.Context, in []byte) ([]byte, error) { return in, nil }))
	h.send(wire.KindInit, 1, wire.AppendInit(nil, wire.InitParams{}))
	h.result(1)
	id := uint64(2)
	for _, idle := range []time.Duration{0, 100 * time.Millisecond, 0} {
		time.Sleep(idle) // past the watchdog's idle limit: it parks and must be woken
		wait, echo := id, id+1
		id += 2
		h.send(wire.KindCall, wait, wire.AppendRequestHeader(nil, wire.KindCall, 0, "wait"))
		h.send(wire.KindCall, echo, wire.AppendRequestHeader(nil, wire.KindCall, 0, "echo"), []byte("x"))
		if st, out := h.result(echo); st != wire.StatusOK || out != "x" {
			t.Fatalf("call behind a blocked one: %v %q", st, out)
		}
		h.send(wire.KindCancel, wait)
		if st, _ := h.result(wait); st != wire.StatusCanceled {
			t.Fatalf("cancelled blocked call: %v", st)
		}
	}
}

// attentionHost is a hostile host with an attention channel (docs/wire.md, "Attention").
type attentionHost struct {
	*hostile
	attn net.Conn
}

func startAttentive(t *testing.T) *attentionHost {
	ca, cb := socketPair(t, unix.SOCK_STREAM)
	a, b := socketPair(t, unix.SOCK_SEQPACKET)
	h := &attentionHost{hostile: startServeOn(t, ca, cb,
		enclave.WithAttention(b),
		enclave.Handle("wait", func(ctx context.Context, _ []byte) ([]byte, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}),
		enclave.Handle("echo", func(_ context.Context, in []byte) ([]byte, error) { return in, nil }),
	), attn: a}
	t.Cleanup(func() { a.Close() })
	h.send(wire.KindInit, 1, wire.AppendInit(nil, wire.InitParams{}))
	h.result(1)
	return h
}

// notify sends the count of frames sent so far, plus ahead.
func (h *attentionHost) notify(ahead uint64) {
	h.t.Helper()
	if _, err := h.attn.Write(binary.LittleEndian.AppendUint64(nil, h.c.FramesWritten()+ahead)); err != nil {
		h.t.Fatal(err)
	}
}

// nothingFor fails if the enclave sends a frame within d.
func (h *attentionHost) nothingFor(d time.Duration) {
	h.t.Helper()
	h.raw.SetReadDeadline(time.Now().Add(d))
	defer h.raw.SetReadDeadline(time.Time{})
	f, err := h.c.ReadFrame() // interrupted by the deadline, it resumes at the next read
	if err == nil {
		h.t.Fatalf("unexpected %v %d: reading was handed off without a notification", f.Kind, f.ID)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		h.t.Fatal(err)
	}
}

// With an attention channel, nothing ticks: a call blocked on the reading goroutine holds up the
// frames behind it until the host notifies; then reading is handed off and they get through,
// CANCEL included.
func TestAttentionHandsOffReading(t *testing.T) {
	h := startAttentive(t)
	h.send(wire.KindCall, 2, wire.AppendRequestHeader(nil, wire.KindCall, 0, "wait"))
	h.send(wire.KindCall, 3, wire.AppendRequestHeader(nil, wire.KindCall, 0, "echo"), []byte("x"))
	h.nothingFor(300 * time.Millisecond)
	h.notify(0)
	if st, out := h.result(3); st != wire.StatusOK || out != "x" {
		t.Fatalf("call behind a blocked one: %v %q", st, out)
	}
	// A notification that arrives before the reader starts the call it is about: the reader
	// sees it when it starts the call.
	h.notify(2) // for the CALL and the echo below, not yet sent
	time.Sleep(50 * time.Millisecond)
	h.send(wire.KindCall, 4, wire.AppendRequestHeader(nil, wire.KindCall, 0, "wait"))
	h.send(wire.KindCall, 5, wire.AppendRequestHeader(nil, wire.KindCall, 0, "echo"), []byte("y"))
	if st, out := h.result(5); st != wire.StatusOK || out != "y" {
		t.Fatalf("call behind a blocked one, notified early: %v %q", st, out)
	}
	for _, id := range []uint64{2, 4} {
		h.send(wire.KindCancel, id)
		h.notify(0)
		if st, _ := h.result(id); st != wire.StatusCanceled {
			t.Fatalf("cancelled blocked call %d: %v", id, st)
		}
	}
}

// A malformed notification ends the attention channel, and the watchdog takes over.
func TestAttentionMalformedFallsBack(t *testing.T) {
	h := startAttentive(t)
	if _, err := h.attn.Write([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	h.send(wire.KindCall, 2, wire.AppendRequestHeader(nil, wire.KindCall, 0, "wait"))
	h.send(wire.KindCall, 3, wire.AppendRequestHeader(nil, wire.KindCall, 0, "echo"), []byte("x"))
	if st, out := h.result(3); st != wire.StatusOK || out != "x" {
		t.Fatalf("call behind a blocked one: %v %q", st, out)
	}
	h.send(wire.KindCancel, 2)
	if st, _ := h.result(2); st != wire.StatusCanceled {
		t.Fatalf("cancelled blocked call: %v", st)
	}
}

// chattyApp logs from a goroutine of its own, without pause, from Initialize until Finalize.
type chattyApp struct {
	nopApp
	stop chan struct{}
}

func (a *chattyApp) Initialize(ctx context.Context, _ []byte) error {
	log := enclave.Logger(ctx)
	go func() {
		for {
			select {
			case <-a.stop:
				return
			default:
				log.Info("busy")
			}
		}
	}()
	return nil
}

func (a *chattyApp) Finalize(context.Context, []byte) error {
	close(a.stop)
	return nil
}

// TestFinalizeResultOutlivesCombining: on the enclave's blocking socket a writer that finds
// another writing leaves its frame to it (wire.Conn.CombineWrites). FINALIZE's RESULT, left so
// while the host is slow to read the logs of a busy goroutine, must still reach the host before
// the runtime closes the channel.
func TestFinalizeResultOutlivesCombining(t *testing.T) {
	hostEnd, encEnd := socketPair(t, unix.SOCK_STREAM)
	f, err := encEnd.(*net.UnixConn).File()
	encEnd.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	sock, err := blocksock.New(fd)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{t: t, c: wire.NewConn(hostEnd, 0), raw: hostEnd, done: make(chan error, 1)}
	t.Cleanup(func() { hostEnd.Close() })
	go func() { h.done <- enclave.Serve(context.Background(), sock, &chattyApp{stop: make(chan struct{})}) }()
	if f, err := h.c.ReadFrame(); err != nil || f.Kind != wire.KindHello {
		t.Fatalf("first frame %v, %v", f.Kind, err)
	}
	h.send(wire.KindInit, 1, wire.AppendInit(nil, wire.InitParams{Name: "x"}))
	time.Sleep(200 * time.Millisecond) // not reading: the logger's writes fill the socket and block
	h.send(wire.KindFinalize, 2, wire.AppendRequestHeader(nil, wire.KindFinalize, 0, ""))
	hostEnd.SetReadDeadline(time.Now().Add(20 * time.Second))
	var results []uint64
	logs := 0
	for {
		f, err := h.c.ReadFrame()
		if err != nil {
			if len(results) != 2 || results[1] != 2 {
				t.Fatalf("after %d LOG frames and RESULTs %v: %v (Serve: %v); want the RESULT of FINALIZE (2)", logs, results, err, h.ended())
			}
			break
		}
		switch f.Kind {
		case wire.KindLog:
			logs++
		case wire.KindResult:
			results = append(results, f.ID)
		}
	}
	if err := h.ended(); err != nil {
		t.Fatal(err)
	}
}
