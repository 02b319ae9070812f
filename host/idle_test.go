//go:build unix

package host_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/internal/wire"
)

// sockBackend serves an in-process enclave over a Unix socketpair, whose host end is a
// *net.UnixConn as the sim back-end's is.
type sockBackend struct {
	opts    []enclave.Option
	started chan<- *servedInstance // if set, receives each instance
}

func (sockBackend) Name() string { return "sock-inprocess" }

func (b sockBackend) Start(ctx context.Context, spec backend.Spec) (backend.Instance, error) {
	hostEnd, encEnd := unixPair()
	in := serveInProcess("sock-inprocess", hostEnd, encEnd, b.opts)
	if b.started != nil {
		b.started <- in
	}
	return in, nil
}

// unixPair returns the two ends of a Unix stream socketpair, each a *net.UnixConn.
func unixPair() (net.Conn, net.Conn) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0) // (no SOCK_CLOEXEC on darwin)
	if err != nil {
		panic(err)
	}
	conn := func(fd int) net.Conn {
		unix.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "sock")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			panic(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// logLines collects the messages of the records a host logger receives.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.lines = append(l.lines, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }
func (l *logLines) has(msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if s == msg {
			return true
		}
	}
	return false
}

// idle outlasts the read loop's two quiet ticks, after which it reads for itself again.
const idle = 10 * time.Millisecond

// TestFramesWhileIdle: frames the enclave sends outside any call (a log record from a goroutine
// that outlives its call, arriving right behind the RESULT, perhaps in the same read; and one
// after an idle spell) reach the host, and an enclave that ends while the host is idle is
// noticed.
func TestFramesWhileIdle(t *testing.T) {
	var logs logLines
	after := enclave.Handle("log-after", func(ctx context.Context, in []byte) ([]byte, error) {
		log := enclave.Logger(ctx)
		go func() {
			if in[0] == 'L' {
				time.Sleep(idle) // after the read loop has gone back to waiting
			}
			log.Info(string(in))
		}()
		return nil, nil
	})
	started := make(chan *servedInstance, 1)
	be := sockBackend{opts: []enclave.Option{after}, started: started}
	e, err := host.Load(context.Background(), host.LoadConfig{Name: "t", Backend: be, Debug: true, Logger: slog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		msg := string("SL"[i%2]) + strings.Repeat("x", i)
		if _, err := e.Call(context.Background(), "log-after", []byte(msg)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !logs.has(msg) {
			if time.Now().After(deadline) {
				t.Fatalf("log record %q sent after its call never arrived", msg)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(idle)
	}
	// The enclave's end closes while nobody calls: the read loop must see it.
	(<-started).enc.Close()
	select {
	case <-e.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the enclave's end closed while idle, and the host did not notice")
	}
	if _, err := e.Call(context.Background(), "log-after", []byte("S")); !errors.Is(err, host.ErrEnclaveLost) {
		t.Fatalf("call after the end: %v, want ErrEnclaveLost", err)
	}
}

// TestFrameBehindResultWhileIdle: a frame that arrives in the same read as a caller's RESULT is
// left in the channel's buffer when the caller returns; it must still be handled, though no
// more data comes. (A read loop that waits for data without the read token, tried in session
// 11, must be woken for it.)
func TestFrameBehindResultWhileIdle(t *testing.T) {
	var logs logLines
	script := func(c *wire.Conn, rawConn net.Conn) {
		if !greet(c) {
			return
		}
		for i := 0; ; i++ {
			f, err := c.ReadFrame()
			if err != nil || f.Kind != wire.KindCall {
				return
			}
			// RESULT and a log record in one write: the caller's one read takes both.
			b := raw(wire.KindResult, f.ID, wire.AppendStatus(nil, wire.StatusOK))
			b = append(b, raw(wire.KindLog, 0, wire.AppendLog(nil, wire.LogRecord{Message: fmt.Sprint("behind ", i)}))...)
			if _, err := rawConn.Write(b); err != nil {
				return
			}
		}
	}
	e, err := host.Load(context.Background(), host.LoadConfig{Name: "t", Backend: fakeBackend{script: script, sock: true}, Logger: slog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(context.Background(), nil)
	for i := range 20 {
		time.Sleep(idle) // the read loop is back to reading
		if _, err := e.Call(context.Background(), "x", nil); err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprint("behind ", i)
		deadline := time.Now().Add(5 * time.Second)
		for !logs.has(msg) {
			if time.Now().After(deadline) {
				t.Fatalf("the log record behind RESULT %d was never handled", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
}
