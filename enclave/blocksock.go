//go:build unix

package enclave

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// blockingSocket is the host channel's socket, read and written with blocking system calls
// instead of through Go's network poller (design note 23). An enclave has one such channel and
// at most one goroutine reading it, so this costs one thread. In exchange the reader sleeps in
// read(2) and the host's write wakes that thread directly: no EAGAIN, no park in the scheduler,
// no epoll_pwait and no thread hand-over per request, which cut the enclave's CPU per 64-byte
// call by a third and the round trip by a fifth (docs/benchmarks.md, session 9).
type blockingSocket struct {
	fd     int
	closed atomic.Bool
}

// newBlockingSocket takes over the socket descriptor fd, which the caller no longer uses.
func newBlockingSocket(fd int) (*blockingSocket, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("descriptor %d is not a socket", fd)
	}
	// O_NONBLOCK belongs to the open file description. The host's end of the socketpair is
	// another one, so this changes nothing on the host's side.
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	return &blockingSocket{fd: fd}, nil
}

func (b *blockingSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(b.fd, p)
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

func (b *blockingSocket) Write(p []byte) (int, error) {
	w := 0
	for w < len(p) {
		n, err := unix.Write(b.fd, p[w:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return w, os.NewSyscallError("write", err)
		}
		w += n
	}
	return w, nil
}

// Close shuts the socket down, which ends a read or write blocked in another thread (it returns
// EOF or EPIPE). It does not release the descriptor: a thread about to enter read(2) could then
// be handed another file that took its number. The channel lives as long as the process.
func (b *blockingSocket) Close() error {
	if b.closed.Swap(true) {
		return os.ErrClosed
	}
	if err := unix.Shutdown(b.fd, unix.SHUT_RDWR); err != nil {
		return os.NewSyscallError("shutdown", err)
	}
	return nil
}
