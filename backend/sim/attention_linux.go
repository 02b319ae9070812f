package sim

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// notifier is the host end of the attention socket (docs/wire.md, "Attention").
type notifier struct {
	c  net.Conn
	rc syscall.RawConn
}

// newNotifier wraps c, the host end of a SOCK_SEQPACKET socketpair (seqpacketPair): one
// notification per record, so a write is whole or not at all. A net.Conn is non-blocking, and
// closed safely under a concurrent Notify. The caller still owns c.
func newNotifier(c net.Conn) (*notifier, error) {
	rc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("attention socket: %w", err)
	}
	return &notifier{c: c, rc: rc}, nil
}

// seqpacketPair returns a connected SOCK_SEQPACKET socketpair: the host's end as a net.Conn,
// the enclave's as a file to pass at exec. name labels both ("asylo-NAME-host", "-child").
func seqpacketPair(name string) (net.Conn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	child := os.NewFile(uintptr(fds[1]), "asylo-"+name+"-child")
	hf := os.NewFile(uintptr(fds[0]), "asylo-"+name+"-host")
	host, err := net.FileConn(hf)
	hf.Close()
	if err != nil {
		child.Close()
		return nil, nil, err
	}
	return host, child, nil
}

// Notify writes one notification without waiting. If the socket buffer is full (hundreds of
// notifications unread: the enclave is not reading them), it is dropped; a later one carries a
// count at least as high.
func (n *notifier) Notify(sent uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], sent)
	n.rc.Write(func(fd uintptr) bool {
		unix.Write(int(fd), b[:])
		return true
	})
}

func (n *notifier) close() { n.c.Close() }

// Notify implements backend.Notifier.
func (i *instance) Notify(sent uint64) { i.attn.Notify(sent) }
