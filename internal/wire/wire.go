// Package wire implements the host <-> enclave protocol specified in docs/wire.md (version 1).
//
// Both ends use it and both treat the other as hostile: every decoder checks every length against
// the bytes present and the limits of the spec, and any violation is reported as ErrProtocol (or
// ErrTooLarge), after which the caller must close the connection.
package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Version is the protocol version this package speaks.
const Version = 1

// HeaderSize is the size of a frame header.
const HeaderSize = 16

// Limits from docs/wire.md.
const (
	DefaultMaxBody  = 64 << 20
	HardMaxBody     = 1 << 30
	MaxMethodName   = 128
	MaxEnclaveName  = 128
	MaxBackendName  = 32
	MaxErrorMessage = 4096
	MaxLogRecord    = 16 << 10
	// allocStep bounds how much a receiver allocates ahead of the bytes that actually arrived.
	// Bodies up to this size are read into one allocation, with no copying.
	allocStep = 4 << 20
)

// Kind is a frame kind.
type Kind uint8

// Frame kinds (docs/wire.md, "Kinds").
const (
	KindHello      Kind = 1
	KindInit       Kind = 2
	KindRun        Kind = 3
	KindCall       Kind = 4
	KindFinalize   Kind = 5
	KindCancel     Kind = 6
	KindResult     Kind = 7
	KindHostCall   Kind = 8
	KindHostResult Kind = 9
	KindLog        Kind = 10
)

