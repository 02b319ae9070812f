//go:build !linux

package shm

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
)

// The shared region is a sealed memfd and the sleeps are futexes: Linux only. Elsewhere the
// package builds, so that hosts using other back-ends (inprocess) build too, and reports that
// switchless channels are unavailable.

var errUnsupported = fmt.Errorf("shm: shared-memory channels need Linux (memfd, futex), not %s: %w", runtime.GOOS, errors.ErrUnsupported)

// New reports errors.ErrUnsupported on this platform.
func New(Options) (*Conn, *os.File, error) { return nil, nil, errUnsupported }

// Open reports errors.ErrUnsupported on this platform.
func Open(*os.File, Options) (*Conn, error) { return nil, errUnsupported }

// No Conn exists on this platform, so nothing sleeps or wakes.
func futexWait(*uint32, uint32, time.Duration) {}
func futexWake(*uint32)                        {}
