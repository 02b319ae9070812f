// Package conformance is the behaviour every back-end must show, as one test suite. A back-end's
// tests call Run with a Target that loads internal/testenclave on that back-end; the suite is the
// same for all of them, so an application that works on one works on the others.
package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/backend/earlyinit"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/internal/testenclave"
)

// Target is a back-end under test.
type Target struct {
	// Load loads internal/testenclave with cfg on the back-end (setting Path/Backend/Debug).
	Load func(ctx context.Context, cfg host.LoadConfig) (*host.Enclave, error)
	// Isolated is true for back-ends that run the enclave in its own sandboxed process: the suite
	// then also checks crashes, exit statuses, standard streams and the sandbox from inside.
	Isolated bool
	// ConfinedFromStart is true for isolated back-ends that confine the enclave process before
	// its first instruction, not only from the enclave runtime's initialisation on: the suite
	// then checks that what a package initialised before the runtime tries is refused too.
	ConfinedFromStart bool
}

// Run runs the suite.
func Run(t *testing.T, tg Target) {
	t.Run("Lifecycle", func(t *testing.T) { lifecycle(t, tg) })
	t.Run("InitFailure", func(t *testing.T) { initFailure(t, tg) })
	t.Run("Calls", func(t *testing.T) { calls(t, tg) })
	t.Run("Panic", func(t *testing.T) { panics(t, tg) })
	t.Run("Concurrency", func(t *testing.T) { concurrency(t, tg) })
	t.Run("Cancellation", func(t *testing.T) { cancellation(t, tg) })
	t.Run("HostCalls", func(t *testing.T) { hostCalls(t, tg) })
	t.Run("Limits", func(t *testing.T) { limits(t, tg) })
	t.Run("SeveralEnclaves", func(t *testing.T) { several(t, tg) })
	t.Run("LargeBuffers", func(t *testing.T) { largeBuffers(t, tg) })
	if tg.Isolated {
		t.Run("Death", func(t *testing.T) { death(t, tg) })
		t.Run("StandardStreams", func(t *testing.T) { streams(t, tg) })
		t.Run("ArgsAndEnv", func(t *testing.T) { argsEnv(t, tg) })
		t.Run("Sandbox", func(t *testing.T) { sandbox(t, tg) })
	}
}

var quiet = slog.New(slog.DiscardHandler)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func load(t *testing.T, tg Target, cfg host.LoadConfig) *host.Enclave {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	e, err := tg.Load(ctx(t), cfg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { e.Destroy(context.Background(), nil) })
	return e
}

func call(t *testing.T, e *host.Enclave, name, in string) string {
	t.Helper()
	out, err := e.Call(ctx(t), name, []byte(in))
	if err != nil {
		t.Fatalf("Call(%s, %q): %v", name, in, err)
	}
	return string(out)
}

