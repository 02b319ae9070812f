//go:build linux

package sandbox

// This file is the CHILD side of the re-exec tests: when envMode is set, the
// test binary's init function calls Restrict (as the enclave runtime would),
// then probes what it can and cannot do and prints a JSON childResult on
// stdout. It never returns to the testing framework.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	envMode      = "ASYLO_SANDBOX_TEST_CHILD"
	envTCPAddr   = "ASYLO_SANDBOX_TEST_TCP"      // 127.0.0.1:port of a listener in the parent's netns
	envTmpDir    = "ASYLO_SANDBOX_TEST_TMPDIR"   // world-writable dir
	envParentPID = "ASYLO_SANDBOX_TEST_PPID"     // host pid of the test process
	envAbstract  = "ASYLO_SANDBOX_TEST_ABSTRACT" // abstract unix socket name the parent listens on

	// Inherited descriptors (exec.Cmd.ExtraFiles start at 3).
	fdConn  = 3 // socketpair end: control channel, data, SCM_RIGHTS
	fdMemfd = 4 // shared memory for the futex test
	fdTCP   = 5 // an unconnected TCP socket created in the parent's netns

	secretContent = "secret-from-host"
	memfdSize     = 4096
)

// check is the outcome of one probe in the child.
type check struct {
	Name  string `json:"name"`
	Errno int    `json:"errno"` // 0 when the operation succeeded
	Err   string `json:"err,omitempty"`
	Info  string `json:"info,omitempty"`
}

type childResult struct {
	Report      *Report `json:"report"`
	RestrictErr string  `json:"restrict_err,omitempty"`
	RestrictNS  int64   `json:"restrict_ns"`
	Checks      []check `json:"checks"`
}

func init() {
	mode := os.Getenv(envMode)
	if mode == "" {
		return
	}
	childMain(mode)
	os.Exit(0)
}

var res childResult

