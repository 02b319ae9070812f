package enclave

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/blocksock"
	"github.com/asylo-go/asylo/internal/wire"
	"github.com/asylo-go/asylo/seal"
)

// state is the enclave's lifecycle state (docs/wire.md, "Sequencing").
type state int

const (
	stateUninitialized state = iota
	stateInitializing
	stateRunning
	stateInitFailed
	stateFinalizing
	stateFinalized
)

func (s state) String() string {
	return [...]string{"uninitialized", "initializing", "running", "initialization failed", "finalizing", "finalized"}[s]
}

const maxHostCalls = 64

// server is one enclave instance: the runtime side of one host connection.
type server struct {
	conn    *wire.Conn
	app     Application
	opts    options
	baseCtx context.Context

	mu       sync.Mutex
	state    state
	calls    map[uint64]*call // in-flight RUN/CALL/INIT/FINALIZE
	inflight sync.WaitGroup   // RUN and CALL only, awaited by FINALIZE
	params   wire.InitParams
	initOK   bool
	logger   *slog.Logger

	hmu       sync.Mutex
	hostCalls map[uint64]chan hostResult
	nextHost  uint64
	hostSem   chan struct{}
	readErr   chan error // the first fatal read error
	closed    chan struct{}
	closeErr  error

	sealMu sync.Mutex
	sealer *seal.Sealer

	storageMu  sync.Mutex
	storageKey []byte

	watch watchdog

	// spare is the buffer large CALL bodies are read into, for handlers registered with
	// HandleBorrowed: taken by the reader, given back when such a call has answered.
	spare wire.Spare

	connOnce sync.Once
	connRecv *connReceiver

	done chan struct{} // closed after FINALIZE's RESULT was written
}

type hostResult struct {
	status wire.Status
	body   []byte
}

// Serve runs the enclave runtime for app over rw until the host finalizes the enclave (then it
// returns nil) or the connection fails. Applications call Run; Serve exists for back-ends that
// host the runtime themselves (inprocess) and for tests.
func Serve(ctx context.Context, rw io.ReadWriteCloser, app Application, opts ...Option) error {
	if app == nil {
		return errors.New("enclave: nil Application")
	}
	o := options{handlers: map[string]HandlerFunc{}, maxCalls: 256, maxBody: wire.DefaultMaxBody}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			rw.Close()
			return err
		}
	}
	for name, h := range builtinHandlers {
		o.handlers[name] = h
	}
	s := &server{
		conn:      wire.NewConn(rw, o.maxBody),
		app:       app,
		opts:      o,
		calls:     map[uint64]*call{},
		hostCalls: map[uint64]chan hostResult{},
		hostSem:   make(chan struct{}, maxHostCalls),
		readErr:   make(chan error, 1),
		closed:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	if _, ok := rw.(*blocksock.Conn); ok {
		// A writer parked on the write lock would need a thread wake-up and a P, which the
		// reader asleep in read(2) may be holding (docs/benchmarks.md, session 10).
		s.conn.CombineWrites()
	}
	s.watch.kick = make(chan struct{}, 1)
	s.baseCtx = context.WithValue(ctx, serverKey{}, s)
	s.logger = slog.New(&logHandler{s: s, level: slog.LevelInfo})
	err := s.serve()
	if err == nil {
		// After FINALIZE's RESULT, which may wait among the frames left to another writer
		// (CombineWrites): they go out before the channel closes. On an error the channel is
		// broken or the host misbehaved, and nothing waits for it.
		s.conn.Flush()
	}
	s.conn.Close()
	if o.attention != nil {
		o.attention.Close()
	}
	s.closeHostCalls(err)
	return err
}

func (s *server) serve() error {
	hello := wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxBody: uint32(s.opts.maxBody)})
	if err := s.conn.WriteFrame(wire.KindHello, 0, hello); err != nil {
		return fmt.Errorf("enclave: sending HELLO: %w", err)
	}
	go s.watch.run(s.closed)
	if s.opts.attention != nil {
		s.watch.attentive.Store(true)
		go s.attend(s.opts.attention)
	}
	go s.reader()
	select {
	case err := <-s.readErr:
		return err
	case <-s.done:
		return nil
	}
}

