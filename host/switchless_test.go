package host_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/conformance"
	"github.com/asylo-go/asylo/internal/shm"
)

// shmBackend runs an enclave runtime on goroutines of this process, over a real internal/shm
// channel: the SDK's per-call work on both sides of a switchless call, without a second
// process. With -cpu 1 the two sides take turns on one CPU, so ns/op is their CPU cost.
type shmBackend struct{ opts []enclave.Option }

func (shmBackend) Name() string { return "shm-inprocess" }

func (b shmBackend) Start(ctx context.Context, spec backend.Spec) (backend.Instance, error) {
	hostEnd, f, err := shm.New(shm.Options{Size: 1 << 16})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	encEnd, err := shm.Open(f, shm.Options{})
	if err != nil {
		hostEnd.Close()
		return nil, err
	}
	return shmInstance{serveInProcess("shm-inprocess", hostEnd, encEnd, b.opts)}, nil
}

// servedInstance is an enclave served in this process over one end of a channel, for the test
// back-ends; Kill closes the enclave's end.
type servedInstance struct {
	name    string
	ch, enc io.ReadWriteCloser
	done    chan struct{}
	err     error
}

func serveInProcess(name string, hostEnd, encEnd io.ReadWriteCloser, opts []enclave.Option) *servedInstance {
	in := &servedInstance{name: name, ch: hostEnd, enc: encEnd, done: make(chan struct{})}
	go func() {
		in.err = enclave.Serve(context.Background(), encEnd, nopApp{}, opts...)
		close(in.done)
	}()
	return in
}

func (i *servedInstance) Channel() io.ReadWriteCloser { return i.ch }
func (i *servedInstance) Identity() identity.Identity {
	return identity.Identity{Backend: i.name, Debug: true}
}
func (i *servedInstance) Wait() error           { <-i.done; return i.err }
func (i *servedInstance) Done() <-chan struct{} { return i.done }
func (i *servedInstance) Kill() error           { i.enc.Close(); return nil }

// shmInstance spins: callers poll the ring for their results.
type shmInstance struct{ *servedInstance }

func (shmInstance) Spins() bool { return true }

type nopApp struct{}

func (nopApp) Initialize(context.Context, []byte) error    { return nil }
func (nopApp) Run(context.Context, []byte) ([]byte, error) { return nil, nil }
func (nopApp) Finalize(context.Context, []byte) error      { return nil }

// On a switchless channel callers read their own results, and the host's read loop steps
// aside while they do. Frames the enclave sends outside any call must still be read, calls
// that outlast the callers' polling must still get their results, and many callers at once
// must each get their own.
func TestSwitchlessReading(t *testing.T) {
	later := make(chan struct{})
	be := shmBackend{opts: []enclave.Option{
		enclave.Handle("echo", func(_ context.Context, in []byte) ([]byte, error) { return in, nil }),
		enclave.Handle("slow", func(_ context.Context, in []byte) ([]byte, error) {
			time.Sleep(3 * time.Millisecond) // far longer than a caller polls
			return in, nil
		}),
		enclave.Handle("log-later", func(ctx context.Context, in []byte) ([]byte, error) {
			lg := enclave.Logger(ctx)
			go func() {
				<-later
				lg.Info(string(in))
			}()
			return nil, nil
		}),
	}}
	var logs conformance.SyncBuffer
	e, err := host.Load(context.Background(), host.LoadConfig{Name: "t", Backend: be, Debug: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(context.Background(), nil)
	ctx := context.Background()

	if _, err := e.Call(ctx, "log-later", []byte("after the burst")); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		in := []byte{byte(i), byte(i >> 8)}
		out, err := e.Call(ctx, "echo", in)
		if err != nil || string(out) != string(in) {
			t.Fatalf("echo %d: %q, %v", i, out, err)
		}
	}
	// No call is in flight now: the log record is read by the read loop, once it looks again.
	close(later)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "after the burst") {
		if time.Now().After(deadline) {
			t.Fatal("a log record sent after a burst of calls never arrived")
		}
		time.Sleep(time.Millisecond)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				method := "echo"
				if i%50 == g {
					method = "slow"
				}
				in := []byte{byte(g), byte(i)}
				out, err := e.Call(ctx, method, in)
				if err != nil || string(out) != string(in) {
					errs <- fmt.Errorf("%s %d/%d: %q, %v", method, g, i, out, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// loadShmEcho loads an enclave runtime with an "echo" handler over shmBackend, destroyed when tb
// ends.
func loadShmEcho(tb testing.TB) *host.Enclave {
	tb.Helper()
	be := shmBackend{opts: []enclave.Option{
		enclave.Handle("echo", func(_ context.Context, in []byte) ([]byte, error) { return in, nil }),
	}}
	e, err := host.Load(context.Background(), host.LoadConfig{Name: "echo", Backend: be, Debug: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Destroy(context.Background(), nil) })
	return e
}

// A small call allocates three objects across both runtimes: the request's body and the call
// (its context) in the enclave, the result's body in the host. Recycled pending calls carry the
// request header's buffer and wire.Conn the result status's, which would otherwise escape
// (docs/benchmarks.md).
func TestCallAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	e := loadShmEcho(t)
	in := make([]byte, 64)
	allocs := testing.AllocsPerRun(2000, func() {
		if _, err := e.Call(context.Background(), "echo", in); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.2f allocations per call, both sides", allocs)
	if allocs > 3 {
		t.Errorf("%.2f allocations per call, want at most 3 (it was 12 before the per-call context, 6 before session 6)", allocs)
	}
}
