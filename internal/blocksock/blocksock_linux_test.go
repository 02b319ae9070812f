package blocksock

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketPair returns a non-blocking socketpair: one end as a descriptor for New, the other as
// an *os.File, which reads and writes it through Go's poller (as a host does).
func socketPair(t *testing.T) (int, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "peer")
	t.Cleanup(func() { unix.Close(fds[0]); peer.Close() })
	return fds[0], peer
}

func flags(t *testing.T, fd uintptr) int {
	t.Helper()
	fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl
}

func TestConn(t *testing.T) {
	fd, peer := socketPair(t)
	c, err := New(fd)
	if err != nil {
		t.Fatal(err)
	}
	if flags(t, uintptr(fd))&unix.O_NONBLOCK != 0 {
		t.Fatal("New left the descriptor non-blocking")
	}
	raw, err := peer.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(pfd uintptr) {
		if flags(t, pfd)&unix.O_NONBLOCK == 0 {
			t.Error("New changed the peer's end too")
		}
	})

	// A read waits for data instead of failing with EAGAIN.
	got := make(chan string, 1)
	go func() {
		p := make([]byte, 16)
		n, err := c.Read(p)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(p[:n])
	}()
	time.Sleep(20 * time.Millisecond) // the read must still be waiting: nothing was written
	select {
	case s := <-got:
		t.Fatalf("read returned %q before anything was written", s)
	default:
	}
	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "hello" {
		t.Fatalf("read %q, want hello", s)
	}

	// A write larger than the socket's buffer is written whole while the peer drains it.
	big := make([]byte, 4<<20)
	drained := make(chan int64, 1)
	go func() {
		n, _ := io.CopyN(io.Discard, peer, int64(len(big)))
		drained <- n
	}()
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if n := <-drained; n != int64(len(big)) {
		t.Fatalf("peer read %d bytes", n)
	}

	// Close ends a read blocked in another thread, with EOF.
	res := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if err != io.EOF {
			t.Fatalf("blocked read after Close: %v, want io.EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a blocked read")
	}
	if err := c.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Close: %v, want os.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, unix.EPIPE) {
		t.Fatalf("write after Close: %v, want EPIPE", err)
	}
}

func TestConnPeerGone(t *testing.T) {
	fd, peer := socketPair(t)
	c, err := New(fd)
	if err != nil {
		t.Fatal(err)
	}
	peer.Close()
	if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("read from a closed peer: %d, %v; want 0, io.EOF", n, err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, unix.EPIPE) {
		t.Fatalf("write to a closed peer: %v, want EPIPE", err)
	}
}

func TestNewRejects(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := New(int(r.Fd())); !errors.Is(err, ErrNotSocket) {
		t.Fatalf("New on a pipe: %v, want ErrNotSocket", err)
	}
	if _, err := New(1 << 20); !errors.Is(err, unix.EBADF) {
		t.Fatalf("New on a closed descriptor: %v, want EBADF", err)
	}
}