var kindNames = [...]string{"", "HELLO", "INIT", "RUN", "CALL", "FINALIZE", "CANCEL", "RESULT", "HOSTCALL", "HOSTRESULT", "LOG"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// hasID reports whether frames of kind k carry a non-zero id.
func (k Kind) hasID() bool { return k != KindHello && k != KindLog }

// Status is a RESULT / HOSTRESULT status code.
type Status uint16

// Status codes (docs/wire.md, "Status codes").
const (
	StatusOK                Status = 0
	StatusApplication       Status = 1
	StatusPanic             Status = 2
	StatusUnknownMethod     Status = 3
	StatusBadState          Status = 4
	StatusCanceled          Status = 5
	StatusDeadlineExceeded  Status = 6
	StatusResourceExhausted Status = 7
	StatusInvalidArgument   Status = 8
	StatusUnimplemented     Status = 9
	StatusNotFound          Status = 10
	maxStatus                      = StatusNotFound
)

var statusNames = [...]string{"OK", "APPLICATION", "PANIC", "UNKNOWN_METHOD", "BAD_STATE", "CANCELED",
	"DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INVALID_ARGUMENT", "UNIMPLEMENTED", "NOT_FOUND"}

func (s Status) String() string {
	if s <= maxStatus {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint16(s))
}

// Op is a host-call operation.
type Op uint16

// Host-call operations (docs/wire.md, "Host-call operations").
const (
	OpUntrustedTime Op = 1
	OpAttest        Op = 2
	OpSealKeyID     Op = 3
	OpSealKey       Op = 4
)

// Errors. Every decoding failure wraps ErrProtocol; a body over the receiver's limit wraps ErrTooLarge.
var (
	ErrProtocol = errors.New("wire: protocol violation")
	ErrTooLarge = errors.New("wire: message too large")
)

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// Frame is one decoded frame.
type Frame struct {
	Kind Kind
	ID   uint64
	Body []byte
}

// Conn frames messages over a byte stream. One goroutine may call ReadFrame at a time; WriteFrame
// is safe for concurrent use.
type Conn struct {
	rw      io.ReadWriteCloser
	br      *bufio.Reader
	maxRecv int
	rhdr    [HeaderSize]byte

	// A frame whose reading was interrupted (a read deadline) is resumed by the next
	// ReadFrameInto: the header bytes read so far, then the frame and the body read so far.
	rhdrN int
	rf    Frame
	rn    int    // body length
	rbody []byte // body so far: len is what has been read
	rcap  bool   // rbody is the caller's buffer (ReadFrameInto's hook), of capacity rn

	wl   writeLock // the write lock
	spin bool      // the stream is a spinning ring: try the lock a while before parking
	wbuf []byte
	wst  [2]byte // WriteResult's status, under the write lock

	// The interruption of the current WriteFrameContext: igen counts writes, so that a
	// context's end that comes late interrupts no later write.
	imu    sync.Mutex
	igen   uint64
	ifired bool

	// Frames read and written whole, counted for the attention channel (docs/wire.md).
	nread, nwritten atomic.Uint64

	// Write combining (CombineWrites): a small frame whose writer finds the write lock taken
	// waits in pend, and the holder writes it before releasing the lock. pmu guards pend, pendN
	// and werr, and the release of a combining Conn's lock.
	combine bool
	pmu     sync.Mutex
	pend    []byte // whole frames
	pendN   uint64 // frames in pend
	spare   []byte // the holder's: the buffer pend had before, for the next swap
	werr    error  // a combined write failed: the stream is broken
}

// maxPending bounds the frames waiting for the holder of the write lock (CombineWrites); a writer
// that would exceed it waits for the lock instead, so that a peer that stops reading still holds
// writers back.
const maxPending = 256 << 10

// CombineWrites makes a writer of a small frame (up to 32 KiB) that finds another writing leave
// its frame to that one instead of waiting for the lock, which the holder writes, with any
// others waiting, in one system call before it releases the lock. Such a WriteFrame or
// WriteResult returns before its frame is written; it fails only if an earlier combined write
// failed, and FramesWritten counts its frame once it is written. For a stream written with
// blocking system calls (internal/blocksock), where a parked writer holds up nothing but needs
// a thread wake-up and a P to write (docs/benchmarks.md, session 10). Call it before any write.
// A writer that ends the stream calls Flush first, or the frames left last may be lost.
// WriteFrameContext on such a Conn may wait for the frames left to it after its context ends.
func (c *Conn) CombineWrites() { c.combine = true }

// NewConn wraps rw. maxRecv bounds the body of every received frame; 0 means DefaultMaxBody.
func NewConn(rw io.ReadWriteCloser, maxRecv int) *Conn {
	if maxRecv <= 0 {
		maxRecv = DefaultMaxBody
	}
	if maxRecv > HardMaxBody {
		maxRecv = HardMaxBody
	}
	// A shared-memory ring (internal/shm, which reports Readable) is written in well under a
	// microsecond: there a contended writer does better to retry than to park at once, as it
	// does behind a socket writer, who needs the CPU for its system call (docs/benchmarks.md).
	_, spin := rw.(interface{ Readable() bool })
	return &Conn{rw: rw, br: bufio.NewReaderSize(rw, 64<<10), maxRecv: maxRecv, wl: writeLock{wake: make(chan struct{}, 1)}, spin: spin}
}

// Buffered is the number of bytes already read from the stream and not yet returned in a
// frame. Only the reading goroutine may call it.
func (c *Conn) Buffered() int { return c.br.Buffered() }

// FramesRead is the number of frames ReadFrameInto has returned.
func (c *Conn) FramesRead() uint64 { return c.nread.Load() }

// FramesWritten is the number of frames WriteFrame has written whole. Once a WriteFrame has
// returned, FramesWritten counts its frame and every frame written before it (with
// CombineWrites, once its frame is written).
func (c *Conn) FramesWritten() uint64 { return c.nwritten.Load() }

// Close closes the underlying stream; a blocked ReadFrame returns an error.
func (c *Conn) Close() error { return c.rw.Close() }

// ReadFrame reads and validates the next frame header and reads its body. Errors other than a
// clean io.EOF before a header are fatal for the connection.
func (c *Conn) ReadFrame() (Frame, error) { return c.ReadFrameInto(nil) }

// ReadFrameInto is ReadFrame, except that the body goes into the buffer that buf returns for the
// validated header and body length, if it has the capacity, instead of a new allocation. buf may
// return nil. A receiver that reuses buffers for large bodies saves allocating, zeroing and
// collecting them.
//
// If the stream's Read fails with an error other than EOF (a read deadline, typically), the
// frame read so far is kept and the next call resumes it, so that a reader may be interrupted
// anywhere without losing its place in the stream.
func (c *Conn) ReadFrameInto(buf func(f Frame, n int) []byte) (Frame, error) {
	if c.rhdrN < HeaderSize {
		m, err := io.ReadFull(c.br, c.rhdr[c.rhdrN:])
		c.rhdrN += m
		if err != nil {
			if c.rhdrN > 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				return Frame{}, protoErr("truncated frame header")
			}
			return Frame{}, err
		}
		f, n, err := ParseHeader(c.rhdr[:], c.maxRecv)
		if err != nil {
			return Frame{}, err
		}
		c.rf, c.rn, c.rbody, c.rcap = f, n, nil, false
		if buf != nil && n > 0 {
			if b := buf(f, n); cap(b) >= n {
				c.rbody, c.rcap = b[:0], true
			}
		}
	}
	if err := c.readBody(); err != nil {
		return Frame{}, err
	}
	f := c.rf
	f.Body = c.rbody
	if c.rn == 0 {
		f.Body = nil
	}
	c.rhdrN, c.rf, c.rbody = 0, Frame{}, nil
	c.nread.Add(1)
	return f, nil
}

