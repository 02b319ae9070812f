// Package host is the untrusted side of asylo: it loads enclaves, calls into them and destroys
// them. Code in this package runs outside every enclave and is never trusted by one.
//
//	e, err := host.Load(ctx, host.LoadConfig{Path: "hello.enclave"})
//	...
//	out, err := e.Call(ctx, "greet", []byte("Ada"))
//	...
//	err = e.Destroy(ctx, nil)
package host

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/wire"
)

// LoadConfig describes an enclave to load, as Asylo's EnclaveConfig.
type LoadConfig struct {
	// Path is the enclave binary. Required except for back-ends that run linked-in code.
	Path string
	// Backend starts the enclave; nil means one sim back-end (sim.New()) shared by every load
	// of this process that names none, which keeps its spawner (this program executed again:
	// see sim.New) for the life of the process.
	Backend backend.Backend
	// Name identifies the enclave in logs; it defaults to the binary's file name.
	// At most 128 bytes of UTF-8.
	Name string
	// Args and Env are the enclave program's arguments (after its name) and its whole
	// environment. Both are visible to the host and not secret. A variable that the back-end's
	// launch sets itself (the ASYLO_ variables of internal/wire/launch.go) is the launch's,
	// whatever Env says.
	Args []string
	Env  []string
	// Config is passed to the application's Initialize. It comes from the host: the enclave
	// must validate it.
	Config []byte
	// LogLevel is the least level of enclave log records that reach Logger.
	LogLevel slog.Level
	// Logger receives the enclave's log records (tagged with enclave=Name) and the host's own
	// diagnostics. Nil means slog.Default(). A record is handled on the goroutine that reads
	// the enclave's channel, before any later frame, so that the records a call logs are in
	// before it returns; its handler must therefore not call into this enclave (the call would
	// wait for a reader that waits for the handler).
	Logger *slog.Logger
	// Stdout and Stderr receive the enclave's standard output and error. Nil discards them.
	Stdout, Stderr io.Writer
	// Debug allows an unsigned enclave to load, with a debug identity.
	Debug bool
	// MaxMessageSize bounds every message the enclave sends to the host (default 64 MiB,
	// at most 1 GiB).
	MaxMessageSize int
	// StorageDir is the host directory the enclave's secure storage (package storage, through
	// enclave.OpenFile) keeps its files in; the enclave can reach no other file. Empty means the
	// enclave has no storage.
	StorageDir string
	// AllowListen decides whether the enclave may listen on network/address (enclave.Listen);
	// accepted connections are handed into the enclave. Nil refuses every listen.
	AllowListen func(network, address string) error
	// AllowDial decides whether the enclave may open a connection to network/address
	// (enclave.Dial); the host dials and hands the connection in. Nil refuses every dial.
	AllowDial func(network, address string) error
}

// Errors returned by this package. Calls fail with errors that match these with errors.Is.
var (
	// ErrEnclaveLost: the enclave process died or broke the protocol. The error is a *LostError
	// carrying the exit status. Load the enclave again to continue.
	ErrEnclaveLost = errors.New("enclave lost")
	// ErrDestroyed: the enclave was destroyed by this host.
	ErrDestroyed = errors.New("enclave destroyed")
	// ErrPanic: enclave code panicked while serving the call. The enclave stays usable: the
	// panic was confined to the call (docs/lifecycle.md).
	ErrPanic = errors.New("enclave code panicked")
	// ErrUnknownMethod: the enclave has no handler of that name.
	ErrUnknownMethod = errors.New("enclave has no such method")
	// ErrBadState: the enclave is not in a state that accepts the call (for example, not yet
	// initialized, or finalizing).
	ErrBadState = errors.New("enclave is not in a state that accepts this call")
	// ErrBusy: the enclave is serving as many concurrent calls as it allows.
	ErrBusy = errors.New("enclave is busy")
	// ErrInvalidArgument: the enclave refused the input as malformed, or the method name is not
	// valid.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrTooLarge: the message exceeds the receiver's limit.
	ErrTooLarge = errors.New("message too large")
	// ErrInitialize: the application's Initialize failed; the enclave was destroyed.
	ErrInitialize = errors.New("enclave initialization failed")
)

// EnclaveError is an error the enclave application returned. It matches one of the sentinel
// errors above, or context.Canceled / context.DeadlineExceeded, where the status says so.
type EnclaveError struct {
	Status  wire.Status
	Message string
}

func (e *EnclaveError) Error() string {
	switch e.Status {
	case wire.StatusApplication:
		return "enclave: " + e.Message
	case wire.StatusPanic:
		return "enclave code panicked: " + e.Message
	}
	if e.Message == "" {
		return "enclave: " + e.Status.String()
	}
	return fmt.Sprintf("enclave: %v: %s", e.Status, e.Message)
}

