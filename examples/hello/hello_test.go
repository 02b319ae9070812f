package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/internal/enclavetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enclavetest.Cleanup()
	os.Exit(code)
}

func TestHello(t *testing.T) {
	path := enclavetest.Build(t, "./examples/hello/enclave")
	var out bytes.Buffer
	if err := run(context.Background(), path, []string{"Ada", "Grace"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Hello, Ada! You are visitor #1 to this enclave.",
		"Hello, Grace! You are visitor #2 to this enclave.",
		"the enclave has greeted 2 visitors",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestHelloRunAndValidation(t *testing.T) {
	path := enclavetest.Build(t, "./examples/hello/enclave")
	ctx := context.Background()
	e, err := host.Load(ctx, host.LoadConfig{Path: path, Debug: true, Config: []byte("Bonjour")})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx, nil)
	out, err := e.EnterAndRun(ctx, []byte("Ada\n\nLinus\n"))
	if err != nil || string(out) != "Bonjour, Ada! You are visitor #1 to this enclave.\nBonjour, Linus! You are visitor #2 to this enclave.\n" {
		t.Errorf("Run = %q, %v", out, err)
	}
	if _, err := e.Call(ctx, "greet", []byte("bad\x00name")); !errors.Is(err, host.ErrInvalidArgument) {
		t.Errorf("control character in name: %v", err)
	}
	if _, err := host.Load(ctx, host.LoadConfig{Path: path, Debug: true, Config: []byte("\x07")}); !errors.Is(err, host.ErrInitialize) {
		t.Errorf("bad greeting config: %v", err)
	}
}
