// Command hello is the untrusted half of the hello example: it loads the hello enclave, sends it
// names to greet, and asks how many visitors it has had.
//
//	go run ./examples/hello Ada Grace Barbara
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"github.com/asylo-go/asylo/examples/internal/exampleutil"
	"github.com/asylo-go/asylo/host"
)

func main() {
	enclavePath := flag.String("enclave", "", "prebuilt hello enclave (default: build it from source)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: hello [-enclave FILE] NAME...")
		flag.PrintDefaults()
	}
	flag.Parse()
	names := flag.Args()
	if len(names) == 0 {
		names = []string{"Ada", "Grace", "Barbara"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	path, cleanup, err := exampleutil.EnclaveBinary(ctx, *enclavePath, "github.com/asylo-go/asylo/examples/hello/enclave")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	defer cleanup()
	if err := run(ctx, path, names, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, path string, names []string, out io.Writer) error {
	// Debug: the example enclave is not signed (see examples/quickstart for a signed one).
	e, err := host.Load(ctx, host.LoadConfig{
		Path: path, Name: "hello", Debug: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "loaded enclave %s (measurement %s)\n", e.Name(), e.Identity().Measurement)
	for _, name := range names {
		greeting, err := e.Call(ctx, "greet", []byte(name))
		if err != nil {
			e.Destroy(ctx, nil)
			return fmt.Errorf("greeting %q: %w", name, err)
		}
		fmt.Fprintln(out, string(greeting))
	}
	type stats struct {
		Visitors int64 `json:"visitors"`
	}
	s, err := host.CallJSON[stats](ctx, e, "stats", struct{}{})
	if err != nil {
		e.Destroy(ctx, nil)
		return err
	}
	fmt.Fprintf(out, "the enclave has greeted %d visitors\n", s.Visitors)
	return e.Destroy(ctx, nil)
}