// readBody reads the rest of the current frame's body into c.rbody.
func (c *Conn) readBody() error {
	for len(c.rbody) < c.rn {
		if !c.rcap && len(c.rbody) == cap(c.rbody) {
			// Allocate only as data arrives (doubling, from at most allocStep), so an
			// announced length costs nothing until its bytes are actually sent.
			grow := min(c.rn-len(c.rbody), max(len(c.rbody), min(c.rn, allocStep)))
			c.rbody = slices.Grow(c.rbody, grow)
		}
		end := min(c.rn, cap(c.rbody))
		m, err := io.ReadFull(c.br, c.rbody[len(c.rbody):end])
		c.rbody = c.rbody[:len(c.rbody)+m]
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return protoErr("truncated frame body (%d of %d bytes)", len(c.rbody), c.rn)
			}
			return err
		}
	}
	return nil
}

// ParseHeader validates a frame header against the spec and a body limit, returning the frame
// (without body) and the body length.
func ParseHeader(h []byte, maxBody int) (Frame, int, error) {
	if len(h) < HeaderSize {
		return Frame{}, 0, protoErr("short frame header")
	}
	n := binary.LittleEndian.Uint32(h[0:4])
	f := Frame{Kind: Kind(h[4]), ID: binary.LittleEndian.Uint64(h[8:16])}
	if f.Kind < KindHello || f.Kind > KindLog {
		return Frame{}, 0, protoErr("unknown frame kind %d", h[4])
	}
	if h[5] != 0 || h[6] != 0 || h[7] != 0 {
		return Frame{}, 0, protoErr("non-zero flags or reserved bytes in %v header", f.Kind)
	}
	if f.Kind.hasID() != (f.ID != 0) {
		return Frame{}, 0, protoErr("%v frame with id %d", f.Kind, f.ID)
	}
	if uint64(n) > uint64(maxBody) {
		return Frame{}, 0, fmt.Errorf("%w: %v body of %d bytes exceeds the limit of %d", ErrTooLarge, f.Kind, n, maxBody)
	}
	return f, int(n), nil
}

// smallWrite is the body size up to which header and body are copied into one buffer and written
// with one system call; larger bodies are written in place (writev on sockets).
const smallWrite = 32 << 10

// WriteFrame writes one frame whose body is the concatenation of parts.
func (c *Conn) WriteFrame(kind Kind, id uint64, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > HardMaxBody {
		return fmt.Errorf("%w: %v body of %d bytes", ErrTooLarge, kind, n)
	}
	if !c.tryLock() {
		if ok, err := c.leave(kind, id, n, parts); ok {
			return err
		}
		c.wl.lock(nil)
	}
	defer c.release()
	err := c.write(kind, id, n, parts)
	if err == nil {
		c.nwritten.Add(1)
	}
	return err
}

// WriteResult writes a RESULT or HOSTRESULT frame: status st, then body. Unlike WriteFrame with
// an encoded status, it allocates nothing (a status buffer of the caller's would escape).
func (c *Conn) WriteResult(kind Kind, id uint64, st Status, body []byte) error {
	if 2+len(body) > HardMaxBody {
		return fmt.Errorf("%w: %v body of %d bytes", ErrTooLarge, kind, 2+len(body))
	}
	if !c.tryLock() {
		var st2 [2]byte
		binary.LittleEndian.PutUint16(st2[:], uint16(st))
		if ok, err := c.leave(kind, id, 2+len(body), [][]byte{st2[:], body}); ok {
			return err
		}
		c.wl.lock(nil)
	}
	defer c.release()
	binary.LittleEndian.PutUint16(c.wst[:], uint16(st))
	err := c.write(kind, id, 2+len(body), [][]byte{c.wst[:], body})
	if err == nil {
		c.nwritten.Add(1)
	}
	return err
}

