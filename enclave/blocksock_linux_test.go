//go:build linux

package enclave

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func socketPair(t *testing.T) (mine, theirs int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func TestBlockingSocket(t *testing.T) {
	mine, theirs := socketPair(t)
	b, err := newBlockingSocket(mine)
	if err != nil {
		t.Fatal(err)
	}
	if fl, err := unix.FcntlInt(uintptr(mine), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Fatalf("descriptor flags %#o, %v: still non-blocking", fl, err)
	}
	if fl, err := unix.FcntlInt(uintptr(theirs), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Fatalf("peer's flags %#o, %v: the peer's end must keep its own mode", fl, err)
	}

	// A read waits for data instead of failing with EAGAIN.
	got := make(chan string, 1)
	go func() {
		p := make([]byte, 16)
		n, err := b.Read(p)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(p[:n])
	}()
	time.Sleep(20 * time.Millisecond) // let the read block (it must not return before the write)
	select {
	case s := <-got:
		t.Fatalf("read returned %q before anything was written", s)
	default:
	}
	if _, err := unix.Write(theirs, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "hello" {
		t.Fatalf("read %q, want hello", s)
	}

	// A write larger than the socket's buffer is written whole while the peer drains it.
	big := make([]byte, 4<<20)
	drained := make(chan int, 1)
	go func() {
		n, _ := io.Copy(io.Discard, io.LimitReader(fdReader(theirs), int64(len(big))))
		drained <- int(n)
	}()
	if n, err := b.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if n := <-drained; n != len(big) {
		t.Fatalf("peer read %d bytes", n)
	}

	// Close ends a read blocked in another thread, with EOF.
	res := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 1))
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := b.Close(); err != nil {
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
	if err := b.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Close: %v, want os.ErrClosed", err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, unix.EPIPE) {
		t.Fatalf("write after Close: %v, want EPIPE", err)
	}
}

func TestBlockingSocketPeerGone(t *testing.T) {
	mine, theirs := socketPair(t)
	b, err := newBlockingSocket(mine)
	if err != nil {
		t.Fatal(err)
	}
	unix.Shutdown(theirs, unix.SHUT_WR)
	if n, err := b.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("read from a closed peer: %d, %v; want 0, io.EOF", n, err)
	}
}

func TestBlockingSocketNotASocket(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := newBlockingSocket(int(r.Fd())); err == nil {
		t.Fatal("newBlockingSocket accepted a pipe")
	}
	if _, err := newBlockingSocket(1 << 20); !errors.Is(err, unix.EBADF) {
		t.Fatalf("newBlockingSocket on a closed descriptor: %v, want EBADF", err)
	}
}

// fdReader reads a non-blocking descriptor, waiting out EAGAIN (the test's side of the pair).
type fdReader int

func (fd fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(fd), p)
		if err == unix.EAGAIN || err == unix.EINTR {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}
