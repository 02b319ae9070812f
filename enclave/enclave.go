// Package enclave is the trusted side of asylo: the runtime an enclave program runs on.
//
// An enclave program is a Go main package that calls Run with its Application:
//
//	func main() { enclave.Run(&app{}, enclave.Handle("greet", greet)) }
//
// The host loads it with package host (or the asylo command); the same binary runs on every
// back-end. Everything that arrives from the host is validated here before application code sees
// it, and application code reaches the outside world only through this package (Logger,
// UntrustedTime, ...), never through files or sockets of its own: on the sim back-end the process
// is sandboxed so that it cannot open files, create sockets or execute programs.
package enclave

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/asylo-go/asylo/internal/blocksock"
	"github.com/asylo-go/asylo/internal/shm"
	"github.com/asylo-go/asylo/internal/wire"
)

// Application is the code that runs inside an enclave, as Asylo's TrustedApplication.
//
// Initialize runs once, with the configuration the host passed to Load. Run serves
// host.Enclave.EnterAndRun and may run concurrently with itself and with named handlers.
// Finalize runs once when the host destroys the enclave, after in-flight calls have returned.
// Inputs come from the untrusted host: validate them.
type Application interface {
	Initialize(ctx context.Context, config []byte) error
	Run(ctx context.Context, input []byte) ([]byte, error)
	Finalize(ctx context.Context, final []byte) error
}

// HandlerFunc serves a named call (host.Enclave.Call).
type HandlerFunc func(ctx context.Context, input []byte) ([]byte, error)

// Option configures the runtime.
type Option func(*options) error

type options struct {
	handlers map[string]HandlerFunc
	borrowed map[string]bool // handlers registered with HandleBorrowed
	maxCalls int
	maxBody  int
	// attention is the attention channel (docs/wire.md, "Attention"), when the back-end gives
	// one; without it a watchdog looks for calls that hold up reading.
	attention io.ReadCloser
}

// Handle registers h for calls named name. Names are 1-128 characters of [A-Za-z0-9_.:/-];
// names starting with "asylo." are reserved for the runtime's own handlers.
func Handle(name string, h HandlerFunc) Option {
	return func(o *options) error {
		if !wire.ValidMethodName(name) {
			return fmt.Errorf("enclave: invalid handler name %q: use 1-%d characters of [A-Za-z0-9_.:/-]", name, wire.MaxMethodName)
		}
		if strings.HasPrefix(name, reservedPrefix) {
			return fmt.Errorf("enclave: handler name %q: the prefix %q is reserved for the runtime", name, reservedPrefix)
		}
		if h == nil {
			return fmt.Errorf("enclave: nil handler for %q", name)
		}
		if _, dup := o.handlers[name]; dup {
			return fmt.Errorf("enclave: handler %q registered twice", name)
		}
		o.handlers[name] = h
		return nil
	}
}

// HandleBorrowed registers h like Handle, for a handler that does not keep its input: input is
// valid only until h returns, after which the runtime reads later calls' inputs into the same
// memory. h must not retain input or any slice of it, nor hand it to a goroutine that outlives
// the call; it may return it, or a slice of it, as its output. In exchange, large inputs (64 KiB
// and more) cost no allocation: the runtime receives them into a reused buffer, which saves
// allocating, zeroing and garbage-collecting a buffer per call (docs/benchmarks.md, target 3).
func HandleBorrowed(name string, h HandlerFunc) Option {
	register := Handle(name, h)
	return func(o *options) error {
		if err := register(o); err != nil {
			return err
		}
		if o.borrowed == nil {
			o.borrowed = map[string]bool{}
		}
		o.borrowed[name] = true
		return nil
	}
}

// HandleJSON registers a typed handler: the input is decoded from JSON into In (unknown fields
// refused) and the result encoded as JSON. A malformed input fails the call with
// host.ErrInvalidArgument without reaching f.
func HandleJSON[In, Out any](name string, f func(ctx context.Context, in In) (Out, error)) Option {
	return Handle(name, func(ctx context.Context, input []byte) ([]byte, error) {
		var in In
		dec := json.NewDecoder(bytes.NewReader(input))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return nil, fmt.Errorf("%w: decoding %s input: %v", ErrInvalidArgument, name, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: decoding %s input: trailing data", ErrInvalidArgument, name)
		}
		out, err := f(ctx, in)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	})
}

