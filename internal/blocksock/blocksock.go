//go:build unix

// Package blocksock reads and writes a stream socket with blocking system calls instead of
// through Go's network poller. The enclave runtime uses it for its channel to the host (design
// note 23), and internal/benchtools/rawecho for the matching floor.
//
// A goroutine that reads through a Conn holds its thread while it waits. In exchange the
// thread sleeps in read(2) and the peer's write wakes it directly: no EAGAIN, no park in the
// scheduler, no epoll_pwait and no thread hand-over per message. That suits a process with one
// channel and one goroutine reading it, which need not be interruptible: nothing but Close
// (or the peer) ends a blocked Read. It does not suit a host, whose callers must be.
package blocksock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrNotSocket is returned by New for a descriptor that is not a socket.
var ErrNotSocket = errors.New("blocksock: descriptor is not a socket")

// Conn is a socket read and written with blocking system calls. Read and Write may be called
// from different goroutines; concurrent Writes may interleave, so callers serialise them.
type Conn struct {
	fd     int
	closed atomic.Bool
}

// New takes over the socket descriptor fd, which the caller no longer uses, and puts its open
// file description in blocking mode.
func New(fd int) (*Conn, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%w: descriptor %d", ErrNotSocket, fd)
	}
	// O_NONBLOCK belongs to the open file description. The peer's end of a socketpair is
	// another one, so this changes nothing on the peer's side.
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	return &Conn{fd: fd}, nil
}

// Read reads what has arrived, waiting for at least one byte. It returns io.EOF once the peer
// has shut down its sending side, or after Close.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(c.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Write writes all of p, waiting for room in the socket's buffer as needed.
func (c *Conn) Write(p []byte) (int, error) {
	w := 0
	for w < len(p) {
		n, err := unix.Write(c.fd, p[w:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return w, os.NewSyscallError("write", err)
		}
		if n == 0 { // not for a stream socket; but never spin on it
			return w, io.ErrShortWrite
		}
		w += n
	}
	return w, nil
}

// Close shuts the socket down, which ends a Read or Write blocked in another thread (with
// io.EOF and EPIPE). It does not release the descriptor: a thread about to enter read(2) could
// then read another file that took its number. A Conn is meant to live as long as its process.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return os.ErrClosed
	}
	if err := unix.Shutdown(c.fd, unix.SHUT_RDWR); err != nil {
		return os.NewSyscallError("shutdown", err)
	}
	return nil
}
