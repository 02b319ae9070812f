// Command enclave is the trusted half of the hello example: it greets the names the host sends
// and counts its visitors. It is Asylo's hello_world, in Go.
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/asylo-go/asylo/enclave"
)

type hello struct {
	greeting string
	visitors atomic.Int64
}

// Initialize takes an optional greeting word as configuration ("Hello" by default). The
// configuration comes from the host, so it is checked like any other input.
func (h *hello) Initialize(ctx context.Context, config []byte) error {
	h.greeting = "Hello"
	if len(config) > 0 {
		g := string(config)
		if err := checkText(g, 32); err != nil {
			return fmt.Errorf("greeting: %w", err)
		}
		h.greeting = g
	}
	return nil
}

// Run greets each line of input.
func (h *hello) Run(ctx context.Context, input []byte) ([]byte, error) {
	var out strings.Builder
	for _, name := range strings.Split(strings.TrimSpace(string(input)), "\n") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		g, err := h.greet(name)
		if err != nil {
			return nil, err
		}
		out.WriteString(g + "\n")
	}
	return []byte(out.String()), nil
}

func (h *hello) Finalize(ctx context.Context, final []byte) error {
	enclave.Logger(ctx).Info("goodbye", "visitors", h.visitors.Load())
	return nil
}

func (h *hello) greet(name string) (string, error) {
	if err := checkText(name, 100); err != nil {
		return "", fmt.Errorf("%w: name: %v", enclave.ErrInvalidArgument, err)
	}
	n := h.visitors.Add(1)
	return fmt.Sprintf("%s, %s! You are visitor #%d to this enclave.", h.greeting, name, n), nil
}

func checkText(s string, max int) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > max:
		return fmt.Errorf("longer than %d bytes", max)
	case !utf8.ValidString(s):
		return errors.New("not UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("contains control characters")
	}
	return nil
}

type stats struct {
	Visitors int64 `json:"visitors"`
}

func main() {
	h := &hello{}
	enclave.Run(h,
		enclave.Handle("greet", func(ctx context.Context, name []byte) ([]byte, error) {
			g, err := h.greet(string(name))
			return []byte(g), err
		}),
		enclave.HandleJSON("stats", func(ctx context.Context, _ struct{}) (stats, error) {
			return stats{Visitors: h.visitors.Load()}, nil
		}),
	)
}
