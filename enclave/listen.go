package enclave

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/asylo-go/asylo/internal/wire"
)

// Listen asks the host to listen on network ("tcp", "tcp4" or "tcp6") and address, and returns
// a listener whose accepted connections are handed into the enclave: the enclave has no sockets
// of its own, but the bytes of an accepted connection go between the peer and the enclave
// directly. The host can still read and alter them: speak TLS on them (package atls) to keep them
// confidential. The host decides whether the enclave may listen (host.LoadConfig.AllowListen).
func Listen(ctx context.Context, network, address string) (net.Listener, error) {
	s := serverFrom(ctx)
	if s == nil {
		return nil, errors.New("enclave: Listen called outside an enclave call")
	}
	if len(network) > wire.MaxNetwork || len(address) > wire.MaxAddress {
		return nil, fmt.Errorf("enclave: Listen: network or address too long")
	}
	b, err := s.hostCall(ctx, wire.OpListen, wire.AppendNetAddr(nil, network, address))
	if err != nil {
		return nil, fmt.Errorf("enclave: Listen: %w", err)
	}
	if len(b) < 4 || len(b) > 4+wire.MaxAddress || !printable(b[4:]) {
		return nil, fmt.Errorf("enclave: %w: malformed LISTEN answer", wire.ErrProtocol)
	}
	lctx, cancel := context.WithCancel(s.baseCtx)
	return &listener{s: s, id: binary.LittleEndian.Uint32(b), addr: hostAddr{network, string(b[4:])}, ctx: lctx, cancel: cancel}, nil
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

type hostAddr struct{ network, s string }

func (a hostAddr) Network() string { return a.network }
func (a hostAddr) String() string  { return a.s }

type listener struct {
	s      *server
	id     uint32
	addr   net.Addr
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

func (l *listener) Addr() net.Addr { return l.addr }

// Accept waits for the host to accept a connection and hand it in.
func (l *listener) Accept() (net.Conn, error) {
	b, err := l.s.hostCall(l.ctx, wire.OpAccept, binary.LittleEndian.AppendUint32(nil, l.id))
	if err != nil {
		if l.ctx.Err() != nil {
			return nil, net.ErrClosed
		}
		return nil, fmt.Errorf("enclave: accept: %w", err)
	}
	return l.s.passedConn(l.ctx, b, "ACCEPT")
}

// passedConn takes the connection an ACCEPT or DIAL answer announces: the answer is the token
// (then the peer's address), and the socket arrives on the connection-passing socket.
func (s *server) passedConn(ctx context.Context, answer []byte, what string) (net.Conn, error) {
	if len(answer) < 8 || len(answer) > 8+wire.MaxAddress {
		return nil, fmt.Errorf("enclave: %w: malformed %s answer", wire.ErrProtocol, what)
	}
	fd, err := s.conns().wait(ctx, binary.LittleEndian.Uint64(answer))
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "passed-conn")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("enclave: connection from the host: %w", err)
	}
	return c, nil
}

// Close stops listening; a blocked Accept returns net.ErrClosed.
func (l *listener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		_, err = l.s.hostCall(context.Background(), wire.OpCloseListener, binary.LittleEndian.AppendUint32(nil, l.id))
	})
	return err
}

// maxPendingConns bounds connections the host handed in that no Accept has claimed yet.
const maxPendingConns = 64

// connReceiver receives connections (SCM_RIGHTS) on the connection-passing socket and matches
// them to Accepts by token. The host is not trusted to send only what was asked for: extras
// beyond the bound are closed.
type connReceiver struct {
	mu      sync.Mutex
	err     error
	pending map[uint64]int
	waiters map[uint64]chan int
}

func (s *server) conns() *connReceiver {
	s.connOnce.Do(func() {
		r := &connReceiver{pending: map[uint64]int{}, waiters: map[uint64]chan int{}}
		s.connRecv = r
		c, err := passSocket()
		if err != nil {
			r.err = err
			return
		}
		go r.loop(c)
	})
	return s.connRecv
}

func passSocket() (*net.UnixConn, error) {
	c, ok, err := launchSocket(wire.EnvConnPass, "connection-passing socket")
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: this back-end passes no connections", ErrUnsupported)
	case err != nil:
		return nil, fmt.Errorf("enclave: %w", err)
	}
	return c, nil
}

func (r *connReceiver) loop(c *net.UnixConn) {
	buf := make([]byte, 8)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			r.mu.Lock()
			r.err = fmt.Errorf("enclave: connection-passing socket: %w", err)
			for _, w := range r.waiters {
				close(w)
			}
			r.waiters = map[uint64]chan int{}
			r.mu.Unlock()
			return
		}
		fds := parseRights(oob[:oobn])
		if n != 8 || len(fds) != 1 {
			for _, fd := range fds { // not what the protocol sends: drop it
				unix.Close(fd)
			}
			continue
		}
		tok := binary.LittleEndian.Uint64(buf)
		r.mu.Lock()
		if w, ok := r.waiters[tok]; ok {
			delete(r.waiters, tok)
			w <- fds[0]
		} else if _, dup := r.pending[tok]; dup || len(r.pending) >= maxPendingConns {
			unix.Close(fds[0])
		} else {
			r.pending[tok] = fds[0]
		}
		r.mu.Unlock()
	}
}

func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if f, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, f...)
		}
	}
	return fds
}

func (r *connReceiver) wait(ctx context.Context, tok uint64) (int, error) {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return -1, r.err
	}
	if fd, ok := r.pending[tok]; ok {
		delete(r.pending, tok)
		r.mu.Unlock()
		return fd, nil
	}
	w := make(chan int, 1)
	r.waiters[tok] = w
	r.mu.Unlock()
	select {
	case fd, ok := <-w:
		if !ok {
			return -1, r.err
		}
		return fd, nil
	case <-ctx.Done():
		r.mu.Lock()
		delete(r.waiters, tok)
		r.mu.Unlock()
		return -1, net.ErrClosed
	}
}

// Dial asks the host to connect to address on network ("tcp", "tcp4" or "tcp6") and hands the
// connection into the enclave. The host decides whether it may (host.LoadConfig.AllowDial), and
// can read and alter the bytes: speak TLS on the connection (package atls).
func Dial(ctx context.Context, network, address string) (net.Conn, error) {
	s := serverFrom(ctx)
	if s == nil {
		return nil, errors.New("enclave: Dial called outside an enclave call")
	}
	if len(network) > wire.MaxNetwork || len(address) > wire.MaxAddress {
		return nil, fmt.Errorf("enclave: Dial: network or address too long")
	}
	b, err := s.hostCall(ctx, wire.OpDial, wire.AppendNetAddr(nil, network, address))
	if err != nil {
		return nil, fmt.Errorf("enclave: Dial: %w", err)
	}
	return s.passedConn(ctx, b, "DIAL")
}