// Is maps the status to this package's sentinels.
func (e *EnclaveError) Is(target error) bool {
	switch e.Status {
	case wire.StatusPanic:
		return target == ErrPanic
	case wire.StatusUnknownMethod:
		return target == ErrUnknownMethod
	case wire.StatusBadState:
		return target == ErrBadState
	case wire.StatusResourceExhausted:
		return target == ErrBusy
	case wire.StatusInvalidArgument:
		return target == ErrInvalidArgument
	case wire.StatusCanceled:
		return target == context.Canceled
	case wire.StatusDeadlineExceeded:
		return target == context.DeadlineExceeded
	}
	return false
}

// LostError reports an enclave that is gone. It matches ErrEnclaveLost.
type LostError struct {
	Name string
	// Exit is how the enclave process ended, or nil if it exited cleanly or could not be told.
	Exit *backend.ExitError
	// Cause is what the host saw first (end of the channel, a protocol violation, ...).
	Cause error
}

func (e *LostError) Error() string {
	s := fmt.Sprintf("enclave %q lost", e.Name)
	if e.Exit != nil {
		s += ": " + e.Exit.Error()
	}
	if e.Cause != nil {
		s += " (" + e.Cause.Error() + ")"
	}
	return s
}

func (e *LostError) Is(target error) bool { return target == ErrEnclaveLost }

