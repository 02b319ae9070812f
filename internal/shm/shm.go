// Package shm implements a "switchless" duplex byte stream between two
// processes over one shared memory region (a sealed memfd mapped MAP_SHARED):
// two single-producer single-consumer rings, bounded busy-polling, and a
// non-private futex fallback for sleeping.
//
// The peer is untrusted: every index read from shared memory is validated and
// protocol violations are reported as ErrCorrupt, never as a panic, an
// out-of-bounds access or a hang. The layout and protocol are described in
// docs/shm.md.
package shm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrCorrupt is returned (possibly wrapped) when the shared region or the peer
// violates the protocol: bad header, impossible ring index, etc. Test with
// errors.Is.
var ErrCorrupt = errors.New("shm: corrupt shared memory state")

const (
	// DefaultSize is the per-direction ring size used when Options.Size is 0.
	DefaultSize = 1 << 20
	// MinSize and MaxSize bound Options.Size (and the size found in a header).
	MinSize = 4096
	MaxSize = 1 << 30
	// DefaultSpin is the busy-poll budget used when Options.Spin is 0. One
	// futex wake-up costs 10-20 µs on the target machines, so the budget must
	// be clearly longer than that to keep a ping-pong in the spinning regime.
	DefaultSpin = 50 * time.Microsecond

	magic      = 0x4d48534f4c595341 // "ASYLOSHM" little-endian
	version    = 1
	headerSize = 4096

	offMagic     = 0
	offVersion   = 8
	offHdrSize   = 12
	offRingSize  = 16
	offClosed0   = 128 // creator closed
	offClosed1   = 256 // opener closed
	offRing0     = 1024
	offRing1     = 2048
	ringTail     = 0
	ringHead     = 128
	ringRWait    = 256
	ringWWait    = 384
	ringDataSeq  = 512
	ringSpaceSeq = 640
)

// futexTimeout bounds every futex sleep, so that closed flags are re-checked
// even if a wake-up never comes (peer died or lies). Tests raise it to turn a
// lost wake-up into a visible stall.
var futexTimeout = 100 * time.Millisecond

// Options configures an endpoint.
type Options struct {
	// Size is the number of bytes per direction ring: a power of two in
	// [MinSize, MaxSize]. 0 means DefaultSize. For Open, 0 means "whatever the
	// creator chose"; otherwise it must match the header.
	Size int
	// Spin is how long a blocked Read/Write busy-polls shared memory before
	// sleeping on a futex. 0 means DefaultSpin, negative means never spin.
	Spin time.Duration
}

// ring holds pointers into the shared control block of one direction.
type ring struct {
	tail, head, rwait, wwait *uint64
	dataSeq, spaceSeq        *uint32
	data                     []byte // len == size
}

// Conn is one endpoint of the channel. It implements io.ReadWriteCloser with
// stream semantics. At most one goroutine may be in Read and at most one in
// Write at any time (a reader and a writer may run concurrently); callers
// serialise their writers. Close may be called concurrently with anything.
//
// Read returns io.EOF once the peer has closed and all data has been
// consumed. Write returns io.ErrClosedPipe once either side has closed. After
// the local Close both return io.ErrClosedPipe. After a protocol violation
// both return an error wrapping ErrCorrupt.
type Conn struct {
	mu     sync.RWMutex // R: in Read/Write; W: Close unmapping
	mem    []byte
	mapped bool
	size   uint64
	mask   uint64
	spin   time.Duration

	in, out    ring
	myClosed   *uint32
	peerClosed *uint32

	closed  atomic.Bool
	corrupt atomic.Bool
	once    sync.Once

	rdeadline atomic.Int64 // SetReadDeadline, Unix nanoseconds; 0 for none
	sleeping  atomic.Bool  // the reader sleeps on the futex (SetReadDeadline wakes it)
	wdeadline atomic.Int64 // SetWriteDeadline, Unix nanoseconds; 0 for none
	wsleeping atomic.Bool  // the writer sleeps on the futex (SetWriteDeadline wakes it)

	// reader-goroutine state
	rhead  uint64 // our consumer position on in
	lastWW uint64 // last in.wwait value we woke the peer producer for
	// writer-goroutine state
	wtail  uint64 // our producer position on out
	whead  uint64 // cached (validated) peer consumer position on out
	lastRW uint64 // last out.rwait value we woke the peer consumer for
}

var errWouldBlock = errors.New("shm: would block")

func u64(mem []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&mem[off])) }
func u32(mem []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }

