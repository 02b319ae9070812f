package host_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/host"
)

// Load a signed enclave on the sim back-end, call it, and destroy it.
func ExampleLoad() {
	ctx := context.Background()
	e, err := host.Load(ctx, host.LoadConfig{Path: "hello.enclave", Name: "hello"})
	if err != nil {
		log.Fatal(err) // e.g. backend.ErrUnsigned, signing.ErrMeasurementMismatch
	}
	defer e.Destroy(ctx, nil)

	greeting, err := e.Call(ctx, "greet", []byte("Ada"))
	var lost *host.LostError
	switch {
	case errors.As(err, &lost):
		log.Fatalf("enclave died: %v", lost.Exit)
	case errors.Is(err, host.ErrPanic):
		log.Printf("the call panicked, the enclave still serves: %v", err)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(string(greeting))
}

// Calls over shared memory with bounded spinning: about a microsecond per call.
func ExampleLoad_switchless() {
	e, err := host.Load(context.Background(), host.LoadConfig{
		Path:    "hello.enclave",
		Backend: sim.New(sim.Switchless()),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Destroy(context.Background(), nil)
}