// Unwrap returns the exit error and the cause.
func (e *LostError) Unwrap() []error {
	var errs []error
	if e.Exit != nil {
		errs = append(errs, e.Exit)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// Enclave is a loaded enclave. Its methods are safe for concurrent use.
type Enclave struct {
	name    string
	inst    backend.Instance
	conn    *wire.Conn
	id      identity.Identity
	maxSend int
	logger  *slog.Logger

	mu        sync.Mutex
	pending   map[uint64]*pendingCall
	nextID    uint64
	err       error // set once: *LostError or ErrDestroyed
	down      chan struct{}
	destroyed bool
	readDone  chan struct{}
	hostSem   chan struct{}
	files     *hostFiles
	listeners *hostListeners

	// Callers read their results themselves when nobody else is reading (design note 16):
	// polling a switchless channel (pollResult), or blocking in a socket's Read (readOwn).
	poll     pollable      // the channel, if it spins and can be polled; else nil
	intr     *interrupter  // for a channel with read deadlines
	rtok     sync.Mutex    // held by whoever reads frames: readLoop or a caller
	polling  atomic.Int32  // callers polling for their result
	denied   atomic.Bool   // a polling caller found rtok taken
	ownReads atomic.Uint64 // callers that took rtok to read for themselves
	spaced   atomic.Bool   // the stepped-aside read loop's ticks have spaced out (stepAside)
	waiting  atomic.Int32  // callers parked on their result: readLoop reads for them
	kick     chan struct{} // wakes a readLoop that stepped aside for pollers

	spare wire.Spare // reused buffer for the large results of CallInto

	// notifier, if the back-end has an attention channel: rung after a frame written while
	// other calls are in flight (docs/wire.md, "Attention").
	notifier backend.Notifier
	notified atomic.Uint64 // notifications sent, for tests
	notes    atomic.Int64  // callers that asked for a notification not yet sent (see notify)
}

// resultBody is the wire.Conn buffer hook: the reused buffer for a large RESULT of a CallInto.
func (e *Enclave) resultBody(f wire.Frame, n int) []byte {
	if f.Kind != wire.KindResult || n < wire.MinReuse {
		return nil
	}
	e.mu.Lock()
	p := e.pending[f.ID]
	into := p != nil && p.into
	e.mu.Unlock()
	if !into {
		return nil
	}
	return e.spare.Take(n)
}

type result struct {
	status wire.Status
	body   []byte
	reused []byte // the read loop's reused buffer body lies in (CallInto), to give back
}

// defaultBackend is the sim back-end shared by loads that name none, so that they share its
// cache of sealed images and its platform.
var defaultBackend = sync.OnceValue(func() backend.Backend { return sim.New() })

// Load starts the enclave, checks its identity, and runs its Initialize with cfg.Config. If
// anything fails, nothing is left running. ctx bounds the whole load.
func Load(ctx context.Context, cfg LoadConfig) (*Enclave, error) {
	if cfg.Backend == nil {
		cfg.Backend = defaultBackend()
	}
	if cfg.Name == "" && cfg.Path != "" {
		cfg.Name = baseName(cfg.Path)
	}
	if len(cfg.Name) > wire.MaxEnclaveName {
		return nil, fmt.Errorf("host: enclave name longer than %d bytes", wire.MaxEnclaveName)
	}
	if cfg.MaxMessageSize < 0 || cfg.MaxMessageSize > wire.HardMaxBody {
		return nil, fmt.Errorf("host: MaxMessageSize %d outside [0, %d]", cfg.MaxMessageSize, wire.HardMaxBody)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("enclave", cfg.Name)

	inst, err := cfg.Backend.Start(ctx, backend.Spec{
		Path: cfg.Path, Args: cfg.Args, Env: cfg.Env,
		Stdout: cfg.Stdout, Stderr: cfg.Stderr, Debug: cfg.Debug, Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("host: loading %s: %w", cfg.Name, err)
	}
	e := &Enclave{
		name:      cfg.Name,
		inst:      inst,
		id:        inst.Identity(),
		logger:    logger,
		pending:   map[uint64]*pendingCall{},
		down:      make(chan struct{}),
		readDone:  make(chan struct{}),
		kick:      make(chan struct{}, 1),
		hostSem:   make(chan struct{}, 64),
		files:     newHostFiles(cfg.StorageDir),
		listeners: &hostListeners{allow: cfg.AllowListen, allowDial: cfg.AllowDial, log: logger},
	}
	ch := inst.Channel()
	e.conn = wire.NewConn(ch, cfg.MaxMessageSize)
	if s, ok := inst.(interface{ Spins() bool }); ok && s.Spins() {
		e.poll, _ = ch.(pollable)
	}
	if dl, ok := ch.(interface{ SetReadDeadline(time.Time) error }); ok {
		e.intr = &interrupter{dl: dl}
	}
	e.notifier, _ = inst.(backend.Notifier)
	if err := e.handshake(ctx); err != nil {
		e.kill()
		return nil, fmt.Errorf("host: loading %s: %w", cfg.Name, err)
	}
	go e.readLoop()

	var h []byte
	h = wire.AppendInit(h, wire.InitParams{
		Timeout: timeout(ctx), Name: cfg.Name, LogLevel: int32(cfg.LogLevel), Identity: e.id,
	})
	if _, err := e.roundTrip(ctx, request{kind: wire.KindInit, init: h}, cfg.Config); err != nil {
		e.mu.Lock()
		e.destroyed = true // the read loop is to take what follows as an orderly end
		e.mu.Unlock()
		e.kill()
		<-e.readDone
		if errors.Is(err, ErrEnclaveLost) || ctx.Err() != nil {
			return nil, fmt.Errorf("host: loading %s: %w", cfg.Name, err)
		}
		return nil, fmt.Errorf("host: loading %s: %w: %w", cfg.Name, ErrInitialize, err)
	}
	return e, nil
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

// handshake reads HELLO, bounded by ctx and by the enclave's death.
func (e *Enclave) handshake(ctx context.Context) error {
	type res struct {
		f   wire.Frame
		err error
	}
	ch := make(chan res, 1)
	go func() {
		f, err := e.conn.ReadFrame()
		ch <- res{f, err}
	}()
	var r res
	select {
	case r = <-ch:
	case <-ctx.Done():
		return ctx.Err()
	case <-e.inst.Done():
		// The process may have written HELLO and died; prefer what it said.
		select {
		case r = <-ch:
		case <-time.After(100 * time.Millisecond):
			return e.lostError(errors.New("enclave exited before it was ready"))
		}
	}
	if r.err != nil {
		return e.lostError(fmt.Errorf("waiting for HELLO: %w", r.err))
	}
	if r.f.Kind != wire.KindHello {
		return e.lostError(fmt.Errorf("%w: first frame is %v, want HELLO", wire.ErrProtocol, r.f.Kind))
	}
	h, err := wire.ParseHello(r.f.Body)
	if err != nil {
		return e.lostError(err)
	}
	e.maxSend = int(h.MaxBody)
	return nil
}

// lostError builds the error for a lost enclave, waiting briefly for the process's exit status.
func (e *Enclave) lostError(cause error) *LostError {
	le := &LostError{Name: e.name, Cause: cause}
	if errors.Is(cause, wire.ErrProtocol) || errors.Is(cause, wire.ErrTooLarge) {
		// Alive but misbehaving: it is lost to us all the same.
		e.inst.Kill()
	}
	select {
	case <-e.inst.Done():
	case <-time.After(time.Second):
		// The channel ended but the process lingers; do not wait for it.
		e.inst.Kill()
		<-e.inst.Done()
	}
	var xe *backend.ExitError
	if errors.As(e.inst.Wait(), &xe) {
		le.Exit = xe
	}
	return le
}

func (e *Enclave) kill() {
	e.inst.Kill()
	e.conn.Close()
	e.wakeReader()
	<-e.inst.Done()
}

// Identity returns the identity the back-end measured and verified at load.
func (e *Enclave) Identity() identity.Identity { return e.id }

// Process returns the operating-system process id of the enclave, for back-ends that run it as
// a process on this host (sim); ok is false for the others.
func (e *Enclave) Process() (pid int, ok bool) {
	if p, isProc := e.inst.(interface{ Pid() int }); isProc {
		return p.Pid(), true
	}
	return 0, false
}

// Name returns the enclave's name.
func (e *Enclave) Name() string { return e.name }

// Done is closed when the enclave is lost or destroyed; Err then says which.
func (e *Enclave) Done() <-chan struct{} { return e.down }

// Err returns nil while the enclave is usable, then a *LostError or ErrDestroyed.
func (e *Enclave) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// EnterAndRun calls the application's Run with input and returns its output.
func (e *Enclave) EnterAndRun(ctx context.Context, input []byte) ([]byte, error) {
	return e.roundTrip(ctx, request{kind: wire.KindRun}, input)
}

// Call calls the handler registered as name with input and returns its output. A deadline or
// cancellation of ctx is passed to the handler's context.
func (e *Enclave) Call(ctx context.Context, name string, input []byte) ([]byte, error) {
	if !wire.ValidMethodName(name) {
		return nil, fmt.Errorf("host: %w: method name %q: use 1-%d characters of [A-Za-z0-9_.:/-]", ErrInvalidArgument, name, wire.MaxMethodName)
	}
	return e.roundTrip(ctx, request{kind: wire.KindCall, method: name}, input)
}

// CallInto is Call for large results: the output is appended to dst[:0] (and returned), so a
// caller that passes the same dst every time allocates nothing for outputs that fit in it.
// Results of 64 KiB and more are received into a buffer the Enclave reuses, instead of a new
// allocation per call that the garbage collector must then reclaim (docs/benchmarks.md,
// target 3); dst and the output belong to the caller alone once CallInto returns, as with
// Call.
func (e *Enclave) CallInto(ctx context.Context, name string, input, dst []byte) ([]byte, error) {
	if !wire.ValidMethodName(name) {
		return nil, fmt.Errorf("host: %w: method name %q: use 1-%d characters of [A-Za-z0-9_.:/-]", ErrInvalidArgument, name, wire.MaxMethodName)
	}
	return e.roundTripInto(ctx, request{kind: wire.KindCall, method: name}, input, dst, true)
}

// CallJSON calls name with in encoded as JSON and decodes the output into Out; it pairs with
// enclave.HandleJSON.
func CallJSON[Out any](ctx context.Context, e *Enclave, name string, in any) (Out, error) {
	var out Out
	b, err := json.Marshal(in)
	if err != nil {
		return out, fmt.Errorf("host: encoding %s input: %w", name, err)
	}
	b, err = e.Call(ctx, name, b)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("host: decoding %s output: %w", name, err)
	}
	return out, nil
}

// Destroy runs the application's Finalize with final, waits for in-flight calls and for the
// enclave to exit, and releases it. If ctx ends first, the enclave is killed. Destroying a lost
// enclave releases it and returns its *LostError; destroying twice returns ErrDestroyed.
func (e *Enclave) Destroy(ctx context.Context, final []byte) error {
	e.mu.Lock()
	if e.destroyed {
		e.mu.Unlock()
		return ErrDestroyed
	}
	e.destroyed = true
	lost := e.err
	e.mu.Unlock()
	if lost != nil {
		e.kill()
		return lost
	}
	_, ferr := e.roundTrip(ctx, request{kind: wire.KindFinalize}, final)
	// The runtime exits right after answering FINALIZE; an enclave that lingers is killed.
	grace := time.NewTimer(exitGrace)
	defer grace.Stop()
	select {
	case <-e.inst.Done():
	case <-ctx.Done():
		e.inst.Kill()
		<-e.inst.Done()
	case <-grace.C:
		e.inst.Kill()
		<-e.inst.Done()
	}
	e.conn.Close()
	e.wakeReader()
	<-e.readDone
	e.setErr(ErrDestroyed)
	if ferr != nil {
		return fmt.Errorf("host: finalizing %s: %w", e.name, ferr)
	}
	return nil
}

// pollable is a switchless channel, which a caller can poll for data.
type pollable interface {
	Readable() bool
	SetReadDeadline(time.Time) error
}

// spinWait is how long a caller polls for its result on a spinning (switchless) channel before
// it parks.
const spinWait = 20 * time.Microsecond

// readerTick is how often a read loop that stepped aside for callers reading their own results
// looks whether they have all gone. A frame the enclave sends outside any call (a log record, a
// host call from a background goroutine) can wait up to two ticks after the last call ends.
const readerTick = time.Millisecond

// readerTickMax is the longest tick while one caller reads through a long call (which wakes the
// read loop when it ends).
const readerTickMax = 128 * time.Millisecond

// frameGrace bounds how long a polling caller waits for the rest of a frame that has begun.
const frameGrace = 10 * time.Millisecond

// exitGrace is how long Destroy waits for an enclave to exit after FINALIZE before killing it.
const exitGrace = 5 * time.Second

func timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Nanosecond)
	}
	return 0
}

// roundTrip sends a request frame and waits for its RESULT.
func (e *Enclave) roundTrip(ctx context.Context, req request, input []byte) ([]byte, error) {
	return e.roundTripInto(ctx, req, input, nil, false)
}

// request is what a round trip sends besides its input: the kind, and the method of a CALL or
// the encoded parameters of INIT.
type request struct {
	kind   wire.Kind
	method string
	init   []byte
}

// roundTripInto is roundTrip; with into set, a large result is received into the Enclave's
// reused buffer and copied into dst (see CallInto).
func (e *Enclave) roundTripInto(ctx context.Context, req request, input, dst []byte, into bool) ([]byte, error) {
	kind := req.kind
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := pendingCalls.Get().(*pendingCall)
	head := req.init
	if head == nil {
		// Into the recycled pendingCall: a buffer on the stack would escape (the frame's parts
		// may be handed to a writer), an allocation per call.
		head = wire.AppendRequestHeader(p.head[:0], kind, timeout(ctx), req.method)
	}
	if len(head)+len(input) > e.maxSend {
		pendingCalls.Put(p)
		return nil, fmt.Errorf("host: %w: %v of %d bytes exceeds the enclave's limit of %d", ErrTooLarge, kind, len(head)+len(input), e.maxSend)
	}
	p.into, p.parked = into, false
	ch := p.ch
	e.mu.Lock()
	if e.err != nil {
		err := e.err
		e.mu.Unlock()
		return nil, err
	}
	if e.destroyed && kind != wire.KindFinalize {
		e.mu.Unlock()
		return nil, ErrDestroyed
	}
	e.nextID++
	id := e.nextID
	// Another call in flight may be running on the enclave's reading goroutine: this frame then
	// needs the enclave's attention. A lone call needs none, which keeps the common case free of
	// the notification (and of the watchdog it replaces).
	busy := len(e.pending) > 0
	e.pending[id] = p
	e.mu.Unlock()
	finish := func(r result) ([]byte, error) {
		// The one result has been taken from ch, and nothing else will be sent on it.
		pendingCalls.Put(p)
		if r.reused == nil {
			return decodeResult(r)
		}
		// Copy out of the reused buffer, then give it back: it is ours again only now.
		out, err := decodeResult(r)
		if err == nil {
			out = append(dst[:0], out...)
		}
		e.spare.Give(r.reused)
		return out, err
	}

	if begun, err := e.conn.WriteFrameContext(ctx, kind, id, head, input); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			// The enclave is not reading, and the caller stops waiting for it.
			if !begun {
				e.mu.Lock()
				delete(e.pending, id)
				e.mu.Unlock()
				pendingCalls.Put(p)
			} else {
				// The request is finished in the background; the entry stays pending, as
				// for any cancelled call.
				e.cancel(id)
			}
			return nil, ctxErr
		}
		// The read loop notices the broken channel and fails every pending call.
		<-e.down
		return nil, e.Err()
	}
	if busy {
		e.notify()
	}
	if e.poll != nil || e.intr != nil {
		var r result
		var ok bool
		if e.poll != nil {
			r, ok = e.pollResult(id, ch)
		}
		if !ok && e.intr != nil {
			// A socket, or a switchless call that outlasted the polling: read, blocking.
			r, ok = e.readOwn(ctx, id, ch)
		}
		if ok {
			return finish(r)
		}
		// Parked from here on: the read loop must read for us.
		e.park(id, p)
	}
	select {
	case r := <-ch:
		return finish(r) // the delivery unparked us
	case <-e.down:
		// A result may have raced the failure.
		select {
		case r := <-ch:
			return finish(r)
		default:
		}
		e.unpark(p)
		return nil, e.Err()
	case <-ctx.Done():
		// The entry stays pending: the enclave still answers, and the read loop drops it.
		e.unpark(p)
		e.cancel(id)
		return nil, ctx.Err()
	}
}