// reader is the goroutine that reads from the host. At any time exactly one goroutine reads;
// it may hand that role to a new one (see runInline).
func (s *server) reader() {
	if err := s.readLoop(); err != errHandedOff {
		select {
		case s.readErr <- err:
		default: // an earlier reader already reported; Serve is over
		}
	}
}

// errHandedOff ends a readLoop whose goroutine served a call while another took over reading.
var errHandedOff = errors.New("reader role handed off")

// runInline serves a call on the reading goroutine. If the call runs long (see watchdog), or
// starts a host call (whose answer someone must read), a new goroutine takes over reading. It
// reports whether this goroutine is still the reader.
func (s *server) runInline(c *call) bool {
	s.watch.start(c, s.conn.FramesRead())
	status, body := s.run(c)
	s.watch.end(c)
	// Still the reader unless a hand-off started; claiming the call now rules one out, and then
	// nothing else reads the host's frames until this goroutine is done.
	reader := c.claimed.CompareAndSwap(false, true)
	s.answer(c, status, body, reader)
	return reader
}

// callBody is the wire.Conn buffer hook: the spare buffer for a large CALL body, if it fits.
func (s *server) callBody(f wire.Frame, n int) []byte {
	if f.Kind != wire.KindCall || len(s.opts.borrowed) == 0 {
		return nil
	}
	return s.spare.Take(n)
}

func (s *server) readLoop() error {
	for {
		f, err := s.conn.ReadFrameInto(s.callBody)
		if err != nil {
			select {
			case <-s.done:
				return nil
			default:
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("enclave: host closed the connection")
			}
			return fmt.Errorf("enclave: reading from host: %w", err)
		}
		switch f.Kind {
		case wire.KindInit, wire.KindRun, wire.KindCall, wire.KindFinalize:
			c, err := s.dispatch(f)
			if err != nil {
				return err
			}
			if c != nil && !s.runInline(c) {
				return errHandedOff
			}
		case wire.KindCancel:
			s.mu.Lock()
			c := s.calls[f.ID]
			s.mu.Unlock()
			if c != nil {
				c.cancel(context.Canceled)
			}
		case wire.KindHostResult:
			if err := s.deliverHostResult(f); err != nil {
				return err
			}
		default:
			return fmt.Errorf("enclave: %w: unexpected %v frame from host", wire.ErrProtocol, f.Kind)
		}
	}
}

