// Package backend defines how the host starts an enclave on a kind of TEE. A Backend starts an
// enclave and hands the host one channel that carries the protocol of docs/wire.md; everything
// above that channel (package host) is the same for every back-end.
//
// Back-ends: sim (a sandboxed, measured child process; the default), inprocess (goroutines in the
// host process, no isolation, for tests and debugging). Hardware back-ends plug in here.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"

	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/identity/signing"
)

// Backend starts enclaves of one kind.
type Backend interface {
	// Name is the back-end's short name ("sim", "inprocess"), reported in identities.
	Name() string
	// Start launches the enclave described by spec. The returned Instance's channel is ready for
	// the protocol; ctx bounds the start only, not the enclave's life.
	Start(ctx context.Context, spec Spec) (Instance, error)
}

// Spec describes an enclave to start.
type Spec struct {
	// Path is the enclave image (a static Go binary built for the enclave). Ignored by
	// back-ends that run linked-in code (inprocess).
	Path string
	// Args are passed to the enclave program after its name; Env is its whole environment.
	Args []string
	Env  []string
	// Stdout and Stderr receive the enclave's standard output and error. Nil discards.
	Stdout, Stderr io.Writer
	// Debug allows an unsigned enclave to load (with a debug identity).
	Debug bool
	// Logger receives the back-end's own diagnostics (for example, sandbox features that are
	// unavailable on this machine).
	Logger *slog.Logger
}

// Instance is a started enclave.
type Instance interface {
	// Channel carries the wire protocol. Closing it does not stop the enclave; Kill does.
	Channel() io.ReadWriteCloser
	// Identity is what the back-end measured and verified at start.
	Identity() identity.Identity
	// Wait blocks until the enclave has exited and returns how: nil for a clean exit, an *ExitError
	// otherwise. It may be called any number of times, from any goroutine.
	Wait() error
	// Done is closed when the enclave has exited.
	Done() <-chan struct{}
	// Kill stops the enclave at once.
	Kill() error
}

// Attester is implemented by instances whose platform can produce attestation evidence for the
// enclave. The evidence binds userData (at most 64 bytes) and the identity the back-end measured,
// and is returned as an encoded attest.Evidence envelope.
type Attester interface {
	Attest(ctx context.Context, userData []byte) ([]byte, error)
}

// SealingRoot is implemented by instances whose platform holds a sealing root for the enclave
// (the sim platform secret; a CPU-derived key on hardware). The request is the 50-byte encoding
// of a seal.KeyRequest; the platform refuses any request not for the identity the back-end
// measured, or for a higher SVN (seal.CheckKeyRequest).
type SealingRoot interface {
	SealKeyID(ctx context.Context) ([]byte, error)
	DeriveSealKey(ctx context.Context, request []byte) ([]byte, error)
}

// MonotonicCounter is implemented by instances whose platform offers monotonic counters to the
// enclave (storage rollback protection). Counter ids are per enclave identity: one enclave cannot
// read or advance another's.
type MonotonicCounter interface {
	CounterGet(ctx context.Context, id string) (uint64, error)
	CounterIncrement(ctx context.Context, id string) (uint64, error)
}

// ConnPasser is implemented by instances that can hand an accepted connection into the enclave
// (enclave listeners). PassConn takes ownership of c and returns the token the enclave will see
// with it.
type ConnPasser interface {
	PassConn(c net.Conn) (token uint64, err error)
}

// Notifier is implemented by instances with an attention channel beside the protocol channel
// (docs/wire.md, "Attention"). The host calls Notify right after it writes a frame while other
// calls are in flight, with the number of frames it has written whole so far: the enclave's
// runtime may be running a call on the goroutine that reads, and if frames are unread it hands
// reading to another goroutine. Without an attention channel the runtime looks for long calls
// with a ticking watchdog instead. Notify never blocks.
type Notifier interface {
	Notify(sent uint64)
}

// ExitError reports an enclave that exited with a non-zero status or was killed by a signal.
type ExitError struct {
	// Code is the exit status, or -1 if the process was killed by a signal.
	Code int
	// Signal names the signal that killed it ("killed", "segmentation fault"), if any.
	Signal string
	// Err is the underlying cause where there is no process (inprocess back-end).
	Err error
}

func (e *ExitError) Error() string {
	switch {
	case e.Signal != "":
		return "enclave killed by signal: " + e.Signal
	case e.Err != nil:
		return "enclave stopped: " + e.Err.Error()
	}
	return fmt.Sprintf("enclave exited with status %d", e.Code)
}

func (e *ExitError) Unwrap() error { return e.Err }

// Errors shared by back-ends that load images.
var (
	// ErrUnsigned: the image has no signature manifest and debug mode was not requested.
	ErrUnsigned = errors.New("enclave is not signed")
	// ErrNotEnclave: the file is not an executable enclave image.
	ErrNotEnclave = errors.New("not an enclave image")
)

// ResolveIdentity decides the identity of an image measured as m, reading its signature manifest
// from signing.ManifestPath(path). A signed image gets the manifest's identity if the signature
// and measurement check out; an unsigned one loads only when debug is true, as a debug identity.
func ResolveIdentity(backendName, path string, m identity.Measurement, debug bool) (identity.Identity, error) {
	id := identity.Identity{Backend: backendName, Measurement: m}
	mf, err := signing.LoadManifestFile(signing.ManifestPath(path))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !debug {
			return id, fmt.Errorf("%w: %s has no signature manifest %s; sign it with `asylo sign` or load it in debug mode",
				ErrUnsigned, path, signing.ManifestPath(path))
		}
		id.Debug = true
		return id, nil
	case err != nil:
		return id, err
	}
	vid, err := mf.Verify(m)
	if err != nil {
		return id, fmt.Errorf("%s: %w", signing.ManifestPath(path), err)
	}
	vid.Backend = backendName
	return vid, nil
}
