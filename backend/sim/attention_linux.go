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

// newNotifier takes ownership of fd, the host end of a SOCK_SEQPACKET socketpair: one
// notification per record, so a write is whole or not at all.
func newNotifier(fd int) (*notifier, error) {
	f := os.NewFile(uintptr(fd), "asylo-attention-host")
	c, err := net.FileConn(f) // non-blocking, and closed safely under a concurrent Notify
	f.Close()
	if err != nil {
		return nil, err
	}
	rc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("attention socket: %w", err)
	}
	return &notifier{c: c, rc: rc}, nil
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