func lifecycle(t *testing.T, tg Target) {
	e, err := tg.Load(ctx(t), host.LoadConfig{Config: []byte("cfg"), Name: "life", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if e.Name() != "life" {
		t.Errorf("Name() = %q", e.Name())
	}
	out, err := e.EnterAndRun(ctx(t), []byte("x"))
	if err != nil || string(out) != "run:cfg:x" {
		t.Fatalf("EnterAndRun = %q, %v; want run:cfg:x", out, err)
	}
	if got := call(t, e, "echo", "hello"); got != "hello" {
		t.Errorf("echo = %q", got)
	}
	if got := call(t, e, "echo", ""); got != "" {
		t.Errorf("empty echo = %q", got)
	}
	if err := e.Err(); err != nil {
		t.Errorf("Err() before Destroy = %v", err)
	}
	if err := e.Destroy(ctx(t), []byte("bye")); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := e.Call(ctx(t), "echo", nil); !errors.Is(err, host.ErrDestroyed) {
		t.Errorf("Call after Destroy: %v, want ErrDestroyed", err)
	}
	if err := e.Destroy(ctx(t), nil); !errors.Is(err, host.ErrDestroyed) {
		t.Errorf("second Destroy: %v, want ErrDestroyed", err)
	}
	select {
	case <-e.Done():
	default:
		t.Error("Done() not closed after Destroy")
	}

	// Finalize's error reaches Destroy, and the enclave is gone all the same.
	e2 := load(t, tg, host.LoadConfig{})
	if err := e2.Destroy(ctx(t), []byte("fail-fini")); err == nil || !strings.Contains(err.Error(), "finalize refused") {
		t.Errorf("Destroy with failing Finalize = %v", err)
	}
}

func initFailure(t *testing.T, tg Target) {
	_, err := tg.Load(ctx(t), host.LoadConfig{Config: []byte("fail-init")})
	if !errors.Is(err, host.ErrInitialize) || !strings.Contains(err.Error(), "initialization refused by test") {
		t.Errorf("failing Initialize: %v, want ErrInitialize with the app's message", err)
	}
	_, err = tg.Load(ctx(t), host.LoadConfig{Config: []byte("panic-init")})
	if !errors.Is(err, host.ErrInitialize) || !errors.Is(err, host.ErrPanic) {
		t.Errorf("panicking Initialize: %v, want ErrInitialize and ErrPanic", err)
	}
	if tg.Isolated {
		_, err = tg.Load(ctx(t), host.LoadConfig{Config: []byte("exit-init")})
		var le *host.LostError
		if !errors.As(err, &le) || le.Exit == nil || le.Exit.Code != 3 {
			t.Errorf("exiting Initialize: %v, want LostError with exit status 3", err)
		}
	}
}

func calls(t *testing.T, tg Target) {
	e := load(t, tg, host.LoadConfig{})
	if _, err := e.Call(ctx(t), "nope", nil); !errors.Is(err, host.ErrUnknownMethod) {
		t.Errorf("unknown method: %v", err)
	}
	if _, err := e.Call(ctx(t), "bad name!", nil); !errors.Is(err, host.ErrInvalidArgument) {
		t.Errorf("invalid method name: %v", err)
	}
	_, err := e.Call(ctx(t), "error", []byte("it failed"))
	var ee *host.EnclaveError
	if !errors.As(err, &ee) || ee.Message != "it failed" {
		t.Errorf("application error: %v", err)
	}
	sum, err := host.CallJSON[int](ctx(t), e, "add", map[string]int{"A": 2, "B": 40})
	if err != nil || sum != 42 {
		t.Errorf("add = %d, %v", sum, err)
	}
	if _, err := e.Call(ctx(t), "add", []byte(`{"A":1,"C":2}`)); !errors.Is(err, host.ErrInvalidArgument) {
		t.Errorf("add with unknown field: %v, want ErrInvalidArgument", err)
	}
	if _, err := e.Call(ctx(t), "add", []byte(`{"A":1}{}`)); !errors.Is(err, host.ErrInvalidArgument) {
		t.Errorf("add with trailing data: %v, want ErrInvalidArgument", err)
	}
	in := bytes.Repeat([]byte{0, 1, 2, 0xff}, 100000)
	out, err := e.Call(ctx(t), "echo", in)
	if err != nil || !bytes.Equal(in, out) {
		t.Errorf("400 kB echo: %d bytes, %v", len(out), err)
	}
}

func panics(t *testing.T, tg Target) {
	e := load(t, tg, host.LoadConfig{})
	_, err := e.Call(ctx(t), "panic", []byte("oh no"))
	if !errors.Is(err, host.ErrPanic) || !strings.Contains(err.Error(), "oh no") {
		t.Fatalf("panic: %v, want ErrPanic carrying the panic value", err)
	}
	// A panic is confined to its call: the enclave keeps serving.
	if got := call(t, e, "echo", "still here"); got != "still here" {
		t.Errorf("after panic: %q", got)
	}
}

func concurrency(t *testing.T, tg Target) {
	e := load(t, tg, host.LoadConfig{})
	const n = 16
	var wg sync.WaitGroup
	peaks := make([]string, n)
	for i := range n {
		wg.Go(func() {
			out, err := e.Call(ctx(t), "concurrent", []byte("500ms"))
			if err != nil {
				t.Error(err)
			}
			peaks[i] = string(out)
		})
	}
	wg.Wait()
	if got := call(t, e, "concurrent", "0s"); got != fmt.Sprint(n) {
		t.Errorf("peak concurrency %s, want %d (calls must run concurrently)", got, n)
	}
	// Many small calls from many goroutines all get their own answers.
	for i := range 64 {
		wg.Go(func() {
			for j := range 20 {
				want := fmt.Sprintf("%d/%d", i, j)
				if got, err := e.Call(ctx(t), "echo", []byte(want)); err != nil || string(got) != want {
					t.Errorf("echo %s = %q, %v", want, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func cancellation(t *testing.T, tg Target) {
	e := load(t, tg, host.LoadConfig{})
	c, cancel := context.WithCancel(ctx(t))
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := e.Call(c, "sleep", []byte("30s"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	// The deadline crosses the boundary: the handler sees it.
	c2, cancel2 := context.WithTimeout(ctx(t), 20*time.Second)
	defer cancel2()
	out, err := e.Call(c2, "deadline", nil)
	if err != nil || (string(out) != "20s" && string(out) != "19s") {
		t.Errorf("deadline seen in enclave = %q, %v; want 20s", out, err)
	}
	if got, err := e.Call(context.Background(), "deadline", nil); string(got) != "none" || err != nil {
		t.Errorf("deadline without one = %q", got)
	}
	c3, cancel3 := context.WithTimeout(ctx(t), 100*time.Millisecond)
	defer cancel3()
	if _, err := e.Call(c3, "sleep", []byte("30s")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call past deadline: %v", err)
	}
	// Both handlers saw their context end: the cancellation and the deadline crossed the
	// boundary, not only the host's wait.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := call(t, e, "interrupted", "")
		if got == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s handlers saw their context end, want 2", got)
			break
		}
	}
	// Cancelled calls freed their slots; the enclave still answers.
	if got := call(t, e, "echo", "ok"); got != "ok" {
		t.Errorf("after cancellations: %q", got)
	}
	if _, err := e.Call(c, "echo", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("call with a done context: %v", err)
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes: a target for log handlers and for
// the enclave's standard streams, which the host relays from its own goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *SyncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *SyncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func hostCalls(t *testing.T, tg Target) {
	var logs SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := load(t, tg, host.LoadConfig{Name: "hc", Logger: logger, LogLevel: slog.LevelInfo})
	out, err := e.Call(ctx(t), "time", nil)
	if err != nil || len(out) != 8 {
		t.Fatalf("time: %v", err)
	}
	got := time.Unix(0, int64(binary.LittleEndian.Uint64(out)))
	if d := time.Since(got); d < 0 || d > 10*time.Second {
		t.Errorf("untrusted time %v is %v from now", got, d)
	}
	call(t, e, "log", "a message from inside")
	if s := logs.String(); !strings.Contains(s, "a message from inside") || !strings.Contains(s, "enclave=hc") ||
		!strings.Contains(s, "test.n=42") || !strings.Contains(s, "level=WARN") {
		t.Errorf("enclave log record not relayed with level, name and attributes:\n%s", s)
	}
	if s := logs.String(); !strings.Contains(s, "initialized") {
		t.Errorf("Initialize's info record missing:\n%s", s)
	}
	// Records below the configured level stay in the enclave.
	var quiet SyncBuffer
	e2 := load(t, tg, host.LoadConfig{Logger: slog.New(slog.NewTextHandler(&quiet, nil)), LogLevel: slog.LevelError})
	call(t, e2, "log", "should not appear")
	if strings.Contains(quiet.String(), "should not appear") {
		t.Errorf("WARN record relayed at level ERROR")
	}
}

func limits(t *testing.T, tg Target) {
	e := load(t, tg, host.LoadConfig{})
	out, err := e.Call(ctx(t), "big", []byte("1048576"))
	if err != nil || len(out) != 1<<20 {
		t.Fatalf("1 MiB result: %d bytes, %v", len(out), err)
	}
	// Over the enclave's announced limit: refused by the host before sending.
	if _, err := e.Call(ctx(t), "echo", make([]byte, 64<<20+1)); !errors.Is(err, host.ErrTooLarge) {
		t.Errorf("oversized input: %v, want ErrTooLarge", err)
	}
	if got := call(t, e, "echo", "fine"); got != "fine" {
		t.Errorf("after refused input: %q", got)
	}

	// An enclave that sends more than the host accepts is lost, not trusted to behave.
	small := load(t, tg, host.LoadConfig{MaxMessageSize: 64 << 10})
	_, err = small.Call(ctx(t), "big", []byte("1048576"))
	if !errors.Is(err, host.ErrEnclaveLost) {
		t.Errorf("result over host limit: %v, want ErrEnclaveLost", err)
	}
}

func several(t *testing.T, tg Target) {
	var es []*host.Enclave
	for i := range 3 {
		es = append(es, load(t, tg, host.LoadConfig{Name: fmt.Sprintf("e%d", i)}))
	}
	for i, e := range es {
		for j := 0; j <= i; j++ {
			call(t, e, "count", "")
		}
	}
	for i, e := range es {
		if got := call(t, e, "count", ""); got != fmt.Sprint(i+2) {
			t.Errorf("enclave %d count = %s, want %d (enclaves must not share state)", i, got, i+2)
		}
	}
}

func death(t *testing.T, tg Target) {
	e := load(t, tg, host.LoadConfig{Name: "mortal"})
	pending := make(chan error, 1)
	go func() {
		_, err := e.Call(context.Background(), "sleep", []byte("60s"))
		pending <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	_, err := e.Call(ctx(t), "exit", []byte("7"))
	var le *host.LostError
	if !errors.As(err, &le) || le.Exit == nil || le.Exit.Code != 7 {
		t.Fatalf("exit(7): %v, want LostError with status 7", err)
	}
	var xe *backend.ExitError
	if !errors.As(err, &xe) {
		t.Errorf("LostError does not unwrap to *backend.ExitError")
	}
	select {
	case err := <-pending:
		if !errors.Is(err, host.ErrEnclaveLost) {
			t.Errorf("in-flight call: %v, want ErrEnclaveLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight call still blocked 5s after the enclave died")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("death noticed after %v", d)
	}
	if _, err := e.Call(ctx(t), "echo", nil); !errors.Is(err, host.ErrEnclaveLost) {
		t.Errorf("call after death: %v", err)
	}
	<-e.Done()
	if err := e.Destroy(ctx(t), nil); !errors.Is(err, host.ErrEnclaveLost) {
		t.Errorf("Destroy of a lost enclave: %v", err)
	}

	// A panic outside any call kills the process (Go's exit status 2), not the host.
	e2 := load(t, tg, host.LoadConfig{})
	_, err = e2.Call(ctx(t), "crash", nil)
	if !errors.As(err, &le) || le.Exit == nil || le.Exit.Code != 2 {
		t.Errorf("crash: %v, want LostError with status 2", err)
	}
	// Loading again works.
	e3 := load(t, tg, host.LoadConfig{})
	if got := call(t, e3, "echo", "reborn"); got != "reborn" {
		t.Errorf("reload: %q", got)
	}
}

func streams(t *testing.T, tg Target) {
	var out, errOut SyncBuffer
	e, err := tg.Load(ctx(t), host.LoadConfig{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	call(t, e, "print", "to the host")
	if err := e.Destroy(ctx(t), []byte("end")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "to the host") || !strings.Contains(out.String(), `finalized with "end"`) {
		t.Errorf("stdout = %q", out.String())
	}
	if !strings.Contains(errOut.String(), "stderr:to the host") {
		t.Errorf("stderr = %q", errOut.String())
	}
}

// argsEnv: the enclave program gets LoadConfig.Args after its name, and LoadConfig.Env plus the
// launch's own variables as its whole environment: nothing of the host's.
func argsEnv(t *testing.T, tg Target) {
	t.Setenv("ASYLO_CONFORMANCE_HOST_ONLY", "1")
	args := []string{"one", "two words", "", "--flag=x"}
	e := load(t, tg, host.LoadConfig{Args: args, Env: []string{"GREETING=hello=world", "EMPTY="}})
	var got testenclave.ArgsEnv
	if err := json.Unmarshal([]byte(call(t, e, "args-env", "{}")), &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Args, args) {
		t.Errorf("enclave's arguments %q, want %q", got.Args, args)
	}
	env := map[string]string{}
	for _, kv := range got.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
		if !strings.HasPrefix(k, "ASYLO_") && k != "GREETING" && k != "EMPTY" {
			t.Errorf("enclave's environment has %q, which LoadConfig.Env does not", kv)
		}
	}
	if v, ok := env["GREETING"]; !ok || v != "hello=world" {
		t.Errorf("GREETING = %q (set: %v), want %q", v, ok, "hello=world")
	}
	if v, ok := env["EMPTY"]; !ok || v != "" {
		t.Errorf("EMPTY = %q (set: %v), want empty", v, ok)
	}
	if _, ok := env["ASYLO_CONFORMANCE_HOST_ONLY"]; ok {
		t.Error("the host's environment reached the enclave")
	}
}

// early checks what the init function of a package that Go initialises before the enclave
// runtime could do (backend/earlyinit).
func early(t *testing.T, tg Target, e *host.Enclave) {
	var r *earlyinit.Result
	if err := json.Unmarshal([]byte(call(t, e, "early", "{}")), &r); err != nil {
		t.Fatal(err)
	}
	if r == nil {
		t.Fatal("backend/earlyinit's init function did not run in the enclave")
	}
	if !tg.ConfinedFromStart {
		t.Logf("before the runtime's initialisation (not confined from the start): seccomp=%d no_new_privs=%d dumpable=%d %v", r.Seccomp, r.NoNewPrivs, r.Dumpable, r.Attempts)
		return
	}
	if r.Seccomp != 2 || r.NoNewPrivs != 1 || r.Dumpable != 0 {
		t.Errorf("before the runtime's initialisation: seccomp mode %d, no_new_privs %d, dumpable %d; want 2, 1 and 0", r.Seccomp, r.NoNewPrivs, r.Dumpable)
	}
	if len(r.Attempts) < 4 {
		t.Errorf("only %d actions tried before the runtime's initialisation", len(r.Attempts))
	}
	for action, result := range r.Attempts {
		if result == "" {
			t.Errorf("allowed before the runtime's initialisation: %s", action)
		}
	}
}

func sandbox(t *testing.T, tg Target) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	e := load(t, tg, host.LoadConfig{})
	out := call(t, e, "probe", ln.Addr().String())
	var r testenclave.ProbeResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	for action, result := range r.Attempts {
		if result == "" {
			t.Errorf("sandbox allowed: %s", action)
		} else {
			t.Logf("%-28s refused: %s", action, result)
		}
	}
	if len(r.Attempts) < 15 {
		t.Errorf("only %d actions probed", len(r.Attempts))
	}
	if r.Dumpable != 0 {
		t.Errorf("enclave is dumpable")
	}
	if r.NoNewPrivs != 1 {
		t.Errorf("no_new_privs not set")
	}
	if r.CoreLimit != 0 {
		t.Errorf("core dumps allowed (RLIMIT_CORE=%d)", r.CoreLimit)
	}
	if !r.RandomWorks || !r.TimeWorks {
		t.Errorf("entropy or clock unavailable inside the sandbox: %+v", r)
	}
	t.Logf("inside: uid=%d gid=%d pid=%d ppid=%d hostname=%q", r.UID, r.GID, r.PID, r.PPID, r.Hostname)
	early(t, tg, e)
	// The enclave still works after all that.
	if got := call(t, e, "echo", "ok"); got != "ok" {
		t.Errorf("after probe: %q", got)
	}
}

// largeBuffers checks the reused-buffer paths for large messages: handlers registered with
// enclave.HandleBorrowed receive every input intact although the runtime reads them into the
// same memory, also concurrently and when they return the input itself; host.CallInto returns
// intact results through the Enclave's reused buffer, also into the same dst and concurrently.
func largeBuffers(t *testing.T, tg Target) {
	e := load(t, tg, host.LoadConfig{})
	input := func(i, n int) []byte {
		b := make([]byte, n)
		for k := range b {
			b[k] = byte(k*31 + i*7 + k>>9)
		}
		return b
	}
	for i, n := range []int{1 << 20, 200 << 10, 1 << 20, 64 << 10, 10, 300 << 10} {
		in := input(i, n)
		want := sha256.Sum256(in)
		if got, err := e.Call(ctx(t), "hash-borrowed", in); err != nil || !bytes.Equal(got, want[:]) {
			t.Fatalf("hash-borrowed of %d bytes: %x, %v", n, got, err)
		}
		if got, err := e.Call(ctx(t), "echo-borrowed", in); err != nil || !bytes.Equal(got, in) {
			t.Fatalf("echo-borrowed of %d bytes: %d bytes back, %v", n, len(got), err)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				in := input(g*10+i, 128<<10+g*1000)
				if got, err := e.Call(ctx(t), "echo-borrowed", in); err != nil || !bytes.Equal(got, in) {
					t.Errorf("concurrent echo-borrowed: %d bytes back, %v", len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()

	// CallInto: results through the reused buffer, into one dst again and again.
	var dst []byte
	for i, n := range []int{1 << 20, 100 << 10, 1 << 20, 10, 70 << 10} {
		in := input(i, n)
		out, err := e.CallInto(ctx(t), "echo", in, dst)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("CallInto of %d bytes: %d bytes back, %v", n, len(out), err)
		}
		dst = out
	}
	prev := bytes.Clone(dst)
	if _, err := e.CallInto(ctx(t), "no-such-method", input(9, 100<<10), dst); !errors.Is(err, host.ErrUnknownMethod) {
		t.Errorf("CallInto of an unknown method: %v", err)
	}
	if !bytes.Equal(dst, prev) {
		t.Error("a failed CallInto wrote into dst")
	}
	for g := range 6 {
		wg.Go(func() {
			var mine []byte
			for i := range 4 {
				in := input(100+g*10+i, 96<<10+g*512)
				out, err := e.CallInto(ctx(t), "echo", in, mine)
				if err != nil || !bytes.Equal(out, in) {
					t.Errorf("concurrent CallInto: %d bytes back, %v", len(out), err)
					return
				}
				mine = out
			}
		})
	}
	wg.Wait()
}
