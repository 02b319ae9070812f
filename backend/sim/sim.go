// Package sim is the software back-end: each enclave is a child process, executed from a sealed
// in-memory copy of its image that was measured after sealing, and sandboxed (namespaces,
// seccomp, landlock, no core dumps, not dumpable) so that it can do no more than an enclave on the
// strictest hardware back-end.
//
// sim does NOT protect an enclave from root or from the kernel, and its attestation evidence is
// signed by a software key. It is for development, CI and tests. See docs/threat-model.md.
package sim

import (
	"errors"
	"runtime"
	"sync"

	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/storage"
)

// Name is the back-end's name.
const Name = "sim"

// maxImage bounds the size of an enclave image.
const maxImage = 1 << 30

// Option configures the back-end.
type Option func(*Backend)

// Switchless carries the protocol over shared memory with bounded spinning instead of the
// socket: a small call returns in a few microseconds instead of tens, at the price of CPU time
// spent polling while calls are in flight (docs/shm.md, docs/benchmarks.md). With many more
// concurrent callers than cores the throughput is higher than the socket's but the tail is
// longer (99th percentile ~3 ms against ~1.2 ms with 32 callers on 2 cores; docs/shm.md).
func Switchless() Option { return func(b *Backend) { b.switchless = true } }

// InsecureNoSandbox starts the enclave without seccomp, landlock and namespaces. It exists for
// debugging the sandbox itself; an enclave started this way can do anything its user can.
func InsecureNoSandbox() Option { return func(b *Backend) { b.noSandbox = true } }

// Direct starts every enclave directly from the host process, without the prestarted process
// that a Backend otherwise keeps (see New). A directly started enclave sandboxes itself: the
// enclave runtime applies seccomp and Landlock from its package's init function, so that the
// init functions of every package Go initialises before it (any whose import path sorts first
// and that does not import the runtime: cloud.google.com/..., example.com/..., often the
// application's own) run unconfined, with the enclave's uid and namespaces only. Each load logs
// that as reduced isolation. For debugging the launch itself, and for hosts that cannot have a
// prestarted process.
func Direct() Option { return func(b *Backend) { b.prestart = false } }

// WithPlatform names the software platform that signs the enclaves' attestation evidence. By
// default the platform in platform.DefaultDir is used, created on the first attestation.
func WithPlatform(p *platform.Platform) Option { return func(b *Backend) { b.platform = p } }

// Backend is the sim back-end. The zero value is not usable; call New.
type Backend struct {
	switchless bool
	noSandbox  bool
	prestart   bool
	prestarted *prestartPool

	pmu      sync.Mutex
	platform *platform.Platform

	imu    sync.Mutex
	images map[imageKey]*Image
	closed bool // under imu

	cmu      sync.Mutex
	counterC *storage.FileCounter
}

// counterStore returns the back-end's one FileCounter over dir (one per process, as FileCounter
// requires).
func (b *Backend) counterStore(dir string) *storage.FileCounter {
	b.cmu.Lock()
	defer b.cmu.Unlock()
	if b.counterC == nil {
		b.counterC = storage.NewFileCounter(dir)
	}
	return b.counterC
}

// Platform returns the back-end's software platform, opening (and on first use creating) the
// default one if none was given.
func (b *Backend) Platform() (*platform.Platform, error) {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	if b.platform != nil {
		return b.platform, nil
	}
	dir, err := platform.DefaultDir()
	if err != nil {
		return nil, err
	}
	p, err := platform.Open(dir)
	if err != nil {
		return nil, err
	}
	b.platform = p
	return p, nil
}

// New returns the sim back-end. Unless told otherwise (Direct, InsecureNoSandbox), it starts
// preparing the process that will start its enclaves, in the background.
//
// That process puts every enclave under Landlock and seccomp before the enclave's first
// instruction (the first stage of the policy; the enclave runtime's init function adds the
// second, and non-dumpability), which a host cannot do for a child it starts itself with os/exec. Where the sandbox has a user namespace it is a spawner that
// starts every enclave of the Backend, each in pid, mount, IPC, UTS and cgroup namespaces of its
// own (sharing the spawner's user and network namespaces); elsewhere it is used up by one load,
// and the next is prepared after it. A load waits for it while it is being prepared. An enclave
// is started directly, with a warning in the load's log, when there is none (it could not be
// prepared: the reason is logged once and it is tried again 30 s later), when its image is not
// static (asylo build makes static images), and with Direct. See docs/sandbox.md, "Prestarted
// processes".
//
// The process is this host program executed again, idle between loads: the program runs the
// init functions of every package that Go initialises before this one (its dependencies, and any
// other whose place in the initialisation order, which follows import paths, comes first) before
// this package's init diverts it. A program whose init functions act outside the process
// (create files, listen, connect) should move that work into main, or use Direct. Close ends the
// process, as does the Backend becoming unreachable; enclaves it started keep running.
func New(opts ...Option) *Backend {
	b := &Backend{prestart: true, prestarted: new(prestartPool)}
	for _, o := range opts {
		o(b)
	}
	if b.prestart && !b.noSandbox {
		b.prestarted.refill()
		// The pool, not b: a cleanup must not keep what it cleans up after reachable.
		runtime.AddCleanup(b, (*prestartPool).close, b.prestarted)
	}
	return b
}

// Close releases what the Backend keeps for future loads: its prestarted process and its
// cache of sealed, measured images. Enclaves it started keep running; later loads fail with
// ErrClosed. A program should use one Backend for all its loads and close it when done: each
// Backend holds its own cache and its own prestarted process.
func (b *Backend) Close() error {
	b.imu.Lock()
	b.closed = true
	images := b.images
	b.images = nil
	b.imu.Unlock()
	for _, im := range images {
		im.Close()
	}
	b.prestarted.close()
	return nil
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return Name }

// Errors of this back-end.
var (
	// ErrTooLarge: the image exceeds 1 GiB.
	ErrTooLarge = errors.New("sim: enclave image too large")

	// ErrClosed: the Backend was closed.
	ErrClosed = errors.New("sim: back-end closed")
)