func validSize(n uint64) bool {
	return n >= MinSize && n <= MaxSize && n&(n-1) == 0
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// newConn validates the header in mem and builds an endpoint over it. mem
// must be 8-byte aligned.
func newConn(mem []byte, creator bool, opts Options) (*Conn, error) {
	if len(mem) < headerSize+2*MinSize {
		return nil, corruptf("region too small (%d bytes)", len(mem))
	}
	if m := atomic.LoadUint64(u64(mem, offMagic)); m != magic {
		return nil, corruptf("bad magic %#x", m)
	}
	if v := atomic.LoadUint32(u32(mem, offVersion)); v != version {
		return nil, corruptf("unsupported version %d", v)
	}
	if h := atomic.LoadUint32(u32(mem, offHdrSize)); h != headerSize {
		return nil, corruptf("bad header size %d", h)
	}
	size := atomic.LoadUint64(u64(mem, offRingSize))
	if !validSize(size) {
		return nil, corruptf("bad ring size %d", size)
	}
	if uint64(len(mem)) != headerSize+2*size {
		return nil, corruptf("region is %d bytes, header says ring size %d", len(mem), size)
	}
	if opts.Size != 0 && uint64(opts.Size) != size {
		return nil, fmt.Errorf("shm: ring size %d does not match requested %d", size, opts.Size)
	}
	spin := opts.Spin
	if spin == 0 {
		spin = DefaultSpin
	}
	c := &Conn{mem: mem, size: size, mask: size - 1, spin: spin}
	r0 := mkRing(mem, offRing0, mem[headerSize:headerSize+size:headerSize+size])
	r1 := mkRing(mem, offRing1, mem[headerSize+size:headerSize+2*size:headerSize+2*size])
	if creator {
		c.out, c.in = r0, r1
		c.myClosed, c.peerClosed = u32(mem, offClosed0), u32(mem, offClosed1)
	} else {
		c.out, c.in = r1, r0
		c.myClosed, c.peerClosed = u32(mem, offClosed1), u32(mem, offClosed0)
	}
	return c, nil
}

func mkRing(mem []byte, base int, data []byte) ring {
	return ring{
		tail:     u64(mem, base+ringTail),
		head:     u64(mem, base+ringHead),
		rwait:    u64(mem, base+ringRWait),
		wwait:    u64(mem, base+ringWWait),
		dataSeq:  u32(mem, base+ringDataSeq),
		spaceSeq: u32(mem, base+ringSpaceSeq),
		data:     data,
	}
}

// Read reads up to len(p) bytes, blocking until at least one is available.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for {
		n, err := c.tryRead(p)
		if err != errWouldBlock {
			return n, err
		}
		if dl := c.rdeadline.Load(); dl != 0 && time.Now().UnixNano() >= dl {
			return 0, os.ErrDeadlineExceeded
		}
		c.waitData()
	}
}

// SetReadDeadline makes Read return os.ErrDeadlineExceeded instead of waiting for data after t
// (data already there is still returned); the zero t clears it. It may be called while a Read
// waits, from any goroutine.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.setDeadline(t, &c.rdeadline, &c.sleeping, func() *uint32 { return c.in.dataSeq })
	return nil
}

// setDeadline stores t in dl and wakes the side that sleeps (flagged by sleeping) on the futex
// word seq returns.
func (c *Conn) setDeadline(t time.Time, dl *atomic.Int64, sleeping *atomic.Bool, seq func() *uint32) {
	var ns int64
	if !t.IsZero() {
		ns = max(t.UnixNano(), 1)
	}
	dl.Swap(ns) // a swap: see the note on handshake stores below
	if sleeping.Load() {
		c.mu.RLock()
		if c.mem != nil {
			w := seq()
			atomic.AddUint32(w, 1)
			futexWake(w)
		}
		c.mu.RUnlock()
	}
}

// tryRead performs one non-blocking read step.
func (c *Conn) tryRead(p []byte) (int, error) {
	if c.corrupt.Load() {
		return 0, corruptf("connection failed")
	}
	if c.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	t := atomic.LoadUint64(c.in.tail)
	avail := t - c.rhead
	if avail > c.size {
		return 0, c.fail("input ring: tail %d head %d capacity %d", t, c.rhead, c.size)
	}
	if avail == 0 {
		if atomic.LoadUint32(c.peerClosed) == 0 {
			return 0, errWouldBlock
		}
		// Data published before the close flag is still delivered: the
		// producer stores tail before its closed flag, so re-check tail.
		t = atomic.LoadUint64(c.in.tail)
		avail = t - c.rhead
		if avail > c.size {
			return 0, c.fail("input ring: tail %d head %d capacity %d", t, c.rhead, c.size)
		}
		if avail == 0 {
			return 0, io.EOF
		}
	}
	n := uint64(len(p))
	if n > avail {
		n = avail
	}
	off := c.rhead & c.mask
	k := copy(p[:n], c.in.data[off:])
	if uint64(k) < n {
		copy(p[k:n], c.in.data)
	}
	c.rhead += n
	atomic.SwapUint64(c.in.head, c.rhead)
	// Wake the peer producer if it sleeps waiting for space.
	// It waits for head >= w; wake only once our head satisfies that (a
	// wake-up sent earlier, when head < w, would be useless, and recording
	// it in lastWW would suppress the one that matters).
	if w := atomic.LoadUint64(c.in.wwait); w != 0 && w != c.lastWW && w <= c.rhead {
		c.lastWW = w
		atomic.AddUint32(c.in.spaceSeq, 1)
		futexWake(c.in.spaceSeq)
	}
	return int(n), nil
}

