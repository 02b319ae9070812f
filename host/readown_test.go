package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/backend/inprocess"
	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/host"
)

// A caller that reads its own result from a socket-like channel blocks in Read; the end of its
// context must interrupt it only between frames. Many callers with deadlines that expire at
// random points, while large results are in flight in pieces (net.Pipe has no buffer), must
// leave the channel intact: every call either succeeds with its exact result or fails with its
// context's error, and the enclave stays usable.
func TestCallerReadInterrupt(t *testing.T) {
	pattern := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i*7)
		}
		return b
	}
	be := inprocess.New(func() enclave.Application { return nopApp{} },
		enclave.Handle("big", func(ctx context.Context, in []byte) ([]byte, error) {
			return pattern(300<<10+int(in[0])*1000, in[0]), nil
		}),
		enclave.Handle("slow", func(ctx context.Context, in []byte) ([]byte, error) {
			time.Sleep(time.Duration(in[0]) * 50 * time.Microsecond)
			return in, nil
		}),
	)
	e, err := host.Load(context.Background(), host.LoadConfig{Name: "t", Backend: be, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(context.Background(), nil)

	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	var mu sync.Mutex
	ok, cancelled := 0, 0
	// One caller alone reads its own results (the read loop steps aside); then several at once.
	for _, callers := range []int{1, 6} {
		for g := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 120 {
					seed := byte(g*120 + i)
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%20)*500*time.Microsecond)
					var out, want []byte
					var err error
					if i%2 == 0 {
						out, err = e.Call(ctx, "big", []byte{seed})
						want = pattern(300<<10+int(seed)*1000, seed)
					} else {
						out, err = e.Call(ctx, "slow", []byte{seed % 40})
						want = []byte{seed % 40}
					}
					cancel()
					mu.Lock()
					switch {
					case err == nil && bytes.Equal(out, want):
						ok++
					case errors.Is(err, context.DeadlineExceeded):
						cancelled++
					default:
						errs <- fmt.Errorf("call %d/%d: %d bytes, %v", g, i, len(out), err)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := e.Err(); err != nil {
		t.Fatalf("enclave lost after interrupted reads: %v", err)
	}
	out, err := e.Call(context.Background(), "big", []byte{1})
	if err != nil || !bytes.Equal(out, pattern(300<<10+1000, 1)) {
		t.Fatalf("call after the storm: %d bytes, %v", len(out), err)
	}
	t.Logf("%d succeeded, %d ended by their deadline", ok, cancelled)
	if ok == 0 || cancelled == 0 {
		t.Errorf("want both outcomes, got %d succeeded and %d cancelled", ok, cancelled)
	}
}

// timeApp makes a host call in Initialize and in Finalize, which run on goroutines of their own.
type timeApp struct{ nopApp }

func (timeApp) Initialize(ctx context.Context, _ []byte) error {
	_, err := enclave.UntrustedTime(ctx)
	return err
}

func (timeApp) Finalize(ctx context.Context, _ []byte) error {
	_, err := enclave.UntrustedTime(ctx)
	return err
}

// A host call from Initialize or Finalize must not start a second reader of the channel (only a
// call running on the reading goroutine hands reading over): with two, frames are torn apart.
func TestHostCallOutsideInlineCall(t *testing.T) {
	be := inprocess.New(func() enclave.Application { return timeApp{} },
		enclave.Handle("echo", func(_ context.Context, in []byte) ([]byte, error) { return in, nil }))
	for range 3 {
		e, err := host.Load(context.Background(), host.LoadConfig{Name: "t", Backend: be, Debug: true})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 200 {
					in := bytes.Repeat([]byte{byte(g), byte(i)}, 100)
					if out, err := e.Call(context.Background(), "echo", in); err != nil || !bytes.Equal(out, in) {
						t.Errorf("echo: %d bytes, %v", len(out), err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := e.Destroy(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// One caller making calls one after another reads its own results (the read loop steps aside
// and stays aside), on a socket-like channel as on shared memory.
func TestCallerReadsOwnResults(t *testing.T) {
	echo := enclave.Handle("echo", func(_ context.Context, in []byte) ([]byte, error) { return in, nil })
	for _, tc := range []struct {
		name string
		be   backend.Backend
		min  int // percent; a caller on shm parks if its call outlasts 20 µs (-race, load)
	}{
		{"pipe", inprocess.New(func() enclave.Application { return nopApp{} }, echo), 80},
		{"shm", shmBackend{opts: []enclave.Option{echo}}, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := host.Load(context.Background(), host.LoadConfig{Name: "t", Backend: tc.be, Debug: true})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Destroy(context.Background(), nil)
			before := host.OwnReads(e)
			const n = 300
			for i := range n {
				if _, err := e.Call(context.Background(), "echo", []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
			}
			// A few may go through the read loop (the first ones, one per tick at most).
			if got := host.OwnReads(e) - before; got < uint64(n*tc.min/100) {
				t.Errorf("%d of %d calls read their own result", got, n)
			}
		})
	}
}
