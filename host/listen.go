package host

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/internal/wire"
)

// maxListeners bounds the listeners one enclave may hold.
const maxListeners = 16

// hostListeners serves LISTEN / ACCEPT / CLOSE_LISTENER for one enclave.
type hostListeners struct {
	allow     func(network, address string) error // nil: listening is refused
	allowDial func(network, address string) error // nil: dialling is refused
	log       *slog.Logger

	mu   sync.Mutex
	next uint32
	ls   map[uint32]net.Listener
}

func (h *hostListeners) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, l := range h.ls {
		l.Close()
		delete(h.ls, id)
	}
}

func (h *hostListeners) serve(ctx context.Context, inst backend.Instance, op wire.Op, req []byte) (wire.Status, []byte) {
	switch op {
	case wire.OpListen:
		network, address, err := wire.ParseNetAddr(req)
		if err != nil {
			return wire.StatusInvalidArgument, []byte(wire.TruncateMessage(err.Error()))
		}
		if h.allow == nil {
			return wire.StatusUnimplemented, []byte("this host does not let enclaves listen (host.LoadConfig.AllowListen)")
		}
		if _, ok := inst.(backend.ConnPasser); !ok {
			return wire.StatusUnimplemented, []byte("this back-end cannot pass connections into the enclave")
		}
		if err := h.allow(network, address); err != nil {
			return wire.StatusApplication, []byte(wire.TruncateMessage("listen refused by the host: " + err.Error()))
		}
		h.mu.Lock()
		full := len(h.ls) >= maxListeners
		h.mu.Unlock()
		if full {
			return wire.StatusResourceExhausted, []byte("too many listeners")
		}
		l, err := net.Listen(network, address)
		if err != nil {
			return wire.StatusApplication, []byte(wire.TruncateMessage(err.Error()))
		}
		h.mu.Lock()
		h.next++
		id := h.next
		if h.ls == nil {
			h.ls = map[uint32]net.Listener{}
		}
		h.ls[id] = l
		h.mu.Unlock()
		h.log.Info("enclave listening", "network", network, "address", l.Addr().String())
		return wire.StatusOK, append(binary.LittleEndian.AppendUint32(nil, id), l.Addr().String()...)
	case wire.OpDial:
		network, address, err := wire.ParseNetAddr(req)
		if err != nil {
			return wire.StatusInvalidArgument, []byte(wire.TruncateMessage(err.Error()))
		}
		if h.allowDial == nil {
			return wire.StatusUnimplemented, []byte("this host does not let enclaves dial (host.LoadConfig.AllowDial)")
		}
		passer, ok := inst.(backend.ConnPasser)
		if !ok {
			return wire.StatusUnimplemented, []byte("this back-end cannot pass connections into the enclave")
		}
		if err := h.allowDial(network, address); err != nil {
			return wire.StatusApplication, []byte(wire.TruncateMessage("dial refused by the host: " + err.Error()))
		}
		d := net.Dialer{Timeout: 30 * time.Second}
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			return wire.StatusApplication, []byte(wire.TruncateMessage(err.Error()))
		}
		remote := c.RemoteAddr().String()
		tok, err := passer.PassConn(c)
		if err != nil {
			return wire.StatusApplication, []byte(wire.TruncateMessage(err.Error()))
		}
		return wire.StatusOK, append(binary.LittleEndian.AppendUint64(nil, tok), remote...)
	case wire.OpAccept, wire.OpCloseListener:
		if len(req) != 4 {
			return wire.StatusInvalidArgument, []byte("want a listener id")
		}
		id := binary.LittleEndian.Uint32(req)
		h.mu.Lock()
		l, ok := h.ls[id]
		if ok && op == wire.OpCloseListener {
			delete(h.ls, id)
		}
		h.mu.Unlock()
		if !ok {
			return wire.StatusInvalidArgument, []byte("unknown listener")
		}
		if op == wire.OpCloseListener {
			l.Close()
			return wire.StatusOK, nil
		}
		c, err := l.Accept()
		if err != nil {
			return wire.StatusApplication, []byte(wire.TruncateMessage(err.Error()))
		}
		remote := c.RemoteAddr().String()
		tok, err := inst.(backend.ConnPasser).PassConn(c)
		if err != nil {
			return wire.StatusApplication, []byte(wire.TruncateMessage(err.Error()))
		}
		return wire.StatusOK, append(binary.LittleEndian.AppendUint64(nil, tok), remote...)
	}
	return wire.StatusUnimplemented, []byte(fmt.Sprintf("op %d", op))
}