// Write writes all of p, blocking while the ring is full. Past a write deadline it returns
// os.ErrDeadlineExceeded with the number of bytes it wrote.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	done := 0
	for {
		n, err := c.writeNow(p[done:])
		done += n
		if err != nil || done == len(p) {
			return done, err
		}
		if dl := c.wdeadline.Load(); dl != 0 && time.Now().UnixNano() >= dl {
			return done, os.ErrDeadlineExceeded
		}
		c.waitSpace()
	}
}

// WriteNoWait writes as much of p as the ring has room for now, without waiting for more;
// n < len(p) with a nil error means the rest would have to wait.
func (c *Conn) WriteNoWait(p []byte) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.writeNow(p)
}

// writeNow copies as much of p as the ring has room for now (all of it, or up to a full ring);
// the caller holds mu.
func (c *Conn) writeNow(p []byte) (int, error) {
	done := 0
	for {
		n, err := c.tryWrite(p[done:])
		done += n
		switch {
		case err == errWouldBlock:
			return done, nil
		case err != nil || done == len(p):
			return done, err
		}
	}
}

// SetWriteDeadline makes Write return os.ErrDeadlineExceeded instead of waiting for space after
// t; the zero t clears it. It may be called while a Write waits, from any goroutine.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.setDeadline(t, &c.wdeadline, &c.wsleeping, func() *uint32 { return c.out.spaceSeq })
	return nil
}

// tryWrite performs one non-blocking write step: it copies as much of p as
// fits and returns errWouldBlock if nothing fits.
func (c *Conn) tryWrite(p []byte) (int, error) {
	if c.corrupt.Load() {
		return 0, corruptf("connection failed")
	}
	if c.closed.Load() || atomic.LoadUint32(c.peerClosed) != 0 {
		return 0, io.ErrClosedPipe
	}
	if len(p) == 0 {
		return 0, nil
	}
	free := c.size - (c.wtail - c.whead)
	if free < uint64(len(p)) {
		h := atomic.LoadUint64(c.out.head)
		if used := c.wtail - h; used > c.size {
			return 0, c.fail("output ring: tail %d head %d capacity %d", c.wtail, h, c.size)
		}
		c.whead = h
		free = c.size - (c.wtail - h)
		if free == 0 {
			return 0, errWouldBlock
		}
	}
	n := uint64(len(p))
	if n > free {
		n = free
	}
	off := c.wtail & c.mask
	k := copy(c.out.data[off:], p[:n])
	if uint64(k) < n {
		copy(c.out.data, p[k:n])
	}
	c.wtail += n
	atomic.SwapUint64(c.out.tail, c.wtail)
	// Wake the peer consumer if it sleeps waiting for data.
	// It waits for tail >= w; see the comment in tryRead.
	if w := atomic.LoadUint64(c.out.rwait); w != 0 && w != c.lastRW && w <= c.wtail {
		c.lastRW = w
		atomic.AddUint32(c.out.dataSeq, 1)
		futexWake(c.out.dataSeq)
	}
	return int(n), nil
}

// A note on the stores to shared words that take part in a wake-up handshake
// (tail/rwait, head/wwait, closed flags): each side stores its word and then
// loads the other side's word (a Dekker pattern), which needs a full barrier
// between the store and the load. Go's atomic.Store is sequentially
// consistent in normal builds, but under the race detector it is only a
// release store (a plain MOV on amd64), which lost wake-ups in testing. An
// atomic swap is a locked read-modify-write in both modes (and costs the
// same as the XCHG that atomic.Store compiles to on amd64), so the handshake
// stores use atomic.Swap.

// fail marks the connection corrupt, tells the peer we are gone and returns
// an ErrCorrupt error.
func (c *Conn) fail(format string, args ...any) error {
	c.corrupt.Store(true)
	c.signalClosed()
	return corruptf(format, args...)
}

// Readable reports whether Read would return without waiting for the peer: data is there, or
// the channel has ended. It is for the goroutine that reads (Read's rule: one at a time), to
// poll without blocking.
func (c *Conn) Readable() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mem == nil || c.canRead()
}