// cancel sends CANCEL for call id, from a goroutine of its own: an enclave that has stopped
// reading must not hold up the caller that gives up on it.
func (e *Enclave) cancel(id uint64) {
	go func() {
		if e.conn.WriteFrame(wire.KindCancel, id) == nil {
			e.notify() // the call it cancels is in flight, and may be running on the reader
		}
	}()
}

// notify rings the enclave's attention channel, if it has one, for the frames written so far.
// Concurrent callers share one notifier: a caller that finds another notifying leaves its frame
// to it, since that one reads the count again after this caller's frame was written (its next
// round sees the caller's mark).
func (e *Enclave) notify() {
	if e.notifier == nil || e.notes.Add(1) > 1 {
		return
	}
	for {
		n := e.notes.Load()
		e.notified.Add(1)
		e.notifier.Notify(e.conn.FramesWritten())
		if e.notes.Add(-n) == 0 {
			return
		}
	}
}

// pendingCall is a call waiting for its RESULT, in Enclave.pending.
type pendingCall struct {
	ch     chan result                      // receives the RESULT; buffered, so the reader never blocks
	into   bool                             // CallInto: a large result is received into e.spare
	parked bool                             // the caller parked, and someone must read for it (counted in e.waiting)
	head   [8 + 1 + wire.MaxMethodName]byte // the request's header (not the parameters of INIT)
}

