package inprocess_test

import (
	"context"
	"strings"
	"testing"

	"github.com/asylo-go/asylo/backend/inprocess"
	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/internal/conformance"
	"github.com/asylo-go/asylo/internal/testenclave"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Target{
		Load: func(ctx context.Context, cfg host.LoadConfig) (*host.Enclave, error) {
			app := &testenclave.App{}
			cfg.Backend = inprocess.New(func() enclave.Application { return app }, app.Options()...)
			return host.Load(ctx, cfg)
		},
	})
}

func TestIdentityIsDebug(t *testing.T) {
	app := &testenclave.App{}
	e, err := host.Load(context.Background(), host.LoadConfig{
		Name:    "dbg",
		Backend: inprocess.New(func() enclave.Application { return app }, app.Options()...),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(context.Background(), nil)
	id := e.Identity()
	if id.Backend != "inprocess" || !id.Debug || id.Signed || !id.Measurement.IsZero() {
		t.Errorf("identity %+v, want an unsigned debug identity without measurement", id)
	}
}

// The inprocess back-end has no platform to sign evidence or seal: Attest and Sealer say so.
func TestNoAttestation(t *testing.T) {
	app := &testenclave.App{}
	ctx := context.Background()
	e, err := host.Load(ctx, host.LoadConfig{Backend: inprocess.New(func() enclave.Application { return app }, app.Options()...)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx, nil)
	if _, err := e.Call(ctx, "attest", []byte("n")); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("attest on inprocess: %v, want an unsupported error", err)
	}
	if _, err := e.Call(ctx, "seal-measurement", []byte("n")); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("sealing on inprocess: %v, want an unsupported error", err)
	}
}
