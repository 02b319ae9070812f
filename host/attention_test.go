package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/internal/enclavetest"
	"github.com/asylo-go/asylo/internal/wire"
)

// TestAttention: on sim (socket, switchless, prestarted) a lone call costs no notification, and frames
// sent while a call runs on the enclave's reading goroutine (a second call, a CANCEL) get the
// enclave's attention at once, not when that call ends (docs/wire.md, "Attention").
func TestAttention(t *testing.T) {
	path := enclavetest.Build(t, "./internal/testenclave/cmd/testenclave")
	for _, mode := range []struct {
		name string
		opts []sim.Option
	}{
		{"socket", nil},
		{"direct", []sim.Option{sim.Direct()}},
		{"switchless", []sim.Option{sim.Switchless()}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			be := sim.New(mode.opts...)
			defer be.Close()
			e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Destroy(ctx, nil)
			// The enclave got an attention channel (without one its watchdog would pass what
			// follows too).
			if fd, err := e.Call(ctx, "launch-env", []byte(wire.EnvAttention)); err != nil || len(fd) == 0 {
				t.Fatalf("%s in the enclave: %q, %v", wire.EnvAttention, fd, err)
			}
			for range 200 {
				if _, err := e.Call(ctx, "echo", []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			if n := host.Notifications(e); n != 0 {
				t.Fatalf("%d notifications for calls made one at a time, want 0", n)
			}

			// A call that blocks for 5 s runs inline on the enclave's reading goroutine; it is
			// cancelled, and then (with ask) a second call is made while it blocks.
			blocked := func(ask func()) {
				t.Helper()
				sctx, stop := context.WithCancel(ctx)
				slept := make(chan error, 1)
				go func() {
					_, err := e.Call(sctx, "sleep", []byte("5s"))
					slept <- err
				}()
				time.Sleep(100 * time.Millisecond)
				if ask != nil {
					ask()
				}
				stop()
				<-slept
				// The enclave reads the CANCEL, the sleep returns, and its RESULT is read.
				deadline := time.Now().Add(2 * time.Second)
				for host.Pending(e) != 0 {
					if time.Now().After(deadline) {
						t.Fatal("the enclave did not see the CANCEL of a call blocking its reading goroutine")
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			blocked(nil)
			blocked(func() {
				n := host.Notifications(e)
				start := time.Now()
				if _, err := e.Call(ctx, "echo", []byte("y")); err != nil {
					t.Fatal(err)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("a call behind a blocked one took %v", d)
				}
				if host.Notifications(e) == n {
					t.Error("no notification for a call made while another was in flight")
				}
			})
		})
	}
}