// pendingCalls recycles pendingCalls: a call returns its own once it has received the result,
// and only then (after a cancellation the result may still come).
var pendingCalls = sync.Pool{New: func() any { return &pendingCall{ch: make(chan result, 1)} }}

// park records that the caller of call id waits parked, unless its result was delivered already,
// and wakes the read loop if it stepped aside.
func (e *Enclave) park(id uint64, p *pendingCall) {
	e.mu.Lock()
	if e.pending[id] == p {
		p.parked = true
		e.waiting.Add(1)
	}
	e.mu.Unlock()
	e.wakeReader()
}

// unpark undoes park for a caller that stops waiting without its result (cancelled, or lost).
func (e *Enclave) unpark(p *pendingCall) {
	e.mu.Lock()
	if p.parked {
		p.parked = false
		e.waiting.Add(-1)
	}
	e.mu.Unlock()
}

func decodeResult(r result) ([]byte, error) {
	if r.status == wire.StatusOK {
		return r.body, nil
	}
	return nil, &EnclaveError{Status: r.status, Message: string(r.body)}
}

func (e *Enclave) setErr(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = err
		close(e.down)
	}
}

func (e *Enclave) readLoop() {
	defer close(e.readDone)
	defer e.files.closeAll()
	defer e.listeners.closeAll()
	for {
		// (A caller that found us reading may have had its result from us and gone by now: denied
		// makes us step aside all the same, or we would go on taking every result.)
		if (e.polling.Load() > 0 || e.denied.Swap(false)) && e.waiting.Load() == 0 {
			// Every caller reads for itself: step aside, so that we neither compete with them for
			// the CPU nor take their results (a hand-over costs more than the call).
			if !e.stepAside() {
				return
			}
			continue
		}
		e.rtok.Lock()
		if e.isDown() { // a caller read the end of the channel
			e.rtok.Unlock()
			return
		}
		f, err := e.conn.ReadFrameInto(e.resultBody)
		if err == nil {
			err = e.handle(f)
		}
		if err != nil {
			e.readFailed(err) // holding rtok: nobody reads past the failure
			e.rtok.Unlock()
			return
		}
		e.rtok.Unlock()
	}
}

