//go:build !linux

package sandbox

import (
	"errors"
	"os/exec"
	"syscall"
)

// ErrAlreadyRestricted is returned by a second call to Restrict.
var ErrAlreadyRestricted = errors.New("sandbox: Restrict already called in this process")

var errUnsupported = errors.New("sandbox: only supported on Linux")

// Restrict is only implemented on Linux.
func Restrict(opts Options) (*Report, error) { return &Report{}, errUnsupported }

// ProcAttr is only meaningful on Linux; elsewhere it returns an empty
// attribute set and a warning.
func ProcAttr() (*syscall.SysProcAttr, []string) {
	return &syscall.SysProcAttr{}, []string{"sandbox: no process isolation on this OS"}
}

// Probe reports that nothing is available off Linux.
func Probe() []Feature {
	return []Feature{{Name: "sandbox", Available: false, Detail: "only supported on Linux"}}
}

// CloseInherited is a no-op on this system.
func CloseInherited(keep ...int) ([]int, error) { return nil, errUnsupported }

// ErrNotLaunched is returned by Restrict with Options.Launched when the process was not
// prepared by PrepareLaunch.
var ErrNotLaunched = errors.New("sandbox: process was not prepared by PrepareLaunch")

// PrepareLaunch is only implemented on Linux.
func PrepareLaunch() error { return errUnsupported }

// PrepareSpawner is only implemented on Linux.
func PrepareSpawner() error { return errUnsupported }

// Start starts cmd without isolation and says so.
func Start(cmd *exec.Cmd) ([]string, error) {
	attr, warns := ProcAttr()
	cmd.SysProcAttr = attr
	return warns, cmd.Start()
}