// canRead reports whether a read step would not block.
func (c *Conn) canRead() bool {
	return atomic.LoadUint64(c.in.tail) != c.rhead || atomic.LoadUint32(c.peerClosed) != 0 ||
		c.closed.Load() || c.corrupt.Load()
}

// canWrite reports whether a write step would not block.
func (c *Conn) canWrite() bool {
	return atomic.LoadUint64(c.out.head) != c.wtail-c.size || atomic.LoadUint32(c.peerClosed) != 0 ||
		c.closed.Load() || c.corrupt.Load()
}

// sleepBudget is how long a futex sleep may last before the deadline dl (Unix nanoseconds, 0 for
// none); false if dl has passed.
func sleepBudget(dl int64) (time.Duration, bool) {
	if dl == 0 {
		return futexTimeout, true
	}
	left := time.Duration(dl - time.Now().UnixNano())
	return min(futexTimeout, left), left > 0
}

func (c *Conn) waitData() {
	dl := c.rdeadline.Load()
	if c.spinUntil(c.canRead, dl) {
		return
	}
	d, ok := sleepBudget(dl)
	if !ok {
		return
	}
	s := atomic.LoadUint32(c.in.dataSeq)
	atomic.SwapUint64(c.in.rwait, c.rhead+1)
	if c.canRead() {
		return
	}
	c.sleeping.Swap(true)
	if c.rdeadline.Load() == dl {
		futexWait(c.in.dataSeq, s, d)
	}
	c.sleeping.Store(false)
}

func (c *Conn) waitSpace() {
	dl := c.wdeadline.Load()
	if c.spinUntil(c.canWrite, dl) {
		return
	}
	d, ok := sleepBudget(dl)
	if !ok {
		return
	}
	s := atomic.LoadUint32(c.out.spaceSeq)
	// We wait for head to move past wtail-size (the position that makes
	// the ring full).
	atomic.SwapUint64(c.out.wwait, c.wtail-c.size+1)
	if c.canWrite() {
		return
	}
	c.wsleeping.Swap(true)
	if c.wdeadline.Load() == dl {
		futexWait(c.out.spaceSeq, s, d)
	}
	c.wsleeping.Store(false)
}

// spinUntil busy-polls cond for at most c.spin, and not past the Unix-nanosecond time stop
// (0: no such limit).
func (c *Conn) spinUntil(cond func() bool, stop int64) bool {
	if c.spin < 0 {
		return false
	}
	deadline := time.Now().Add(c.spin)
	if stop != 0 && stop < deadline.UnixNano() {
		deadline = time.Unix(0, stop)
	}
	for round := 1; ; round++ {
		for i := 0; i < 64; i++ {
			if cond() {
				return true
			}
		}
		// The clock is read every fourth round only: a reading costs 60-100 ns on this
		// machine's VMs, as much as a third of a round, during which nobody polls.
		if round%4 == 0 && !time.Now().Before(deadline) {
			return cond()
		}
		// Let other goroutines of this process run between rounds: the one the caller just
		// made runnable (a call's handler, a waiting caller) often sits behind this spin on the
		// same P, and would otherwise wait for the whole spin budget or a steal (~50 µs here).
		runtime.Gosched()
	}
}

// signalClosed publishes our closed flag and wakes every futex word, so that
// both the peer's and our own blocked calls re-check their state.
func (c *Conn) signalClosed() {
	atomic.SwapUint32(c.myClosed, 1)
	for _, w := range []*uint32{c.in.dataSeq, c.in.spaceSeq, c.out.dataSeq, c.out.spaceSeq} {
		atomic.AddUint32(w, 1)
		futexWake(w)
	}
}

// PeerGone tells the endpoint that the peer process has exited without closing: Read returns
// what the peer had published and then io.EOF, and Write fails, as after a Close by the peer.
// Use it, rather than Close, when the peer is known to be dead, so that its last messages are
// still delivered. It is safe only once the peer can no longer write to the region.
func (c *Conn) PeerGone() {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.mem == nil {
		return
	}
	atomic.SwapUint32(c.peerClosed, 1)
	for _, w := range []*uint32{c.in.dataSeq, c.in.spaceSeq, c.out.dataSeq, c.out.spaceSeq} {
		atomic.AddUint32(w, 1)
		futexWake(w)
	}
}

// Close marks the channel closed in shared memory, wakes the peer and any
// local blocked Read/Write (which return io.ErrClosedPipe), waits for them
// to return and unmaps the region. It is idempotent and always returns nil.
func (c *Conn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		c.signalClosed()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.mapped {
			unix.Munmap(c.mem)
		}
		c.mem = nil
	})
	return nil
}