func record(name string, err error, info ...string) {
	c := check{Name: name}
	if err != nil {
		c.Err = err.Error()
		var en syscall.Errno
		if errors.As(err, &en) {
			c.Errno = int(en)
		} else {
			c.Errno = -1 // failed, but not with an errno
		}
	}
	if len(info) > 0 {
		c.Info = info[0]
	}
	res.Checks = append(res.Checks, c)
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func raw(name string, trap uintptr, a ...uintptr) {
	var args [6]uintptr
	copy(args[:], a)
	_, _, e := syscall.Syscall6(trap, args[0], args[1], args[2], args[3], args[4], args[5])
	record(name, errnoErr(e))
}

func childMain(mode string) {
	switch mode {
	case "noop": // for start-up benchmarks
		os.Exit(0)
	case "noop-restrict":
		if _, err := Restrict(Options{}); err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	case "control":
		childLandlockChecks()
	case "landlock":
		restrict(Options{noSeccomp: true})
		childLandlockChecks()
	case "full":
		restrict(Options{})
		childFull()
	case "staged":
		if err := PrepareLaunch(); err != nil {
			fmt.Fprintln(os.Stderr, "PrepareLaunch:", err)
			os.Exit(3)
		}
		restrict(Options{Launched: true})
		childFull()
	case "syscalls-none", "syscalls-whole", "syscalls-staged":
		// Cost of one allowed system call under no filter, the policy, or its two stages:
		// prints the median over 21 rounds of 20,000 getpid calls, in ns per call.
		switch mode {
		case "syscalls-whole":
			if _, err := Restrict(Options{}); err != nil {
				os.Exit(3)
			}
		case "syscalls-staged":
			if err := PrepareLaunch(); err != nil {
				os.Exit(3)
			}
			if _, err := Restrict(Options{Launched: true}); err != nil {
				os.Exit(3)
			}
		}
		runtime.LockOSThread()
		var rounds []float64
		for range 21 {
			t0 := time.Now()
			for range 20000 {
				syscall.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
			}
			rounds = append(rounds, float64(time.Since(t0).Nanoseconds())/20000)
		}
		slices.Sort(rounds)
		fmt.Println(rounds[len(rounds)/2])
		os.Exit(0)
	case "launched-unprepared":
		_, err := Restrict(Options{Launched: true})
		if errors.Is(err, ErrNotLaunched) {
			fmt.Println("ErrNotLaunched:", err)
		} else {
			fmt.Println("unexpected:", err)
		}
		os.Exit(0)
	case "wait-stdin": // sandboxed, alive until the host closes its stdin
		restrict(Options{})
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "panic":
		restrict(Options{})
		panic("boom-in-sandbox")
	case "exit7":
		restrict(Options{})
		os.Exit(7)
	default:
		fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
		os.Exit(2)
	}
	out, err := json.Marshal(&res)
	if err != nil {
		os.Exit(4)
	}
	os.Stdout.Write(append(out, '\n'))
}

func restrict(o Options) {
	t0 := time.Now()
	rep, err := Restrict(o)
	res.RestrictNS = time.Since(t0).Nanoseconds()
	res.Report = rep
	if err != nil {
		res.RestrictErr = err.Error()
		fmt.Fprintf(os.Stderr, "Restrict: %v\n", err)
		os.Exit(5)
	}
}

// childLandlockChecks is run without seccomp (mode "landlock") and without
// any restriction (mode "control"), without namespaces.
func childLandlockChecks() {
	f, err := os.Open("/etc/passwd")
	if err == nil {
		f.Close()
	}
	record("open_etc_passwd", err)

	err = os.WriteFile(filepath.Join(os.Getenv(envTmpDir), "created-by-child"), []byte("x"), 0o644)
	record("create_tmp_file", err)

	c, err := net.DialTimeout("tcp", os.Getenv(envTCPAddr), 5*time.Second)
	if err == nil {
		c.Close()
	}
	record("dial_tcp_loopback", err)

	c, err = net.DialTimeout("unix", "@"+os.Getenv(envAbstract), 5*time.Second)
	if err == nil {
		c.Close()
	}
	record("dial_abstract_unix", err)

	ppid, _ := strconv.Atoi(os.Getenv(envParentPID))
	record("kill_parent_sig0", unix.Kill(ppid, 0))

	record("exec_bin_true", exec.Command("/bin/true").Run())
}

func childFull() {
	conn, err := net.FileConn(os.NewFile(fdConn, "conn"))
	if err != nil {
		record("fileconn", err)
		return
	}
	uc := conn.(*net.UnixConn)
	record("fileconn", nil)
	conn.SetDeadline(time.Now().Add(30 * time.Second))

	// 1. Tell the parent we are restricted; it inspects /proc/<pid> and
	// then sends "G" with a descriptor attached.
	_, err = uc.Write([]byte("R"))
	record("fileconn_write", err)

	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err == nil && (n != 1 || buf[0] != 'G') {
		err = fmt.Errorf("unexpected message %q", buf[:n])
	}
	record("fileconn_read", err)
	func() {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			record("scm_rights_recv", err)
			return
		}
		if len(msgs) != 1 {
			record("scm_rights_recv", fmt.Errorf("%d control messages", len(msgs)))
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			record("scm_rights_recv", fmt.Errorf("fds=%v err=%v", fds, err))
			return
		}
		record("scm_rights_recv", nil)
		rf := os.NewFile(uintptr(fds[0]), "received")
		defer rf.Close()
		b := make([]byte, 64)
		n, err := rf.ReadAt(b, 0)
		if err != nil && n == 0 {
			record("scm_rights_read", err)
			return
		}
		if string(b[:n]) != secretContent {
			record("scm_rights_read", fmt.Errorf("read %q", b[:n]))
			return
		}
		record("scm_rights_read", nil)
	}()

	// 2. Shared memory + non-private futex with the parent.
	childFutex(uc)

	// 3. State checks.
	v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err == nil && v != 0 {
		err = fmt.Errorf("dumpable=%d", v)
	}
	record("dumpable_is_0", err)
	v, err = unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err == nil && v != 1 {
		err = fmt.Errorf("no_new_privs=%d", v)
	}
	record("no_new_privs_is_1", err)
	v, err = unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	if err == nil && v != 2 {
		err = fmt.Errorf("seccomp mode=%d", v)
	}
	record("seccomp_mode_is_2", err)
	var rl unix.Rlimit
	err = unix.Getrlimit(unix.RLIMIT_CORE, &rl)
	if err == nil && (rl.Cur != 0 || rl.Max != 0) {
		err = fmt.Errorf("RLIMIT_CORE=%d/%d", rl.Cur, rl.Max)
	}
	record("rlimit_core_is_0", err)
	record("getpid", nil, strconv.Itoa(os.Getpid()))

	childForbidden()
	childAllowed()
	uc.Close()
}

