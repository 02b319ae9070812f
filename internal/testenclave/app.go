// Package testenclave is the enclave application the conformance suite runs on every back-end.
// Its handlers exercise each behaviour the suite checks; cmd/testenclave wraps it as a binary.
package testenclave

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asylo-go/asylo/backend/earlyinit"
	"github.com/asylo-go/asylo/enclave"
)

// blob is the buffer the "blob" handler serves from, allocated on first use so that loading
// the test enclave (BenchmarkLoad) does not pay for it, and filled: memory never written reads
// as the kernel's one shared zero page, which would make sending it look faster than sending an
// application's data (BenchmarkPayload1MiB "out" measured that once).
var blob = sync.OnceValue(func() []byte {
	b := make([]byte, 4<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>12)
	}
	return b
})

// ArgsEnv is what the "args-env" handler returns: the program's arguments after its name, and
// its whole environment.
type ArgsEnv struct {
	Args []string
	Env  []string
}

// App is the test application.
type App struct {
	mu     sync.Mutex
	config string
	count  atomic.Int64
	// interrupted counts "sleep" calls whose context ended.
	interrupted atomic.Int64
	running     atomic.Int64
	peak        atomic.Int64
}

// New returns the application and its handlers.
func New() (enclave.Application, []enclave.Option) {
	a := &App{}
	return a, a.Options()
}

func (a *App) Initialize(ctx context.Context, config []byte) error {
	switch string(config) {
	case "fail-init":
		return errors.New("initialization refused by test")
	case "panic-init":
		panic("panic in Initialize")
	case "exit-init":
		os.Exit(3)
	}
	a.mu.Lock()
	a.config = string(config)
	a.mu.Unlock()
	enclave.Logger(ctx).Info("initialized", "config_len", len(config))
	return nil
}

func (a *App) Run(ctx context.Context, input []byte) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]byte("run:"+a.config+":"), input...), nil
}

func (a *App) Finalize(ctx context.Context, final []byte) error {
	if string(final) == "fail-fini" {
		return errors.New("finalize refused by test")
	}
	fmt.Fprintf(os.Stdout, "finalized with %q after %d counted calls\n", final, a.count.Load())
	return nil
}