// dispatch validates a request against the lifecycle and starts it: INIT and FINALIZE on a
// goroutine of their own, RUN and CALL by returning them, for the reader to run inline. It
// returns an error only for protocol violations, which end the connection.
func (s *server) dispatch(f wire.Frame) (*call, error) {
	c := &call{s: s, kind: f.Kind, id: f.ID, body: f.Body}
	var init wire.InitParams
	var err error
	if f.Kind == wire.KindInit {
		init, err = wire.ParseInit(f.Body)
		c.req.Timeout, c.req.Input = init.Timeout, init.Config
	} else {
		c.req, err = wire.ParseRequest(f.Kind, f.Body)
	}
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.calls[f.ID]; dup {
		return nil, fmt.Errorf("enclave: %w: call id %d reused while pending", wire.ErrProtocol, f.ID)
	}
	reject := func(st wire.Status, msg string) (*call, error) {
		return nil, s.writeResult(f.ID, st, []byte(msg))
	}
	switch f.Kind {
	case wire.KindInit:
		if s.state != stateUninitialized {
			return reject(wire.StatusBadState, "INIT in state "+s.state.String())
		}
		s.state = stateInitializing
		s.params = init
		s.logger = slog.New(&logHandler{s: s, level: slog.Level(init.LogLevel)})
	case wire.KindRun, wire.KindCall:
		if s.state != stateRunning {
			return reject(wire.StatusBadState, fmt.Sprintf("%v in state %v", f.Kind, s.state))
		}
		if len(s.calls) >= s.opts.maxCalls {
			return reject(wire.StatusResourceExhausted, fmt.Sprintf("more than %d concurrent calls", s.opts.maxCalls))
		}
		if f.Kind == wire.KindCall {
			if c.handler = s.opts.handlers[string(c.req.Method)]; c.handler == nil {
				return reject(wire.StatusUnknownMethod, fmt.Sprintf("no handler named %q", c.req.Method))
			}
			c.borrowed = s.opts.borrowed[string(c.req.Method)]
		}
		s.inflight.Add(1)
	case wire.KindFinalize:
		if s.state != stateRunning && s.state != stateInitFailed {
			return reject(wire.StatusBadState, "FINALIZE in state "+s.state.String())
		}
		s.state = stateFinalizing
	}

	c.arm()
	s.calls[f.ID] = c
	if f.Kind == wire.KindInit || f.Kind == wire.KindFinalize {
		// Not on the reading goroutine: its host calls must not hand reading over.
		c.claimed.Store(true)
		go s.serveCall(c)
		return nil, nil
	}
	return c, nil
}

func (s *server) serveCall(c *call) {
	status, body := s.run(c)
	s.answer(c, status, body, false)
}

// run runs the call's application code and returns the RESULT to send.
func (s *server) run(c *call) (wire.Status, []byte) {
	var out []byte
	var err error
	switch c.kind {
	case wire.KindInit:
		err = s.protect(func() error { return s.app.Initialize(c, c.req.Input) })
		s.mu.Lock()
		if err == nil {
			s.state = stateRunning
			s.initOK = true
			for _, w := range sandboxWarnings {
				s.logger.Debug("sandbox: layer not fully applied on this kernel (asylo doctor explains)", "detail", w)
			}
		} else {
			s.state = stateInitFailed
		}
		s.mu.Unlock()
	case wire.KindRun:
		err = s.protect(func() (e error) { out, e = s.app.Run(c, c.req.Input); return })
	case wire.KindCall:
		err = s.protect(func() (e error) { out, e = c.handler(c, c.req.Input); return })
	case wire.KindFinalize:
		s.inflight.Wait()
		s.mu.Lock()
		initOK := s.initOK
		s.mu.Unlock()
		// After a failed Initialize there is nothing for Finalize to undo.
		if initOK {
			err = s.protect(func() error { return s.app.Finalize(c, c.req.Input) })
		}
	}
	return statusOf(c, err, out)
}

// retire ends a call's context and removes it from the pending calls.
func (s *server) retire(c *call) {
	s.mu.Lock()
	delete(s.calls, c.id)
	if c.kind == wire.KindFinalize {
		s.state = stateFinalized
	}
	s.mu.Unlock()
	c.cancel(context.Canceled)
}

// answer sends the call's RESULT and retires it. Normally it retires it first: once the host has
// the RESULT it may reuse the id, or CANCEL what it thinks is another call. With onlyReader (an
// inline call that is still the only goroutine reading the host's frames) the RESULT goes out
// first and the bookkeeping overlaps the host's turn instead of delaying it: nobody can see the
// stale entry before this goroutine reads again (design note 20).
func (s *server) answer(c *call, status wire.Status, body []byte, onlyReader bool) {
	if !onlyReader {
		s.retire(c)
	}
	werr := s.writeResult(c.id, status, body) // a failed write broke the channel: reads fail next
	if onlyReader {
		s.retire(c)
	}
	if c.borrowed {
		// Answered: nothing holds the body any more (HandleBorrowed's contract).
		s.spare.Give(c.body)
	}
	if c.kind == wire.KindRun || c.kind == wire.KindCall {
		s.inflight.Done()
	}
	if c.kind == wire.KindFinalize {
		_ = werr // the host may already be gone; the enclave ends either way
		close(s.done)
	}
}