func childFutex(uc *net.UnixConn) {
	mem, err := unix.Mmap(fdMemfd, 0, memfdSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	record("mmap_memfd_shared", err)
	if err != nil {
		return
	}
	defer unix.Munmap(mem)
	w0 := (*uint32)(unsafe.Pointer(&mem[0]))
	w1 := (*uint32)(unsafe.Pointer(&mem[4]))

	if _, err := uc.Write([]byte("F")); err != nil {
		record("futex_wait_shared", err)
		return
	}
	// Wait (non-private FUTEX_WAIT) until the parent stores 1 and wakes us.
	deadline := time.Now().Add(20 * time.Second)
	var werr error
	woken := false
	for atomic.LoadUint32(w0) == 0 && time.Now().Before(deadline) {
		ts := unix.NsecToTimespec(int64(time.Second))
		_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w0)), futexWait, 0, uintptr(unsafe.Pointer(&ts)), 0, 0)
		switch e {
		case 0:
			woken = true
		case unix.EAGAIN, unix.ETIMEDOUT, unix.EINTR:
		default:
			werr = e
		}
		if werr != nil {
			break
		}
	}
	if werr == nil && atomic.LoadUint32(w0) != 1 {
		werr = fmt.Errorf("word0=%d after wait", atomic.LoadUint32(w0))
	}
	record("futex_wait_shared", werr, fmt.Sprintf("woken_by_futex_wake=%v", woken))

	// Now wake the parent, which waits on word1.
	atomic.StoreUint32(w1, 2)
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w1)), futexWake, 1, 0, 0, 0)
	record("futex_wake_shared", errnoErr(e))
}

