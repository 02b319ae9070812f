package sim_test

import (
	"context"
	"os"
	"testing"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/internal/conformance"
	"github.com/asylo-go/asylo/internal/enclavetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enclavetest.Cleanup()
	os.Exit(code)
}

func testEnclave(t testing.TB) string {
	return enclavetest.Build(t, "./internal/testenclave/cmd/testenclave")
}

func TestConformance(t *testing.T) {
	path := testEnclave(t)
	conformance.Run(t, conformance.Target{
		Load: func(ctx context.Context, cfg host.LoadConfig) (*host.Enclave, error) {
			cfg.Path, cfg.Backend, cfg.Debug = path, sim.New(), true
			return host.Load(ctx, cfg)
		},
		Isolated: true,
	})
}

// The same suite over shared memory: the protocol must behave identically on either channel.
func TestConformanceSwitchless(t *testing.T) {
	path := testEnclave(t)
	conformance.Run(t, conformance.Target{
		Load: func(ctx context.Context, cfg host.LoadConfig) (*host.Enclave, error) {
			cfg.Path, cfg.Backend, cfg.Debug = path, sim.New(sim.Switchless()), true
			return host.Load(ctx, cfg)
		},
		Isolated: true,
	})
}