// MaxConcurrentCalls bounds the calls served at once; further calls fail with host.ErrBusy.
// The default is 256.
func MaxConcurrentCalls(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 65536 {
			return fmt.Errorf("enclave: MaxConcurrentCalls(%d) outside [1, 65536]", n)
		}
		o.maxCalls = n
		return nil
	}
}

// MaxMessageSize bounds the body of any message the host may send to this enclave (default
// 64 MiB, at most 1 GiB). The host learns it at load and refuses larger calls itself.
func MaxMessageSize(n int) Option {
	return func(o *options) error {
		if n < 4096 || n > wire.HardMaxBody {
			return fmt.Errorf("enclave: MaxMessageSize(%d) outside [4096, %d]", n, wire.HardMaxBody)
		}
		o.maxBody = n
		return nil
	}
}

// Errors an application may return (wrapped) to give the host a specific status.
var (
	// ErrInvalidArgument marks a malformed input; the host sees host.ErrInvalidArgument.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnsupported is returned by host calls the host does not implement.
	ErrUnsupported = errors.New("enclave: host call not supported by this host")
	// ErrHostClosed is returned by host calls when the connection to the host is gone.
	ErrHostClosed = errors.New("enclave: connection to the host closed")
)

// Run serves app until the host destroys the enclave, then exits the process. It must be called
// from main of a program started by a back-end; started any other way it prints a hint and exits
// with status 2.
func Run(app Application, opts ...Option) {
	rw, err := hostChannel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "asylo enclave:", err)
		os.Exit(2)
	}
	attn, err := attentionChannel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "asylo enclave:", err)
		os.Exit(2)
	}
	if attn != nil {
		opts = append(opts[:len(opts):len(opts)], func(o *options) error { o.attention = attn; return nil })
	}
	if err := Serve(context.Background(), rw, app, opts...); err != nil {
		fmt.Fprintln(os.Stderr, "asylo enclave:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// launchFile is the descriptor the launch contract variable name names, if it is set.
func launchFile(name, what string) (*os.File, bool, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil, false, nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 || fd > 1024 {
		return nil, true, fmt.Errorf("bad %s=%q", name, v)
	}
	return os.NewFile(uintptr(fd), what), true, nil
}

// launchSocket is the unix socket the launch contract variable name names, if it is set.
func launchSocket(name, what string) (*net.UnixConn, bool, error) {
	f, ok, err := launchFile(name, what)
	if f == nil {
		return nil, ok, err
	}
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, true, fmt.Errorf("opening the %s: %w", what, err)
	}
	uc, isUnix := c.(*net.UnixConn)
	if !isUnix {
		c.Close()
		return nil, true, fmt.Errorf("the %s is not a unix socket", what)
	}
	return uc, true, nil
}

// attentionChannel opens the attention socket the back-end handed to this process, if any.
func attentionChannel() (io.ReadCloser, error) {
	c, ok, err := launchSocket(wire.EnvAttention, "attention channel")
	if !ok || err != nil {
		return nil, err
	}
	return c, nil
}

// hostChannel opens the channel the back-end handed to this process.
func hostChannel() (io.ReadWriteCloser, error) {
	v, ok := os.LookupEnv(wire.EnvChannel)
	if !ok {
		return nil, errors.New("this program is an enclave: start it with `asylo run` or host.Load, not directly")
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 || fd > 1024 {
		return nil, fmt.Errorf("bad %s=%q", wire.EnvChannel, v)
	}
	f, ok, err := launchFile(wire.EnvSharedMemory, "shared-memory channel")
	if err != nil {
		return nil, err
	}
	if ok {
		c, err := shm.Open(f, shm.Options{})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("opening the shared-memory channel: %w", err)
		}
		return c, nil
	}
	// Blocking reads, not the network poller: design note 23.
	c, err := blocksock.New(fd)
	if err != nil {
		return nil, fmt.Errorf("opening the host channel: %w", err)
	}
	return c, nil
}
