//go:build !linux

package sim

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/identity"
)

// The sim back-end runs enclaves as Linux processes (sealed memfds, namespaces, seccomp,
// Landlock). Elsewhere the package builds, so that hosts that also use other back-ends build, and
// every load reports errors.ErrUnsupported; `asylo doctor` explains.

var errUnsupported = fmt.Errorf("sim: the software back-end needs Linux, not %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Image is an enclave image as the back-end executes it; on this platform there are none.
type Image struct {
	Measurement identity.Measurement
	Size        int64
	Static      bool
}

// Close releases the image.
func (im *Image) Close() error { return nil }

// LoadImage reports errors.ErrUnsupported on this platform.
func LoadImage(path string) (*Image, error) { return nil, errUnsupported }

// Start reports errors.ErrUnsupported on this platform.
func (b *Backend) Start(ctx context.Context, spec backend.Spec) (backend.Instance, error) {
	return nil, errUnsupported
}

type prestartPool struct{}

func (*prestartPool) refill() {}
func (*prestartPool) close()  {}

type imageKey struct{}
