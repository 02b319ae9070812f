// Package instant is an in-memory channel whose far end answers each frame the moment it is
// written, on the writer's goroutine. Benchmarks use it to measure one side's per-call work (the
// host's or the enclave runtime's) with no transport and no second party to wait for, so that
// ns/op is that side's CPU cost, steady enough to compare small changes (docs/benchmarks.md).
package instant

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/asylo-go/asylo/internal/wire"
)

// Pipe is one end of the channel. Its peer is Respond, which gets each complete frame written
// (header and body, valid only during the call) and returns the frames to queue for reading.
type Pipe struct {
	respond func(frame []byte) [][]byte

	mu       sync.Mutex
	out      []byte // written, not yet a whole frame
	in       []byte // queued for Read
	ready    chan struct{}
	closed   bool
	deadline time.Time
}

// New returns a Pipe whose peer is respond; initial is queued for reading at once (a HELLO).
func New(respond func(frame []byte) [][]byte, initial ...[]byte) *Pipe {
	p := &Pipe{respond: respond, ready: make(chan struct{}, 1)}
	for _, f := range initial {
		p.in = append(p.in, f...)
	}
	return p
}

// Frame encodes one frame.
func Frame(kind wire.Kind, id uint64, body ...[]byte) []byte {
	n := 0
	for _, b := range body {
		n += len(b)
	}
	f := make([]byte, wire.HeaderSize, wire.HeaderSize+n)
	wire.PutHeader(f, kind, id, n)
	for _, b := range body {
		f = append(f, b...)
	}
	return f
}

// Write hands every complete frame in p to the peer and queues its answers.
func (p *Pipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, io.ErrClosedPipe
	}
	p.out = append(p.out, b...)
	queued := false
	for len(p.out) >= wire.HeaderSize {
		_, n, err := wire.ParseHeader(p.out, wire.HardMaxBody)
		if err != nil {
			return 0, err
		}
		if len(p.out) < wire.HeaderSize+n {
			break
		}
		for _, a := range p.respond(p.out[:wire.HeaderSize+n]) {
			p.in = append(p.in, a...)
			queued = true
		}
		p.out = p.out[:copy(p.out, p.out[wire.HeaderSize+n:])]
	}
	if queued {
		select {
		case p.ready <- struct{}{}:
		default:
		}
	}
	return len(b), nil
}

// Read returns queued bytes, waiting for some if there are none.
func (p *Pipe) Read(b []byte) (int, error) {
	for {
		p.mu.Lock()
		if len(p.in) > 0 {
			n := copy(b, p.in)
			p.in = p.in[:copy(p.in, p.in[n:])]
			p.mu.Unlock()
			return n, nil
		}
		closed, dl := p.closed, p.deadline
		p.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		if dl.IsZero() {
			<-p.ready
			continue
		}
		d := time.Until(dl)
		if d <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		select {
		case <-p.ready:
		case <-t.C:
		}
		t.Stop()
	}
}

// SetReadDeadline makes a waiting or later Read fail with os.ErrDeadlineExceeded after t.
func (p *Pipe) SetReadDeadline(t time.Time) error {
	p.mu.Lock()
	p.deadline = t
	p.mu.Unlock()
	p.wake()
	return nil
}

// SetWriteDeadline does nothing: writes never wait.
func (p *Pipe) SetWriteDeadline(time.Time) error { return nil }

// Close ends the channel: Read returns io.EOF once the queue is empty.
func (p *Pipe) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wake()
	return nil
}

func (p *Pipe) wake() {
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

// Push queues frames for reading, as if the peer had sent them unprompted.
func (p *Pipe) Push(frames ...[]byte) {
	p.mu.Lock()
	for _, f := range frames {
		p.in = append(p.in, f...)
	}
	p.mu.Unlock()
	p.wake()
}