func childForbidden() {
	tmp := os.Getenv(envTmpDir)
	path := func(s string) uintptr {
		p, _ := unix.BytePtrFromString(s)
		return uintptr(unsafe.Pointer(p))
	}

	// Filesystem.
	f, err := os.Open("/etc/passwd")
	if err == nil {
		f.Close()
	}
	record("open_etc_passwd", err)
	raw("sys_openat", unix.SYS_OPENAT, atFDCWD, path("/etc/passwd"), unix.O_RDONLY)
	how := unix.OpenHow{Flags: unix.O_RDONLY}
	raw("sys_openat2", unix.SYS_OPENAT2, atFDCWD, path("/etc/passwd"), uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how))
	record("create_tmp_file", os.WriteFile(filepath.Join(tmp, "created-by-child"), []byte("x"), 0o644))
	record("mkdir", unix.Mkdir(filepath.Join(tmp, "dir"), 0o755))
	record("unlink", unix.Unlink(filepath.Join(tmp, "keep")))
	record("rename", unix.Rename(filepath.Join(tmp, "keep"), filepath.Join(tmp, "moved")))
	record("symlink", unix.Symlink("/etc/passwd", filepath.Join(tmp, "link")))
	record("link", unix.Link(filepath.Join(tmp, "keep"), filepath.Join(tmp, "hard")))
	record("chmod", unix.Chmod(filepath.Join(tmp, "keep"), 0o777))
	record("chown", unix.Chown(filepath.Join(tmp, "keep"), 0, 0))
	record("truncate", unix.Truncate(filepath.Join(tmp, "keep"), 0))
	var st unix.Stat_t
	record("stat_path", unix.Stat("/etc/passwd", &st))
	record("chdir", unix.Chdir("/"))
	record("chroot", unix.Chroot("/"))
	record("mount", unix.Mount("none", tmp, "tmpfs", 0, ""))
	record("umount2", unix.Unmount("/", unix.MNT_DETACH))
	raw("pivot_root", unix.SYS_PIVOT_ROOT, path("/"), path("/"))

	// Network.
	_, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	record("socket_inet", err)
	_, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM, 0)
	record("socket_inet6_udp", err)
	_, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	record("socket_unix", err)
	_, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW, 0)
	record("socket_netlink", err)
	_, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	record("socketpair", err)
	addr, _ := net.ResolveTCPAddr("tcp", os.Getenv(envTCPAddr))
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	record("connect_inherited_tcp_socket", unix.Connect(fdTCP, sa))
	record("bind_inherited_tcp_socket", unix.Bind(fdTCP, &unix.SockaddrInet4{}))
	record("listen_inherited_tcp_socket", unix.Listen(fdTCP, 1))
	_, _, err = unix.Accept4(fdConn, 0)
	record("accept4", err)
	c, err := net.DialTimeout("tcp", os.Getenv(envTCPAddr), 5*time.Second)
	if err == nil {
		c.Close()
	}
	record("net_dial_tcp", err)

	// Processes.
	record("execve_bin_true", unix.Exec("/bin/true", []string{"true"}, nil))
	raw("execveat", unix.SYS_EXECVEAT, atFDCWD, path("/bin/true"), 0, 0, 0)
	record("os_exec_bin_true", exec.Command("/bin/true").Run())
	legacyProbes(path, tmp) // open, creat, fork, vfork where the architecture has them
	rawFork("clone_no_thread", unix.SYS_CLONE, uintptr(unix.SIGCHLD))
	rawFork("clone_vm_vfork", unix.SYS_CLONE, uintptr(unix.CLONE_VM|unix.CLONE_VFORK|unix.SIGCHLD))
	// A fork whose flags word equals the number of a syscall the policy checks after clone:
	// go-seccomp-bpf v1.6.0 then judged it as that syscall (third_party/go-seccomp-bpf/FORK.md).
	rawFork("clone_flags_mmap_nr", unix.SYS_CLONE, unix.SYS_MMAP)
	rawFork("clone_flags_fcntl_nr", unix.SYS_CLONE, unix.SYS_FCNTL)
	raw("clone3", unix.SYS_CLONE3, 0, 0)
	raw("ptrace_traceme", unix.SYS_PTRACE, unix.PTRACE_TRACEME)
	ppid, _ := strconv.Atoi(os.Getenv(envParentPID))
	raw("ptrace_attach_parent", unix.SYS_PTRACE, unix.PTRACE_ATTACH, uintptr(ppid))
	raw("ptrace_attach_1", unix.SYS_PTRACE, unix.PTRACE_ATTACH, 1)
	record("kill_1", unix.Kill(1, 0))
	record("kill_parent", unix.Kill(ppid, 0))
	record("kill_group", unix.Kill(0, 0))
	record("kill_all", unix.Kill(-1, 0))
	record("tgkill_parent", unix.Tgkill(ppid, ppid, 0))
	raw("tkill_parent", unix.SYS_TKILL, uintptr(ppid), 0)
	raw("pidfd_open_1", unix.SYS_PIDFD_OPEN, 1, 0)
	raw("process_vm_readv", unix.SYS_PROCESS_VM_READV, uintptr(ppid), 0, 0, 0, 0, 0)
	raw("process_vm_writev", unix.SYS_PROCESS_VM_WRITEV, uintptr(ppid), 0, 0, 0, 0, 0)
	raw("wait4", unix.SYS_WAIT4, ^uintptr(0), 0, unix.WNOHANG, 0)

	// Namespaces and privileges.
	record("unshare_user", unix.Unshare(unix.CLONE_NEWUSER))
	record("unshare_net", unix.Unshare(unix.CLONE_NEWNET))
	record("setns", unix.Setns(fdConn, 0))
	record("setuid_0", errnoErr(rawErr(unix.SYS_SETUID, 0)))
	record("prctl_set_dumpable_1", unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0))
	record("setrlimit_core", unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 1 << 20, Max: 1 << 20}))
	raw("seccomp_new_filter", unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_STRICT, 0, 0)
	raw("landlock_create_ruleset", unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1)

	// Dangerous kernel interfaces.
	_, err = unix.MemfdCreate("x", 0)
	record("memfd_create", err)
	raw("bpf", unix.SYS_BPF, 0, 0, 0)
	raw("perf_event_open", unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0)
	raw("userfaultfd", unix.SYS_USERFAULTFD, 0)
	raw("io_uring_setup", unix.SYS_IO_URING_SETUP, 1, 0)
	raw("keyctl", unix.SYS_KEYCTL, 0, 0)
	raw("add_key", unix.SYS_ADD_KEY, 0, 0, 0, 0, 0)
	raw("init_module", unix.SYS_INIT_MODULE, 0, 0, 0)
	raw("finit_module", unix.SYS_FINIT_MODULE, ^uintptr(0), 0, 0)
	raw("kexec_load", unix.SYS_KEXEC_LOAD, 0, 0, 0, 0)
	raw("ioctl_fionread", unix.SYS_IOCTL, fdConn, unix.TIOCINQ, 0)
	_, err = unix.FcntlInt(fdConn, unix.F_SETOWN, ppid)
	record("fcntl_setown", err)

	// No new executable memory.
	_, err = unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANON)
	record("mmap_exec", err)
	m, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err == nil {
		record("mprotect_exec", unix.Mprotect(m, unix.PROT_READ|unix.PROT_EXEC))
		unix.Munmap(m)
	}
}

