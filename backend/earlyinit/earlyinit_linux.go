//go:build linux

package earlyinit

import (
	"os"
	"syscall"
)

func init() {
	// The launch contract's variable (wire.EnvSandbox), spelt out: importing internal/wire would
	// not change the order, but this package should depend on as little as possible.
	if os.Getenv("ASYLO_SANDBOX") == "" {
		return
	}
	r := &Result{Attempts: map[string]string{}}
	try := func(name string, err error) {
		r.Attempts[name] = ""
		if err != nil {
			r.Attempts[name] = err.Error()
		}
	}
	f, err := os.Open("/etc/passwd")
	if err == nil {
		f.Close()
	}
	try("open /etc/passwd", err)
	for _, s := range []struct {
		name   string
		domain int
	}{{"socket AF_INET", syscall.AF_INET}, {"socket AF_UNIX", syscall.AF_UNIX}} {
		fd, err := syscall.Socket(s.domain, syscall.SOCK_STREAM, 0)
		if err == nil {
			syscall.Close(fd)
		}
		try(s.name, err)
	}
	r.Seccomp, r.NoNewPrivs, r.Dumpable = prctl(prGetSeccomp), prctl(prGetNoNewPrivs), prctl(prGetDumpable)
	// execve of a file, only where the process is under seccomp already: unconfined it would
	// succeed, and this process would be gone. (Confined, if it succeeded, the load would fail
	// for want of a HELLO: as loud a failure.)
	if r.Seccomp == 2 {
		try("execve /bin/sh", syscall.Exec("/bin/sh", []string{"sh", "-c", "exit 97"}, nil))
	}
	Found = r
}

// prctl options (linux/prctl.h), which package syscall does not name.
const (
	prGetDumpable   = 3
	prGetSeccomp    = 21
	prGetNoNewPrivs = 39
)

func prctl(op uintptr) int {
	v, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, op, 0, 0)
	if e != 0 {
		return -1
	}
	return int(v)
}
