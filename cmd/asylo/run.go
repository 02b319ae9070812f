package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/backend/inprocess"
	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/host"
)

// backends are the back-ends `asylo run` knows, in the order error messages list them.
var backends = []string{sim.Name, inprocess.Name}

// destroyTimeout bounds the application's Finalize after a run.
const destroyTimeout = 30 * time.Second

var runCmd = &command{
	name:    "run",
	args:    "[flags] ENCLAVE [ARGS...]",
	summary: "load an enclave, run it once with an input, and destroy it",
	doc: `
Run is an application wrapper: it loads the enclave binary ENCLAVE (ARGS become the enclave
program's arguments; its environment is empty), initializes it with the --config file, calls
its Run once with the --input, writes the output to standard output, and destroys it
(Finalize). The enclave's own standard output and error are relayed to this command's, and
its log records are written to standard error at --log-level and above.

An enclave without a signature manifest (ENCLAVE.sig) is refused unless --debug is given; a
manifest that does not verify is always refused.

Exit status: 0 on success; 1 if loading, Initialize, Run or Finalize failed; the enclave's own
exit status if its process exited with one; 130 or 143 on SIGINT or SIGTERM (the enclave is
destroyed first); 2 for a wrong command line.`,
	setup: func(fs *flag.FlagSet) runFunc {
		var o runOptions
		fs.StringVar(&o.backend, "backend", sim.Name, "the back-end `NAME`: sim (inprocess runs only linked-in code, from Go tests)")
		fs.BoolVar(&o.switchless, "switchless", false, "sim: carry calls over shared memory with spinning instead of the socket")
		fs.StringVar(&o.allowListen, "allow-listen", "", "let the enclave listen (enclave.Listen) on TCP addresses starting with this prefix, e.g. 127.0.0.1: or :")
		fs.BoolVar(&o.debug, "debug", false, "allow an unsigned enclave to load, with a debug identity")
		fs.StringVar(&o.config, "config", "", "pass the contents of `FILE` to the enclave's Initialize (default: empty)")
		fs.StringVar(&o.input, "input", "", "pass the contents of `FILE` (\"-\": standard input) to the enclave's Run (default: empty)")
		fs.StringVar(&o.name, "name", "", "the enclave's `NAME` in logs (default: the file name of ENCLAVE)")
		fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "the least `LEVEL` of log records to print: debug, info, warn or error")
		fs.DurationVar(&o.timeout, "timeout", 0, "give up loading and running after `D` (e.g. 30s; default: no limit)")
		return func(ctx context.Context, c *cli, args []string) error {
			if len(args) == 0 {
				return usagef("run", "missing ENCLAVE")
			}
			o.path, o.args = args[0], args[1:]
			return o.run(ctx, c)
		}
	},
}

type runOptions struct {
	backend     string
	switchless  bool
	allowListen string
	debug       bool
	config      string
	input       string
	name        string
	logLevel    slog.Level
	timeout     time.Duration
	path        string
	args        []string
}

// newBackend returns the back-end o.backend names.
func (o *runOptions) newBackend() (backend.Backend, error) {
	switch o.backend {
	case sim.Name:
		var opts []sim.Option
		if o.switchless {
			opts = append(opts, sim.Switchless())
		}
		return sim.New(opts...), nil
	case inprocess.Name:
		return nil, usagef("run", "the inprocess back-end runs enclave code linked into a Go program "+
			"(use backend/inprocess from Go tests); it cannot run a binary: use --backend sim")
	}
	return nil, usagef("run", "unknown back-end %q (known: %s)", o.backend, strings.Join(backends, ", "))
}