// stepAside waits until a caller parks (wakeReader), a tick in which no caller started reading
// for itself, or the end. It reports false at the end. While one caller goes on reading through
// a long call (it reads whatever arrives), the ticks space out, up to readerTickMax.
func (e *Enclave) stepAside() bool {
	// A kick left by a caller that has had its result already must not end this at once; one
	// that parked since the caller of this looked is seen in waiting.
	select {
	case <-e.kick:
	default:
	}
	if e.waiting.Load() > 0 {
		return true
	}
	wait := readerTick
	t := time.NewTimer(wait)
	defer t.Stop()
	last := e.ownReads.Load()
	for {
		select {
		case <-e.kick:
			e.spaced.Store(false)
			return true
		case <-t.C:
			switch n := e.ownReads.Load(); {
			case n != last: // callers came and read: they will read what comes next too
				last, wait = n, readerTick
				e.spaced.Store(false)
			case e.polling.Load() > 0: // the same caller still reads
				wait = min(2*wait, readerTickMax)
				e.spaced.Store(true)
			default:
				e.spaced.Store(false)
				return true
			}
			t.Reset(wait)
		case <-e.down:
			return false
		}
	}
}

// takeRead takes the read token for a caller that reads for itself, if nobody holds it; if
// somebody does, it tells the read loop that a caller wanted it.
func (e *Enclave) takeRead() bool {
	if e.rtok.TryLock() {
		e.ownReads.Add(1)
		return true
	}
	if !e.denied.Load() {
		e.denied.Store(true)
	}
	return false
}

// isDown reports whether the Enclave has ended (lost or destroyed).
func (e *Enclave) isDown() bool {
	select {
	case <-e.down:
		return true
	default:
		return false
	}
}

// releaseRead gives back the read token a caller took. A caller that read through a long call
// wakes the read loop, whose ticks have spaced out meanwhile; after a short one the read loop's
// next tick is near, and a wake-up would cost more than the call. (The read loop's own flag
// tells the two apart: reading the clock costs 60-100 ns on this machine's VMs, a few per cent
// of a switchless call.)
func (e *Enclave) releaseRead() {
	e.rtok.Unlock()
	if e.spaced.Load() {
		e.wakeReader()
	}
}