// WriteFrameContext is WriteFrame, except that it returns as soon as ctx ends, even if the peer
// has stopped reading and the frame cannot be written. A frame it had begun to write is then
// finished in the background, before any later frame, so that the stream stays whole; begun
// reports whether that is so (and the peer may yet receive the frame). Streams that cannot take
// a write deadline are written as by WriteFrame, whatever ctx does.
func (c *Conn) WriteFrameContext(ctx context.Context, kind Kind, id uint64, parts ...[]byte) (begun bool, err error) {
	dl, ok := c.rw.(interface{ SetWriteDeadline(time.Time) error })
	if ctx.Done() == nil || !ok {
		err := c.WriteFrame(kind, id, parts...)
		return err == nil, err
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > HardMaxBody {
		return false, fmt.Errorf("%w: %v body of %d bytes", ErrTooLarge, kind, n)
	}
	if !c.tryLock() && !c.wl.lock(ctx.Done()) {
		return false, ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		c.release()
		return false, err
	}
	// A small frame that fits the stream's buffer at once needs no interruption (an AfterFunc
	// on ctx: allocations and a registration, much of a switchless call's own work): try that
	// first.
	var small []byte
	var pre int
	if n <= smallWrite {
		small = c.smallFrame(kind, id, n, parts)
		if nw, ok := c.rw.(noWaitWriter); ok {
			m, err := nw.WriteNoWait(small)
			switch {
			case err == nil && m == len(small):
				c.nwritten.Add(1)
				c.release()
				return true, nil
			case err != nil:
				c.release()
				return m > 0, err
			}
			pre = m
		}
	}
	// ctx's end interrupts the write with a deadline in the past, unless the write is over.
	c.imu.Lock()
	c.igen++
	gen := c.igen
	c.ifired = false
	c.imu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.imu.Lock()
		defer c.imu.Unlock()
		if c.igen == gen {
			c.ifired = true
			dl.SetWriteDeadline(time.Unix(1, 0))
		}
	})
	var bufs net.Buffers
	var rest []byte // the small path: what is left to write
	var wrote int64
	if small != nil {
		// One buffer, as WriteFrame writes it: one system call, one publication on a ring.
		var m int
		m, err = c.rw.Write(small[pre:])
		wrote, rest = int64(pre+m), small[pre+m:]
	} else {
		h := make([]byte, HeaderSize)
		PutHeader(h, kind, id, n)
		bufs = make(net.Buffers, 1, len(parts)+1)
		bufs[0] = h
		for _, p := range parts {
			if len(p) > 0 {
				bufs = append(bufs, p)
			}
		}
		wrote, err = bufs.WriteTo(c.rw) // consumes what it wrote from bufs
	}
	stop()
	c.imu.Lock()
	c.igen++ // a late interruption no longer applies
	fired := c.ifired
	c.imu.Unlock()
	if fired {
		dl.SetWriteDeadline(time.Time{})
	}
	switch {
	case err == nil:
		c.nwritten.Add(1)
		c.release()
		return true, nil
	case !fired || !errors.Is(err, os.ErrDeadlineExceeded):
		c.release()
		return wrote > 0, err
	case wrote == 0:
		c.release()
		return false, ctx.Err()
	}
	go func() {
		var err error
		if bufs != nil {
			_, err = bufs.WriteTo(c.rw)
		} else {
			_, err = c.rw.Write(rest)
		}
		if err == nil {
			c.nwritten.Add(1)
		}
		c.release()
	}()
	return true, ctx.Err()
}

// noWaitWriter is a stream that can take bytes without waiting for its peer (internal/shm's
// ring): WriteNoWait writes what fits at once and reports how much; fewer than len(p) with a
// nil error means the rest would have to wait.
type noWaitWriter interface {
	WriteNoWait(p []byte) (int, error)
}

// tryLock takes the write lock if it is free, retrying for a while on a spinning ring (whose
// writes take well under a microsecond).
func (c *Conn) tryLock() bool {
	tries := 1
	if c.spin {
		tries = 128
	}
	for range tries {
		if c.wl.tryLock() {
			return true
		}
	}
	return false
}

// writeLock is Conn's write lock. Taking it when it is free is one compare-and-swap. A writer
// that finds it taken parks at once on a channel, where it can also stop waiting when its
// context ends (which a sync.Mutex cannot), and does not spin first: a spinning writer takes
// the CPU a socket's peer needs to drain it (docs/benchmarks.md, session 4). The lock used to be
// the channel itself, whose send and receive cost ~150-200 ns per uncontended write here.
type writeLock struct {
	held    atomic.Bool
	waiters atomic.Int32
	wake    chan struct{} // capacity 1: the lock was released since a waiter last looked
}

func (l *writeLock) tryLock() bool { return l.held.CompareAndSwap(false, true) }

// lock takes the lock, waiting if need be; it reports false if done is closed first (a nil done
// never is).
func (l *writeLock) lock(done <-chan struct{}) bool {
	// A waiter is counted before it tries, and unlock looks for waiters after it releases: with
	// sequentially consistent atomics, a waiter whose try failed is seen by the unlock that
	// follows, which leaves a token. Stale tokens only cause another try.
	l.waiters.Add(1)
	defer l.waiters.Add(-1)
	for {
		if l.tryLock() {
			return true
		}
		select {
		case <-l.wake:
		case <-done:
			return false
		}
	}
}