// Options returns the handlers.
func (a *App) Options() []enclave.Option {
	return []enclave.Option{
		enclave.Handle("echo", func(ctx context.Context, in []byte) ([]byte, error) { return in, nil }),
		enclave.Handle("error", func(ctx context.Context, in []byte) ([]byte, error) { return nil, errors.New(string(in)) }),
		enclave.Handle("panic", func(ctx context.Context, in []byte) ([]byte, error) { panic(string(in)) }),
		enclave.Handle("crash", func(ctx context.Context, in []byte) ([]byte, error) {
			go func() { panic("crash outside any call") }()
			select {}
		}),
		enclave.Handle("exit", func(ctx context.Context, in []byte) ([]byte, error) {
			code, _ := strconv.Atoi(string(in))
			os.Exit(code)
			return nil, nil
		}),
		enclave.Handle("sleep", func(ctx context.Context, in []byte) ([]byte, error) {
			d, err := time.ParseDuration(string(in))
			if err != nil {
				return nil, fmt.Errorf("%w: %v", enclave.ErrInvalidArgument, err)
			}
			select {
			case <-time.After(d):
				return []byte("slept"), nil
			case <-ctx.Done():
				a.interrupted.Add(1)
				return nil, ctx.Err()
			}
		}),
		enclave.Handle("interrupted", func(ctx context.Context, in []byte) ([]byte, error) {
			// How many "sleep" calls saw their context end (cancellation or deadline).
			return []byte(strconv.FormatInt(a.interrupted.Load(), 10)), nil
		}),
		enclave.HandleJSON("args-env", func(ctx context.Context, _ struct{}) (ArgsEnv, error) {
			return ArgsEnv{Args: os.Args[1:], Env: os.Environ()}, nil
		}),
		enclave.Handle("launch-env", func(ctx context.Context, in []byte) ([]byte, error) {
			// The launch-contract variable named by in (the runtime has opened what it names).
			return []byte(os.Getenv(string(in))), nil
		}),
		enclave.Handle("spin", func(ctx context.Context, in []byte) ([]byte, error) {
			// Computes for the given duration, making no system call (time.Since reads the
			// vDSO clock): only preemption lets anything else run meanwhile on its P.
			d, err := time.ParseDuration(string(in))
			if err != nil {
				return nil, fmt.Errorf("%w: %v", enclave.ErrInvalidArgument, err)
			}
			var sum [32]byte
			for start := time.Now(); time.Since(start) < d; {
				sum = sha256.Sum256(sum[:])
			}
			return sum[:], nil
		}),
		enclave.Handle("deadline", func(ctx context.Context, in []byte) ([]byte, error) {
			d, ok := ctx.Deadline()
			if !ok {
				return []byte("none"), nil
			}
			return []byte(time.Until(d).Round(time.Second).String()), nil
		}),
		enclave.Handle("time", func(ctx context.Context, in []byte) ([]byte, error) {
			t, err := enclave.UntrustedTime(ctx)
			if err != nil {
				return nil, err
			}
			return binary.LittleEndian.AppendUint64(nil, uint64(t.UnixNano())), nil
		}),
		enclave.Handle("log", func(ctx context.Context, in []byte) ([]byte, error) {
			enclave.Logger(ctx).WithGroup("test").Warn(string(in), "n", 42)
			return nil, nil
		}),
		enclave.Handle("print", func(ctx context.Context, in []byte) ([]byte, error) {
			os.Stdout.Write(in)
			os.Stderr.Write([]byte("stderr:" + string(in)))
			return nil, nil
		}),
		enclave.Handle("self", func(ctx context.Context, in []byte) ([]byte, error) {
			id, ok := enclave.Self(ctx)
			if !ok {
				return nil, errors.New("no identity")
			}
			return json.Marshal(struct {
				Name string
				ID   any
			}{enclave.Name(ctx), id})
		}),
		enclave.Handle("concurrent", func(ctx context.Context, in []byte) ([]byte, error) {
			// Blocks until ctx ends or the given duration passes, recording the peak concurrency.
			n := a.running.Add(1)
			defer a.running.Add(-1)
			for {
				p := a.peak.Load()
				if n <= p || a.peak.CompareAndSwap(p, n) {
					break
				}
			}
			d, _ := time.ParseDuration(string(in))
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
			return []byte(strconv.FormatInt(a.peak.Load(), 10)), nil
		}),
		enclave.Handle("count", func(ctx context.Context, in []byte) ([]byte, error) {
			return []byte(strconv.FormatInt(a.count.Add(1), 10)), nil
		}),
		// Borrowed inputs (enclave.HandleBorrowed): "sink-borrowed" only looks at its input,
		// "hash-borrowed" returns its SHA-256, "echo-borrowed" returns the input itself.
		enclave.HandleBorrowed("sink-borrowed", func(ctx context.Context, in []byte) ([]byte, error) {
			return []byte(strconv.Itoa(len(in))), nil
		}),
		enclave.HandleBorrowed("hash-borrowed", func(ctx context.Context, in []byte) ([]byte, error) {
			sum := sha256.Sum256(in)
			return sum[:], nil
		}),
		enclave.HandleBorrowed("echo-borrowed", func(ctx context.Context, in []byte) ([]byte, error) {
			return in, nil
		}),
		enclave.Handle("blob", func(ctx context.Context, in []byte) ([]byte, error) {
			// Returns n bytes from a buffer the application keeps: what a handler serving
			// stored data does, with no allocation of its own.
			n, err := strconv.Atoi(string(in))
			if err != nil || n < 0 || n > len(blob()) {
				return nil, fmt.Errorf("%w: size", enclave.ErrInvalidArgument)
			}
			return blob()[:n], nil
		}),
		enclave.Handle("big", func(ctx context.Context, in []byte) ([]byte, error) {
			n, err := strconv.Atoi(string(in))
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: size", enclave.ErrInvalidArgument)
			}
			return make([]byte, n), nil
		}),
		enclave.HandleJSON("add", func(ctx context.Context, in struct{ A, B int }) (int, error) { return in.A + in.B, nil }),
		enclave.Handle("probe", Probe),
		enclave.HandleJSON("early", func(ctx context.Context, _ struct{}) (*earlyinit.Result, error) {
			return earlyinit.Found, nil
		}),
		enclave.Handle("attest", enclave.Attest),
		enclave.Handle("seal-measurement", func(ctx context.Context, in []byte) ([]byte, error) {
			return enclave.SealToMeasurement(ctx, in, []byte("test"))
		}),
		enclave.Handle("seal-signer", func(ctx context.Context, in []byte) ([]byte, error) {
			return enclave.SealToSigner(ctx, in, []byte("test"))
		}),
		enclave.Handle("serve-echo", func(ctx context.Context, in []byte) ([]byte, error) {
			// Listens (through the host) and answers each connection's first line, n times.
			n, err := strconv.Atoi(string(in))
			if err != nil || n < 1 {
				return nil, fmt.Errorf("%w: count", enclave.ErrInvalidArgument)
			}
			l, err := enclave.Listen(ctx, "tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			go func() {
				defer l.Close()
				for range n {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						line, err := bufio.NewReader(c).ReadString('\n')
						if err != nil {
							return
						}
						fmt.Fprintf(c, "enclave:%s", line)
					}()
				}
			}()
			return []byte(l.Addr().String()), nil
		}),
		enclave.Handle("file-write", func(ctx context.Context, in []byte) ([]byte, error) {
			// Input: name, newline, content. Replaces the file's content and commits.
			name, content, ok := strings.Cut(string(in), "\n")
			if !ok {
				return nil, fmt.Errorf("%w: want name\\ncontent", enclave.ErrInvalidArgument)
			}
			f, err := enclave.OpenFile(ctx, name, true)
			if err != nil {
				return nil, err
			}
			if _, err := f.WriteAt(ctx, []byte(content), 0); err != nil {
				return nil, err
			}
			if err := f.Truncate(ctx, int64(len(content))); err != nil {
				return nil, err
			}
			return nil, f.Close(ctx)
		}),
		enclave.Handle("file-read", func(ctx context.Context, in []byte) ([]byte, error) {
			f, err := enclave.OpenFile(ctx, string(in), false)
			if err != nil {
				return nil, err
			}
			defer f.Close(ctx)
			b := make([]byte, f.Size())
			if _, err := f.ReadAt(ctx, b, 0); err != nil && err != io.EOF {
				return nil, err
			}
			return b, nil
		}),
		enclave.Handle("unseal", func(ctx context.Context, in []byte) ([]byte, error) {
			return enclave.Unseal(ctx, in, []byte("test"))
		}),
		enclave.Handle("bench-storage", BenchStorage),
	}
}