// panicError carries a recovered panic out of protect.
type panicError struct{ msg string }

func (p *panicError) Error() string { return p.msg }

// protect runs f, turning a panic into an error so that enclave code can never take the runtime
// (and with it the host's calls) down. The panic value crosses to the host as the call's error;
// the stack is logged to the host only for debug enclaves, because a stack can reveal secrets.
func (s *server) protect(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{msg: fmt.Sprint(v)}
			if s.identity().Debug {
				s.logger.Error("enclave code panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
		}
	}()
	return f()
}

func statusOf(ctx context.Context, err error, out []byte) (wire.Status, []byte) {
	if err == nil {
		return wire.StatusOK, out
	}
	msg := []byte(wire.TruncateMessage(err.Error()))
	var pe *panicError
	switch {
	case errors.As(err, &pe):
		return wire.StatusPanic, msg
	case errors.Is(err, ErrInvalidArgument):
		return wire.StatusInvalidArgument, msg
	case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		return wire.StatusDeadlineExceeded, msg
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return wire.StatusCanceled, msg
	}
	return wire.StatusApplication, msg
}

func (s *server) writeResult(id uint64, st wire.Status, body []byte) error {
	return s.conn.WriteResult(wire.KindResult, id, st, body)
}

// hostCall sends a HOSTCALL and waits for its HOSTRESULT.
func (s *server) hostCall(ctx context.Context, op wire.Op, req []byte) ([]byte, error) {
	select {
	case s.hostSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.closed:
		return nil, s.closeErr
	}
	defer func() { <-s.hostSem }()
	// The answer must be read by someone: if this call runs on the reading goroutine, hand
	// reading over first.
	if c, ok := ctx.Value(handoffKey{}).(*call); ok {
		c.handoff()
	}

	ch := make(chan hostResult, 1)
	s.hmu.Lock()
	select {
	case <-s.closed:
		s.hmu.Unlock()
		return nil, s.closeErr
	default:
	}
	s.nextHost++
	id := s.nextHost
	s.hostCalls[id] = ch
	s.hmu.Unlock()

	var h [2]byte
	if err := s.conn.WriteFrame(wire.KindHostCall, id, wire.AppendHostCallHeader(h[:0], op), req); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHostClosed, err)
	}
	// On cancellation the entry stays registered: the host must still answer, and its late
	// answer is then dropped instead of being taken for a protocol violation.
	select {
	case r := <-ch:
		switch r.status {
		case wire.StatusOK:
			return r.body, nil
		case wire.StatusUnimplemented:
			return nil, fmt.Errorf("%w (op %d): %s", ErrUnsupported, op, r.body)
		case wire.StatusNotFound:
			return nil, fmt.Errorf("enclave: host call %d: %w: %s", op, fs.ErrNotExist, r.body)
		default:
			return nil, fmt.Errorf("enclave: host call %d failed (%v): %s", op, r.status, r.body)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.closed:
		return nil, s.closeErr
	}
}

func (s *server) deliverHostResult(f wire.Frame) error {
	st, body, err := wire.ParseResult(wire.KindHostResult, f.Body)
	if err != nil {
		return err
	}
	s.hmu.Lock()
	ch, ok := s.hostCalls[f.ID]
	delete(s.hostCalls, f.ID)
	s.hmu.Unlock()
	if !ok {
		return fmt.Errorf("enclave: %w: HOSTRESULT for unknown id %d", wire.ErrProtocol, f.ID)
	}
	ch <- hostResult{status: st, body: body}
	return nil
}

func (s *server) closeHostCalls(err error) {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if err == nil {
		err = ErrHostClosed
	} else {
		err = fmt.Errorf("%w: %v", ErrHostClosed, err)
	}
	s.closeErr = err
	close(s.closed)
}

func (s *server) identity() identity.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.params.Identity
}