func (l *writeLock) unlock() {
	// Swap, not Store: a read-modify-write orders the release before the load of waiters in
	// every build (under the race detector a Store is only a release, as internal/shm notes).
	l.held.Swap(false)
	l.wakeWaiter()
}

// wakeWaiter leaves a token for a waiter, if any, after a release.
func (l *writeLock) wakeWaiter() {
	if l.waiters.Load() > 0 {
		select {
		case l.wake <- struct{}{}:
		default: // a token is there already
		}
	}
}

// Flush waits until every frame left to a holder of the write lock (CombineWrites) has been
// written, and reports the error of a combined write that failed. It waits for the lock, so it
// blocks while the peer does not read.
func (c *Conn) Flush() error {
	if !c.combine {
		return nil
	}
	c.wl.lock(nil)
	c.release()
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.werr
}

// leave appends the frame to those the holder of the write lock will write (CombineWrites). It
// reports false if the Conn does not combine, the frame is large, too much is waiting already,
// or the lock is free by now: the caller then takes the lock.
func (c *Conn) leave(kind Kind, id uint64, n int, parts [][]byte) (bool, error) {
	if !c.combine || n > smallWrite {
		return false, nil
	}
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.werr != nil {
		return true, c.werr
	}
	// The holder releases the lock under pmu once pend is empty: while it is held here, the
	// holder (this one or a later one) will see this frame.
	if !c.wl.held.Load() || len(c.pend)+HeaderSize+n > maxPending {
		return false, nil
	}
	var h [HeaderSize]byte
	PutHeader(h[:], kind, id, n)
	c.pend = append(c.pend, h[:]...)
	for _, p := range parts {
		c.pend = append(c.pend, p...)
	}
	c.pendN++
	return true, nil
}

// release releases the write lock, after writing the frames left to this holder
// (CombineWrites).
func (c *Conn) release() {
	if !c.combine {
		c.wl.unlock()
		return
	}
	for {
		c.pmu.Lock()
		if len(c.pend) == 0 {
			c.wl.held.Swap(false)
			c.pmu.Unlock()
			c.wl.wakeWaiter()
			return
		}
		buf, n := c.pend, c.pendN
		c.pend, c.pendN = c.spare[:0], 0
		c.pmu.Unlock()
		_, err := c.rw.Write(buf)
		if err != nil {
			c.pmu.Lock()
			c.werr = fmt.Errorf("wire: writing %d combined frames: %w", n, err)
			c.pmu.Unlock()
		} else {
			c.nwritten.Add(n)
		}
		if cap(buf) > 2*smallWrite {
			buf = nil // a burst's buffer is not kept
		}
		c.spare = buf[:0]
	}
}

// smallFrame assembles a frame of body length n in the reused buffer; the write lock is held.
func (c *Conn) smallFrame(kind Kind, id uint64, n int, parts [][]byte) []byte {
	b := append(c.wbuf[:0], make([]byte, HeaderSize)...)
	PutHeader(b, kind, id, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	c.wbuf = b
	return b
}

// write writes one frame of body length n; the write lock is held.
func (c *Conn) write(kind Kind, id uint64, n int, parts [][]byte) error {
	if n <= smallWrite {
		// Header and body in the reused buffer: one system call, no allocation.
		b := c.smallFrame(kind, id, n, parts)
		if cap(c.wbuf) > 2*smallWrite {
			c.wbuf = nil
		}
		_, err := c.rw.Write(b)
		return err
	}
	h := make([]byte, HeaderSize)
	PutHeader(h, kind, id, n)
	bufs := make(net.Buffers, 0, len(parts)+1)
	bufs = append(bufs, h)
	for _, p := range parts {
		if len(p) > 0 {
			bufs = append(bufs, p)
		}
	}
	if _, ok := c.rw.(net.Conn); ok {
		_, err := bufs.WriteTo(c.rw)
		return err
	}
	for _, b := range bufs {
		if _, err := c.rw.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// PutHeader encodes a frame header into h[:HeaderSize].
func PutHeader(h []byte, kind Kind, id uint64, bodyLen int) {
	binary.LittleEndian.PutUint32(h[0:4], uint32(bodyLen))
	h[4] = byte(kind)
	h[5], h[6], h[7] = 0, 0, 0
	binary.LittleEndian.PutUint64(h[8:16], id)
}
