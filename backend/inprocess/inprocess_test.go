package inprocess_test

import (
	"context"
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