func rawErr(trap uintptr, a1 uintptr) syscall.Errno {
	_, _, e := syscall.RawSyscall(trap, a1, 0, 0)
	return e
}

// rawFork tries to create a process. Should it ever succeed, the new process
// exits at once without touching the Go runtime.
func rawFork(name string, trap, flags uintptr) {
	r, _, e := syscall.RawSyscall6(trap, flags, 0, 0, 0, 0, 0)
	if e == 0 && r == 0 {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	record(name, errnoErr(e))
}

func childAllowed() {
	// Goroutines + GC under load, with new OS threads created after Restrict.
	func() {
		var wg sync.WaitGroup
		var sum atomic.Int64
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var keep [][]byte
				for j := 0; j < 2000; j++ {
					b := make([]byte, 4096+j)
					b[0] = byte(j)
					keep = append(keep, b)
					if len(keep) > 200 {
						keep = keep[100:]
					}
				}
				sum.Add(int64(len(keep)))
			}()
		}
		wg.Wait()
		for i := 0; i < 3; i++ {
			runtime.GC()
		}
		record("goroutines_gc_load", nil, fmt.Sprint(sum.Load()))
	}()
	func() {
		// 16 goroutines locked to OS threads and blocked in read(2) at
		// the same time need 16 threads: clone(CLONE_THREAD) must work.
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			record("new_os_threads", err)
			return
		}
		var wg sync.WaitGroup
		var started sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			started.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				started.Done()
				b := make([]byte, 1)
				unix.Read(fds[0], b)
			}()
		}
		started.Wait()
		time.Sleep(50 * time.Millisecond)
		unix.Write(fds[1], make([]byte, 16))
		wg.Wait()
		unix.Close(fds[0])
		unix.Close(fds[1])
		record("new_os_threads", nil)
	}()
	func() {
		// Asynchronous preemption (SIGURG via tgkill to our own thread):
		// with one P, the sleeper can only run again if the spinning
		// goroutine is preempted.
		old := runtime.GOMAXPROCS(1)
		defer runtime.GOMAXPROCS(old)
		var stop atomic.Bool
		done := make(chan struct{})
		go func() {
			x := 0
			for !stop.Load() {
				x++
			}
			close(done)
		}()
		time.Sleep(20 * time.Millisecond)
		stop.Store(true)
		<-done
		record("async_preemption", nil)
	}()

	t0 := time.Now()
	time.Sleep(30 * time.Millisecond)
	var err error
	if d := time.Since(t0); d < 30*time.Millisecond {
		err = fmt.Errorf("slept only %v", d)
	}
	record("time_sleep", err)
	select {
	case <-time.After(10 * time.Millisecond):
		record("timer", nil)
	case <-time.After(10 * time.Second):
		record("timer", errors.New("timer did not fire"))
	}

	b := make([]byte, 32)
	_, err = rand.Read(b)
	if err == nil && bytes.Equal(b, make([]byte, 32)) {
		err = errors.New("all zero")
	}
	record("crypto_rand", err)

	pr, pw, err := os.Pipe()
	if err == nil {
		go pw.Write([]byte("pipe"))
		pr.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, rerr := pr.Read(b)
		if rerr == nil && string(b[:n]) != "pipe" {
			rerr = fmt.Errorf("got %q", b[:n])
		}
		err = rerr
		pr.Close()
		pw.Close()
	}
	record("os_pipe_netpoll", err)

	fd, err := unix.Dup(fdMemfd)
	if err == nil {
		err = unix.Close(fd)
	}
	record("dup_close", err)
	var st unix.Stat_t
	record("fstat_inherited", unix.Fstat(fdMemfd, &st))
	record("tgkill_self_sig0", unix.Tgkill(unix.Getpid(), unix.Gettid(), 0))
}

// Non-private futex operations (no FUTEX_PRIVATE_FLAG): they work across
// processes sharing the memory.
const (
	futexWait = 0 // FUTEX_WAIT
	futexWake = 1 // FUTEX_WAKE
)

var fdcwd = unix.AT_FDCWD
var atFDCWD = uintptr(fdcwd) // -100 as a register value