func (o *runOptions) run(ctx context.Context, c *cli) error {
	be, err := o.newBackend()
	if err != nil {
		return err
	}
	var config []byte
	if o.config != "" {
		if config, err = os.ReadFile(o.config); err != nil {
			return fmt.Errorf("run: reading --config: %w", err)
		}
	}
	var inputFile io.Reader = strings.NewReader("")
	switch o.input {
	case "":
	case "-":
		inputFile = c.stdin
	default:
		f, err := os.Open(o.input)
		if err != nil {
			return fmt.Errorf("run: reading --input: %w", err)
		}
		defer f.Close()
		inputFile = f
	}

	// SIGINT and SIGTERM cancel ctx; the enclave is then destroyed and the command exits with
	// 128 + the signal number.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sig signalCatcher
	stop := sig.catch(cancel, os.Interrupt, syscall.SIGTERM)
	defer stop()

	runCtx := ctx
	if o.timeout > 0 {
		var cancelRun context.CancelFunc
		runCtx, cancelRun = context.WithTimeout(ctx, o.timeout)
		defer cancelRun()
	}

	logger := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: o.logLevel}))
	e, err := host.Load(runCtx, host.LoadConfig{
		Path:     o.path,
		Backend:  be,
		Name:     o.name,
		Args:     o.args,
		Config:   config,
		LogLevel: o.logLevel,
		Logger:   logger,
		Stdout:   c.stdout,
		Stderr:   c.stderr,
		Debug:    o.debug,
		AllowListen: func(network, address string) error {
			if o.allowListen == "" || !strings.HasPrefix(address, o.allowListen) {
				return fmt.Errorf("%s %s not allowed (asylo run --allow-listen PREFIX)", network, address)
			}
			return nil
		},
	})
	if err != nil {
		return sig.wrap(o.loadError(err))
	}

	out, err := o.enterAndRun(runCtx, e, inputFile)
	if err == nil {
		_, err = c.stdout.Write(out)
	}

	// Destroy runs Finalize, bounded; after a signal ctx is cancelled and Destroy kills at once.
	dctx, dcancel := context.WithTimeout(ctx, destroyTimeout)
	defer dcancel()
	derr := e.Destroy(dctx, nil)
	switch {
	case sig.caught() != nil:
		return sig.wrap(nil)
	case err != nil:
		return exitFor(fmt.Errorf("run: %w", err))
	case derr != nil:
		return exitFor(fmt.Errorf("run: destroying the enclave: %w", derr))
	}
	return nil
}

// enterAndRun reads the input, bounded by ctx, and calls the enclave's Run with it.
func (o *runOptions) enterAndRun(ctx context.Context, e *host.Enclave, r io.Reader) ([]byte, error) {
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		b, err := io.ReadAll(r)
		ch <- res{b, err}
	}()
	var in res
	select {
	case in = <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if in.err != nil {
		return nil, fmt.Errorf("reading --input: %w", in.err)
	}
	return e.EnterAndRun(ctx, in.b)
}

// loadError explains a failed load.
func (o *runOptions) loadError(err error) error {
	switch {
	case errors.Is(err, backend.ErrUnsigned):
		return fmt.Errorf("run: %s is not signed: sign it with `asylo sign`, or pass --debug to run it as a debug enclave", o.path)
	case errors.Is(err, host.ErrEnclaveLost), errors.Is(err, host.ErrInitialize):
		return exitFor(fmt.Errorf("run: %w", err))
	}
	return fmt.Errorf("run: %w", pathError(err))
}

// exitFor gives err the exit status of an enclave process that exited with a status of its
// own; other errors exit with 1.
func exitFor(err error) error {
	var le *host.LostError
	if errors.As(err, &le) && le.Exit != nil && le.Exit.Code > 0 {
		return &exitError{code: le.Exit.Code, err: err}
	}
	return err
}

// signalCatcher records the first of a set of signals.
type signalCatcher struct {
	mu  sync.Mutex
	sig os.Signal
}

// catch starts catching sigs, calling onSignal at the first; stop ends it.
func (s *signalCatcher) catch(onSignal func(), sigs ...os.Signal) (stop func()) {
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case got := <-ch:
			s.mu.Lock()
			s.sig = got
			s.mu.Unlock()
			onSignal()
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

func (s *signalCatcher) caught() os.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sig
}

// wrap turns err into the exit for a caught signal (128 + its number), or returns err if no
// signal was caught.
func (s *signalCatcher) wrap(err error) error {
	got := s.caught()
	if got == nil {
		return err
	}
	code := exitFailure
	name := got.String()
	if n, ok := got.(syscall.Signal); ok {
		code = 128 + int(n)
		name = unix.SignalName(n)
	}
	return &exitError{code: code, err: fmt.Errorf("run: interrupted by %s; the enclave was destroyed", name)}
}