// wakeReader wakes a read loop that stepped aside.
func (e *Enclave) wakeReader() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// readFailed ends the Enclave after a read error: an orderly end after Destroy, else lost.
func (e *Enclave) readFailed(err error) {
	e.mu.Lock()
	// Destroyed, and no call (FINALIZE included) still waits for an answer: the end of the
	// channel is the enclave exiting as asked.
	orderly := e.destroyed && len(e.pending) == 0
	e.mu.Unlock()
	if orderly {
		e.setErr(ErrDestroyed)
		return
	}
	le := e.lostError(err)
	e.setErr(le)
	e.logger.Error("enclave lost", "err", le)
	e.conn.Close()
}

// pollResult is how a caller on a switchless channel waits for its result, for up to spinWait:
// whenever nobody else is reading, it reads and handles the frames there itself, so that its
// own result reaches it without a hand-over between goroutines, which costs a thread wake-up,
// or at best a scheduler pass and a cache-line transfer, in each direction (design note 16).
// Once it has the read token it keeps it until it returns; other polling callers meanwhile get
// their results from it, as from the read loop.
func (e *Enclave) pollResult(id uint64, ch chan result) (r result, ok bool) {
	e.polling.Add(1)
	defer e.polling.Add(-1)
	reading := false
	defer func() {
		if reading {
			e.poll.SetReadDeadline(time.Time{})
			e.releaseRead()
		}
	}()
	now := time.Now() // one clock reading for the poll's limits (the clock is not free here)
	deadline := now.Add(spinWait)
	for {
		for range 64 {
			if !reading {
				select {
				case r := <-ch:
					return r, true
				default:
				}
				if !e.takeRead() {
					continue
				}
				reading = true
				if e.isDown() { // the end was read already
					return result{}, false
				}
				// A frame that stalls half-way (a hostile enclave) must not hold a polling
				// caller: past this, the read stops, and whoever reads next resumes the frame
				// (the caller itself, in readOwn, where its context can interrupt it).
				e.poll.SetReadDeadline(deadline.Add(frameGrace))
			}
			if e.conn.Buffered() == 0 && !e.poll.Readable() {
				continue
			}
			f, err := e.conn.ReadFrameInto(e.resultBody)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return result{}, false // the frame stalled: stop polling (it is resumed later)
			}
			if err == nil && f.Kind == wire.KindResult && f.ID == id {
				var r result
				if _, r, err = e.result(f); err == nil {
					return r, true // our own: not through our channel (as in readOwn)
				}
			} else if err == nil {
				err = e.handle(f)
			}
			if err != nil {
				e.readFailed(err) // holding rtok: nobody reads past the failure
				return result{}, false
			}
			select {
			case r := <-ch:
				return r, true
			default:
			}
		}
		// The reader does not yield between rounds: with the read loop aside, another P is
		// idle, and yielding makes the runtime wake a thread for it (a futex call in the middle
		// of the poll). Goroutines readied here (host calls) start on that P anyway, and a poll
		// ends within spinWait. A caller that waits for another's reading does yield: it has
		// nothing to do until the reader delivers, and with more callers than Ps its spinning
		// would keep the reader from running (BenchmarkCallParallel's tail).
		if !reading {
			runtime.Gosched()
		}
		if !time.Now().Before(deadline) {
			return result{}, false
		}
	}
}

// readOwn is how a caller on a socket waits for its result when nobody else is reading: it reads
// and handles frames itself, blocking in the channel's Read, until its result comes (design note
// 16). The end of ctx interrupts the Read; the frame reader resumes a frame cut short on its next
// call. It reports false if the caller must wait for its result from someone else.
func (e *Enclave) readOwn(ctx context.Context, id uint64, ch chan result) (result, bool) {
	e.polling.Add(1)
	defer e.polling.Add(-1)
	if !e.takeRead() {
		return result{}, false
	}
	defer e.releaseRead()
	if e.isDown() { // the end was read already
		return result{}, false
	}
	if ctx.Done() != nil {
		e.intr.own(id)
		stop := context.AfterFunc(ctx, func() { e.intr.interrupt(id) })
		defer func() {
			stop()
			e.intr.release()
		}()
	}
	for {
		select {
		case r := <-ch: // read by someone else before we took the token
			return r, true
		default:
		}
		if ctx.Err() != nil {
			return result{}, false
		}
		f, err := e.conn.ReadFrameInto(e.resultBody)
		if err != nil && ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			return result{}, false // interrupted by our context's end
		}
		if err == nil && f.Kind == wire.KindResult && f.ID == id {
			// Our own result: straight to us, not through our channel (two channel
			// operations, a tenth of the host's work for a small call).
			var r result
			if _, r, err = e.result(f); err == nil {
				return r, true
			}
		} else if err == nil {
			err = e.handle(f)
		}
		if err != nil {
			e.readFailed(err)
			return result{}, false
		}
	}
}

