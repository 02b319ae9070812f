// Command nopenclave is the trivial enclave of the sim back-end's load benchmark
// (backend/sim/bench_test.go, target 4): the enclave runtime with an application that does
// nothing, so that loading it measures what the SDK costs (exec, measurement, sandbox, handshake,
// Initialize), set against firstreply, the trivial static Go program.
package main

import (
	"context"

	"github.com/asylo-go/asylo/enclave"
)

type nop struct{}

func (nop) Initialize(context.Context, []byte) error         { return nil }
func (nop) Run(_ context.Context, in []byte) ([]byte, error) { return in, nil }
func (nop) Finalize(context.Context, []byte) error           { return nil }

func main() { enclave.Run(nop{}) }
