//go:build linux

package testenclave

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Probe attempts, from inside the enclave, every action the sim sandbox must forbid, and reports
// what happened. input is a loopback TCP address the host listens on.
func Probe(ctx context.Context, input []byte) ([]byte, error) {
	r := ProbeResult{Attempts: map[string]string{}}
	try := func(name string, err error) {
		if err == nil {
			r.Attempts[name] = ""
		} else {
			r.Attempts[name] = err.Error()
		}
	}
	try("open /etc/passwd", func() error {
		f, err := os.Open("/etc/passwd")
		if err == nil {
			f.Close()
		}
		return err
	}())
	try("create file in /tmp", func() error {
		f, err := os.Create("/tmp/asylo-probe-" + time.Now().Format("150405.000000000"))
		if err == nil {
			os.Remove(f.Name())
			f.Close()
		}
		return err
	}())
	try("open /proc/self/mem", func() error {
		f, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
		if err == nil {
			f.Close()
		}
		return err
	}())
	try("socket AF_INET", sockErr(unix.AF_INET, unix.SOCK_STREAM))
	try("socket AF_INET6", sockErr(unix.AF_INET6, unix.SOCK_DGRAM))
	try("socket AF_UNIX", sockErr(unix.AF_UNIX, unix.SOCK_STREAM))
	try("socket AF_NETLINK", sockErr(unix.AF_NETLINK, unix.SOCK_RAW))
	try("socketpair", func() error {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err == nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
		}
		return err
	}())
	try("dial host TCP listener", func() error {
		c, err := net.DialTimeout("tcp", string(input), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}())
	try("fork+exec /bin/true", func() error {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, nil)
		if err == nil {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
		return err
	}())
	try("execve /bin/true", unix.Exec("/bin/true", []string{"true"}, nil))
	try("ptrace TRACEME", func() error {
		_, _, e := unix.RawSyscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0)
		return errnoErr(e)
	}())
	try("kill self with signal 0", unix.Kill(unix.Getpid(), 0))
	try("memfd_create", func() error {
		fd, err := unix.MemfdCreate("probe", 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}())
	try("unshare user namespace", unix.Unshare(unix.CLONE_NEWUSER))
	try("mount tmpfs", unix.Mount("none", "/tmp", "tmpfs", 0, ""))
	try("chdir /", unix.Chdir("/"))
	try("setuid 0", unix.Setuid(0))

	// What a prestarted process's first seccomp stage allows so that it can start the enclave
	// and the enclave can finish its sandbox: the second stage must take each back, with the
	// seccomp filter's EPERM (another error means the filter let the call through).
	seccompRefuses := func(name string, err error) {
		if errors.Is(err, unix.EPERM) {
			try(name, err)
		} else {
			try(name, nil) // let through: reported as allowed
		}
	}
	seccompRefuses("execve (seccomp)", unix.Exec("/bin/true", []string{"true"}, nil))
	seccompRefuses("clone CLONE_PARENT|CLONE_VFORK", func() error {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_PARENT}})
		if err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return err
	}())
	seccompRefuses("prctl PR_SET_DUMPABLE 0", unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0))
	seccompRefuses("prctl PR_SET_PDEATHSIG", unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0))
	seccompRefuses("landlock_create_ruleset", func() error {
		_, _, e := unix.RawSyscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1) // ABI version query
		return errnoErr(e)
	}())
	seccompRefuses("seccomp SET_MODE_FILTER", func() error {
		_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, 0) // EFAULT if let through
		return errnoErr(e)
	}())
	seccompRefuses("tgkill another process", unix.Tgkill(unix.Getpid()+1000, unix.Getpid()+1000, 0))

	r.Dumpable, _ = unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	r.NoNewPrivs, _ = unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_CORE, &rl)
	r.CoreLimit = rl.Cur
	r.UID, r.GID, r.PID, r.PPID = unix.Getuid(), unix.Getgid(), unix.Getpid(), unix.Getppid()
	var uts unix.Utsname
	unix.Uname(&uts)
	r.Hostname = unix.ByteSliceToString(uts.Nodename[:])
	r.TimeWorks = time.Since(time.Now()) < time.Second
	var b [16]byte
	_, err := unix.Getrandom(b[:], 0)
	r.RandomWorks = err == nil
	return json.Marshal(r)
}

func sockErr(domain, typ int) error {
	fd, err := unix.Socket(domain, typ, 0)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}