// result takes a RESULT's call off the pending calls and decodes it for that call's caller.
func (e *Enclave) result(f wire.Frame) (*pendingCall, result, error) {
	st, body, err := wire.ParseResult(f.Kind, f.Body)
	if err != nil {
		return nil, result{}, err
	}
	e.mu.Lock()
	p, ok := e.pending[f.ID]
	delete(e.pending, f.ID)
	if ok && p.parked {
		// Delivered: that caller no longer needs anyone to read for it.
		p.parked = false
		e.waiting.Add(-1)
	}
	e.mu.Unlock()
	if !ok {
		return nil, result{}, fmt.Errorf("%w: RESULT for unknown call %d", wire.ErrProtocol, f.ID)
	}
	r := result{status: st, body: body}
	if p.into && len(f.Body) >= wire.MinReuse {
		// The caller copies it out and gives the buffer back (even one allocated here,
		// which becomes the reused buffer). If the caller has gone, it is garbage.
		r.reused = f.Body
	}
	return p, r, nil
}

func (e *Enclave) handle(f wire.Frame) error {
	switch f.Kind {
	case wire.KindResult:
		p, r, err := e.result(f)
		if err != nil {
			return err
		}
		p.ch <- r
	case wire.KindHostCall:
		op, req, err := wire.ParseHostCall(f.Body)
		if err != nil {
			return err
		}
		select {
		case e.hostSem <- struct{}{}:
		default:
			return fmt.Errorf("%w: more than %d concurrent host calls", wire.ErrProtocol, cap(e.hostSem))
		}
		go func() {
			st, resp := e.serveHostCall(op, req)
			// Free the slot before answering: the enclave may issue its next host call as soon
			// as it reads this answer.
			<-e.hostSem
			e.conn.WriteResult(wire.KindHostResult, f.ID, st, resp)
		}()
	case wire.KindLog:
		rec, err := wire.ParseLog(f.Body)
		if err != nil {
			return err
		}
		attrs := make([]slog.Attr, 0, len(rec.Attrs))
		for _, a := range rec.Attrs {
			attrs = append(attrs, slog.String(a.Key, a.Value))
		}
		e.logger.LogAttrs(context.Background(), slog.Level(rec.Level), rec.Message, attrs...)
	default:
		return fmt.Errorf("%w: unexpected %v frame from enclave", wire.ErrProtocol, f.Kind)
	}
	return nil
}

// serveHostCall answers a host call. The request is from the enclave, validated like any input.
func (e *Enclave) serveHostCall(op wire.Op, req []byte) (wire.Status, []byte) {
	switch op {
	case wire.OpUntrustedTime:
		if len(req) != 0 {
			return wire.StatusInvalidArgument, []byte("UNTRUSTED_TIME takes no argument")
		}
		return wire.StatusOK, binary.LittleEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
	case wire.OpFSOpen, wire.OpFSRead, wire.OpFSWrite, wire.OpFSTruncate, wire.OpFSSync, wire.OpFSSize,
		wire.OpFSClose, wire.OpFSRename, wire.OpFSRemove, wire.OpCounterGet, wire.OpCounterInc:
		return e.files.serve(context.Background(), e.inst, op, req)
	case wire.OpListen, wire.OpAccept, wire.OpCloseListener, wire.OpDial:
		return e.listeners.serve(context.Background(), e.inst, op, req)
	case wire.OpSealKeyID, wire.OpSealKey:
		r, ok := e.inst.(backend.SealingRoot)
		if !ok {
			break
		}
		var out []byte
		var err error
		if op == wire.OpSealKeyID {
			out, err = r.SealKeyID(context.Background())
		} else {
			out, err = r.DeriveSealKey(context.Background(), req)
		}
		if err != nil {
			return wire.StatusApplication, []byte(wire.TruncateMessage("sealing: " + err.Error()))
		}
		return wire.StatusOK, out
	case wire.OpAttest:
		a, ok := e.inst.(backend.Attester)
		if !ok {
			break
		}
		if len(req) > 64 {
			return wire.StatusInvalidArgument, []byte("ATTEST takes at most 64 bytes of user data")
		}
		ev, err := a.Attest(context.Background(), req)
		if err != nil {
			e.logger.Error("attestation failed", "err", err)
			return wire.StatusApplication, []byte(wire.TruncateMessage("attestation failed: " + err.Error()))
		}
		return wire.StatusOK, ev
	}
	return wire.StatusUnimplemented, []byte(fmt.Sprintf("host call op %d is not implemented by this host", op))
}
