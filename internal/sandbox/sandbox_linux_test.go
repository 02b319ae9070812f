//go:build linux

package sandbox

import (
	"bufio"
	"bytes"
	"context"
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
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/asylo-go/asylo/internal/sandbox/seccomppolicy"
)

// childBin is a copy of the test binary in a world-traversable directory, so
// that the child can execute it as uid 65534.
var childBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "asylo-sandbox-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	childBin = filepath.Join(dir, "sandbox.test")
	if err := copyFile(os.Args[0], childBin, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// env is what the parent prepares for one child.
type env struct {
	tmp      string
	ln       net.Listener // TCP on 127.0.0.1 in the parent's netns
	accepted atomic.Int32
	abstract string
	absLn    net.Listener
	absAcc   atomic.Int32
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{tmp: t.TempDir()}
	os.Chmod(e.tmp, 0o777) // only the sandbox, not file permissions, may stop the child
	if err := os.WriteFile(filepath.Join(e.tmp, "keep"), []byte("keep"), 0o666); err != nil {
		t.Fatal(err)
	}
	var err error
	e.ln, err = net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.ln.Close() })
	go acceptLoop(e.ln, &e.accepted)
	e.abstract = fmt.Sprintf("asylo-sandbox-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	e.absLn, err = net.Listen("unix", "@"+e.abstract)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.absLn.Close() })
	go acceptLoop(e.absLn, &e.absAcc)
	return e
}

func acceptLoop(ln net.Listener, n *atomic.Int32) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		n.Add(1)
		c.Close()
	}
}

func (e *env) vars(mode string) []string {
	return []string{
		envMode + "=" + mode,
		envTCPAddr + "=" + e.ln.Addr().String(),
		envTmpDir + "=" + e.tmp,
		envParentPID + "=" + strconv.Itoa(os.Getpid()),
		envAbstract + "=" + e.abstract,
		"GOTRACEBACK=single",
	}
}

func parseResult(t *testing.T, out []byte) *childResult {
	t.Helper()
	var r childResult
	line := bytes.TrimSpace(out)
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("child output is not a result: %v\n%s", err, out)
	}
	return &r
}

func (r *childResult) get(t *testing.T, name string) check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("child did not run check %q", name)
	return check{}
}

func expectOK(t *testing.T, r *childResult, names ...string) {
	t.Helper()
	for _, n := range names {
		if c := r.get(t, n); c.Errno != 0 {
			t.Errorf("%s: should work in the sandbox, failed: %s", n, c.Err)
		}
	}
}

func expectErrno(t *testing.T, r *childResult, want syscall.Errno, names ...string) {
	t.Helper()
	for _, n := range names {
		c := r.get(t, n)
		switch {
		case c.Errno == 0:
			t.Errorf("%s: SUCCEEDED in the sandbox, must fail", n)
		case c.Errno != int(want):
			t.Errorf("%s: failed with %q (errno %d), want %v", n, c.Err, c.Errno, want)
		}
	}
}

// TestSandboxedChild is the main end-to-end test: a child started with
// ProcAttr() calls Restrict and then probes the sandbox from the inside.
// TestSandboxedChild runs every check in a sandboxed child: sandboxed by Restrict ("full"), and
// in two stages as a prestarted process and its enclave do it ("staged": PrepareLaunch, then
// Restrict with Options.Launched, in one process), which must refuse exactly the same.
func TestSandboxedChild(t *testing.T) {
	for _, mode := range []string{"full", "staged"} {
		t.Run(mode, func(t *testing.T) { sandboxedChild(t, mode) })
	}
}

func sandboxedChild(t *testing.T, mode string) {
	e := newEnv(t)

	// Parent ends: socketpair, memfd, an unconnected TCP socket, a secret
	// file to hand over with SCM_RIGHTS.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	parentEnd := os.NewFile(uintptr(sp[0]), "parent-end")
	childEnd := os.NewFile(uintptr(sp[1]), "child-end")
	defer parentEnd.Close()
	mfd, err := unix.MemfdCreate("asylo-sandbox-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	memf := os.NewFile(uintptr(mfd), "memfd")
	defer memf.Close()
	if err := memf.Truncate(memfdSize); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(mfd, 0, memfdSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	tfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	tcpf := os.NewFile(uintptr(tfd), "tcp")
	defer tcpf.Close()
	secretPath := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretPath, []byte(secretContent), 0o600); err != nil {
		t.Fatal(err)
	}
	secret, err := os.Open(secretPath) // opened by the host, passed in
	if err != nil {
		t.Fatal(err)
	}
	defer secret.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, childBin, "-test.run=^$")
	cmd.Env = e.vars(mode)
	cmd.ExtraFiles = []*os.File{childEnd, memf, tcpf}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Started as the sim back-end starts each kind: a direct start with Start, a prestarted
	// process with ProcAttr.
	var warns []string
	if mode == "full" {
		warns, err = Start(cmd)
	} else {
		cmd.SysProcAttr, warns = ProcAttr()
		err = cmd.Start()
	}
	for _, w := range warns {
		t.Logf("warning: %s", w)
	}
	if err != nil {
		t.Fatalf("start child: %v", err)
	}
	attr := cmd.SysProcAttr
	childEnd.Close()
	pid := cmd.Process.Pid

	// Protocol with the child (runs while the child is alive).
	protoErr := make(chan error, 1)
	inspected := make(chan struct{})
	go func() {
		protoErr <- func() error {
			defer close(inspected)
			c, err := net.FileConn(parentEnd)
			if err != nil {
				return err
			}
			uc := c.(*net.UnixConn)
			defer uc.Close()
			uc.SetDeadline(time.Now().Add(60 * time.Second))
			b := make([]byte, 1)
			if _, err := io.ReadFull(uc, b); err != nil || b[0] != 'R' {
				return fmt.Errorf("waiting for R: %q %v (stderr: %s)", b, err, stderr.String())
			}
			inspectChild(t, pid, attr)
			if _, _, err := uc.WriteMsgUnix([]byte("G"), unix.UnixRights(int(secret.Fd())), nil); err != nil {
				return err
			}
			if _, err := io.ReadFull(uc, b); err != nil || b[0] != 'F' {
				return fmt.Errorf("waiting for F: %q %v", b, err)
			}
			// Futex: wake the child, then wait to be woken.
			w0 := (*uint32)(unsafe.Pointer(&mem[0]))
			w1 := (*uint32)(unsafe.Pointer(&mem[4]))
			time.Sleep(20 * time.Millisecond)
			atomic.StoreUint32(w0, 1)
			unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w0)), futexWake, 1, 0, 0, 0)
			deadline := time.Now().Add(20 * time.Second)
			for atomic.LoadUint32(w1) == 0 && time.Now().Before(deadline) {
				ts := unix.NsecToTimespec(int64(100 * time.Millisecond))
				unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w1)), futexWait, 0, uintptr(unsafe.Pointer(&ts)), 0, 0)
			}
			if v := atomic.LoadUint32(w1); v != 2 {
				return fmt.Errorf("child never stored to shared word1 (=%d)", v)
			}
			// Keep the connection open until the child is done.
			io.Copy(io.Discard, uc)
			return nil
		}()
	}()

	werr := cmd.Wait()
	<-inspected
	if werr != nil {
		t.Fatalf("child failed: %v\nstderr:\n%s\nstdout:\n%s", werr, stderr.String(), stdout.String())
	}
	if err := <-protoErr; err != nil {
		t.Errorf("protocol: %v", err)
	}
	r := parseResult(t, stdout.Bytes())
	t.Logf("Restrict took %v; report: %+v", time.Duration(r.RestrictNS), *r.Report)
	if stderr.Len() > 0 {
		t.Logf("child stderr:\n%s", stderr.String())
	}

	rep := r.Report
	if !rep.NoNewPrivs || !rep.NotDumpable || !rep.CoreLimitZero || !rep.Seccomp {
		t.Errorf("report missing layers: %+v", *rep)
	}
	if abi := landlockABI(); rep.LandlockABI != min(abi, landlockWantABI) {
		t.Errorf("report landlock ABI %d, kernel has %d", rep.LandlockABI, abi)
	}
	if abi := landlockABI(); abi > 0 && !rep.LandlockAllThreads {
		if !buildCgo || abi >= 8 {
			t.Errorf("landlock not applied to all threads: %+v", *rep)
		} else {
			t.Logf("expected degradation (cgo build, landlock ABI %d, pid namespace): landlock on one thread only", abi)
		}
	}

	// Must still work.
	expectOK(t, r,
		"fileconn", "fileconn_write", "fileconn_read",
		"scm_rights_recv", "scm_rights_read",
		"mmap_memfd_shared", "futex_wait_shared", "futex_wake_shared",
		"dumpable_is_0", "no_new_privs_is_1", "seccomp_mode_is_2", "rlimit_core_is_0",
		"goroutines_gc_load", "new_os_threads", "async_preemption",
		"time_sleep", "timer", "crypto_rand", "os_pipe_netpoll",
		"dup_close", "fstat_inherited", "tgkill_self_sig0",
	)
	if c := r.get(t, "getpid"); c.Info != "1" && attr.Cloneflags&syscall.CLONE_NEWPID != 0 {
		t.Errorf("child pid in its pid namespace is %s, want 1", c.Info)
	}

	// Must fail, with seccomp's EPERM.
	expectErrno(t, r, unix.EPERM, legacyProbeNames...)
	expectErrno(t, r, unix.EPERM,
		"open_etc_passwd", "sys_openat", "sys_openat2",
		"create_tmp_file", "mkdir", "unlink", "rename", "symlink", "link", "chmod",
		"chown", "truncate", "stat_path", "chdir", "chroot", "mount", "umount2", "pivot_root",
		"socket_inet", "socket_inet6_udp", "socket_unix", "socket_netlink", "socketpair",
		"connect_inherited_tcp_socket", "bind_inherited_tcp_socket",
		"listen_inherited_tcp_socket", "accept4", "net_dial_tcp",
		"execve_bin_true", "execveat", "os_exec_bin_true",
		"clone_no_thread", "clone_vm_vfork", "clone_flags_mmap_nr", "clone_flags_fcntl_nr",
		"ptrace_traceme", "ptrace_attach_parent", "ptrace_attach_1",
		"kill_1", "kill_parent", "kill_group", "kill_all", "tgkill_parent", "tkill_parent",
		"pidfd_open_1", "process_vm_readv", "process_vm_writev", "wait4",
		"unshare_user", "unshare_net", "setns", "setuid_0",
		"prctl_set_dumpable_1", "setrlimit_core", "seccomp_new_filter", "landlock_create_ruleset",
		"memfd_create", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
		"keyctl", "add_key", "init_module", "finit_module", "kexec_load",
		"ioctl_fionread", "fcntl_setown", "mmap_exec", "mprotect_exec",
	)
	// clone3 is denied with ENOSYS so that libc falls back to clone(2).
	expectErrno(t, r, unix.ENOSYS, "clone3")

	// Side effects must be absent in the parent's world.
	if _, err := os.Stat(filepath.Join(e.tmp, "created-by-child")); err == nil {
		t.Errorf("child created a file in %s", e.tmp)
	}
	if b, err := os.ReadFile(filepath.Join(e.tmp, "keep")); err != nil || string(b) != "keep" {
		t.Errorf("child changed %s/keep: %q %v", e.tmp, b, err)
	}
	time.Sleep(20 * time.Millisecond)
	if n := e.accepted.Load(); n != 0 {
		t.Errorf("loopback listener accepted %d connections from the child", n)
	}
}

// inspectChild checks, from the host, the live child's namespaces and
// credentials.
func inspectChild(t *testing.T, pid int, attr *syscall.SysProcAttr) {
	t.Helper()
	nsFlags := map[string]uintptr{
		"user": syscall.CLONE_NEWUSER, "pid": syscall.CLONE_NEWPID, "mnt": syscall.CLONE_NEWNS,
		"net": syscall.CLONE_NEWNET, "ipc": syscall.CLONE_NEWIPC, "uts": syscall.CLONE_NEWUTS,
		"cgroup": syscall.CLONE_NEWCGROUP,
	}
	for ns, flag := range nsFlags {
		mine, err1 := os.Readlink("/proc/self/ns/" + ns)
		theirs, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err1 != nil || err2 != nil {
			t.Errorf("readlink ns/%s: %v %v", ns, err1, err2)
			continue
		}
		if attr.Cloneflags&flag == 0 {
			t.Logf("%s namespace: none of its own asked for", ns)
			continue
		}
		if mine == theirs {
			t.Errorf("child shares the %s namespace with the host (%s)", ns, mine)
		}
	}
	if os.Geteuid() == 0 && attr.Cloneflags&syscall.CLONE_NEWUSER == 0 {
		// A direct start as root (Start): no user namespace, and the network namespace every
		// directly started child shares, not the host's.
		d := probeDirect()
		if !d.ok {
			t.Fatal("running as root, the child has no user namespace, yet Start's direct mode is off")
		}
		if d.net != nil {
			theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
			if err != nil {
				t.Fatal(err)
			}
			if shared := sharedNetNS(t); theirs != shared {
				t.Errorf("child's network namespace is %s, want the shared %s", theirs, shared)
			}
			if mine, _ := os.Readlink("/proc/self/ns/net"); mine == theirs {
				t.Errorf("child shares the host's network namespace %s", mine)
			}
		}
	}

	status := readStatus(t, fmt.Sprintf("/proc/%d/status", pid))
	wantID := strconv.Itoa(NobodyID)
	if os.Geteuid() != 0 {
		wantID = strconv.Itoa(os.Geteuid())
	}
	for _, key := range []string{"Uid", "Gid"} {
		for _, f := range strings.Fields(status[key]) {
			if key == "Gid" && os.Geteuid() != 0 {
				break
			}
			if f != wantID {
				t.Errorf("child %s = %q (host view), want all %s", key, status[key], wantID)
				break
			}
		}
	}
	if status["Groups"] != "" {
		t.Errorf("child has supplementary groups %q", status["Groups"])
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
		if status[k] != "0000000000000000" {
			t.Errorf("child %s = %s, want no capabilities", k, status[k])
		}
	}
	if status["NoNewPrivs"] != "1" {
		t.Errorf("child NoNewPrivs = %q", status["NoNewPrivs"])
	}
	// Every thread must be under the filter (TSYNC).
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		st := readStatus(t, fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if st["Seccomp"] != "2" || st["NoNewPrivs"] != "1" {
			t.Errorf("thread %s: Seccomp=%q NoNewPrivs=%q, want 2 and 1", task.Name(), st["Seccomp"], st["NoNewPrivs"])
		}
	}
	t.Logf("child pid %d: %d threads, Uid %q, CapEff %s, Seccomp %s", pid, len(tasks), status["Uid"], status["CapEff"], status["Seccomp"])
}

// sharedNetNS names the network namespace Start's thread lives in.
func sharedNetNS(t *testing.T) string {
	t.Helper()
	var ns string
	err := probeDirect().net.do(func() (err error) {
		ns, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func readStatus(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// runPlain starts a child WITHOUT namespaces or uid change, so that only what
// the child does to itself matters.
func runPlain(t *testing.T, e *env, mode string) *childResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, childBin, "-test.run=^$")
	cmd.Env = e.vars(mode)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child %s: %v\nstderr:\n%s", mode, err, stderr.String())
	}
	return parseResult(t, stdout.Bytes())
}

// TestControlChildIsNotRestricted proves the probes are not vacuous: without
// Restrict, the very same operations succeed.
func TestControlChildIsNotRestricted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the control run sends signal 0 to the parent and needs the same uid; run as root")
	}
	e := newEnv(t)
	r := runPlain(t, e, "control")
	expectOK(t, r, "open_etc_passwd", "create_tmp_file", "dial_tcp_loopback",
		"dial_abstract_unix", "kill_parent_sig0", "exec_bin_true")
}

// TestLandlockAlone proves the Landlock layer on its own (seccomp disabled
// through a test-only option): filesystem, TCP, exec, abstract UNIX sockets
// and signals are denied by Landlock's EACCES/EPERM.
func TestLandlockAlone(t *testing.T) {
	abi := landlockABI()
	if abi == 0 {
		t.Skip("no landlock on this kernel")
	}
	e := newEnv(t)
	before := e.accepted.Load()
	r := runPlain(t, e, "landlock")
	t.Logf("report: %+v", *r.Report)
	if r.Report.Seccomp {
		t.Fatal("seccomp applied in landlock-only mode")
	}
	expectErrno(t, r, unix.EACCES, "open_etc_passwd", "create_tmp_file", "exec_bin_true")
	if abi >= 4 {
		expectErrno(t, r, unix.EACCES, "dial_tcp_loopback")
	}
	if abi >= 6 {
		expectErrno(t, r, unix.EPERM, "dial_abstract_unix", "kill_parent_sig0")
	}
	time.Sleep(20 * time.Millisecond)
	if e.accepted.Load() != before || e.absAcc.Load() != 0 {
		t.Errorf("listeners accepted connections from the landlocked child")
	}
	if _, err := os.Stat(filepath.Join(e.tmp, "created-by-child")); err == nil {
		t.Errorf("landlocked child created a file")
	}
}

// TestLaunchedUnprepared: Restrict with Options.Launched refuses a process that PrepareLaunch did
// not prepare, with ErrNotLaunched, rather than leave it without its seccomp filter.
func TestLaunchedUnprepared(t *testing.T) {
	e := newEnv(t)
	attr, _ := ProcAttr()
	cmd := exec.Command(childBin, "-test.run=^$")
	cmd.Env = e.vars("launched-unprepared")
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ErrNotLaunched") {
		t.Fatalf("child says %q", out)
	}
}

// TestChildPanicAndExit: panics and os.Exit still work normally after Restrict.
func TestChildPanicAndExit(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		mode     string
		code     int
		inStderr string
	}{
		{"panic", 2, "panic: boom-in-sandbox"},
		{"exit7", 7, ""},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			attr, _ := ProcAttr()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, childBin, "-test.run=^$")
			cmd.Env = e.vars(tc.mode)
			cmd.SysProcAttr = attr
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatalf("want exit code %d, got %v\n%s", tc.code, err, stderr.String())
			}
			if ee.ExitCode() != tc.code {
				t.Fatalf("exit code %d (%v), want %d\nstderr:\n%s", ee.ExitCode(), ee, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.inStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.inStderr, stderr.String())
			}
			if tc.mode == "panic" && !strings.Contains(stderr.String(), "goroutine 1") {
				t.Errorf("panic traceback missing:\n%s", stderr.String())
			}
		})
	}
}

func TestPolicyAssembles(t *testing.T) {
	pol, names, err := seccomppolicy.Build(runtime.GOARCH, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pol.Assemble(); err != nil {
		t.Fatal(err)
	}
	forbidden := []string{"open", "openat", "openat2", "creat", "socket", "socketpair", "connect",
		"bind", "listen", "accept", "accept4", "execve", "execveat", "ptrace", "process_vm_readv",
		"process_vm_writev", "kill", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
		"bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "init_module", "finit_module",
		"kexec_load", "memfd_create", "io_uring_setup", "io_uring_enter", "io_uring_register",
		"fork", "vfork", "clone3", "mkdir", "mkdirat", "unlink", "unlinkat", "rename", "renameat2",
		"link", "linkat", "symlink", "symlinkat", "chmod", "fchmodat", "chown", "fchownat",
		"truncate", "ioctl", "seccomp", "prctl", "fcntl", "mmap", "mprotect", "clone", "tgkill"}
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	for _, f := range forbidden {
		if set[f] {
			t.Errorf("%s is allowed unconditionally", f)
		}
	}
	t.Logf("allowlist (%d): %s", len(names), strings.Join(names, " "))
}

func TestProbeAndProcAttr(t *testing.T) {
	for _, f := range Probe() {
		t.Logf("%-42s %-5v %s", f.Name, f.Available, f.Detail)
	}
	a, warns := ProcAttr()
	if a.Pdeathsig != syscall.SIGKILL {
		t.Error("Pdeathsig not SIGKILL")
	}
	if a.Credential == nil && os.Geteuid() == 0 {
		t.Error("no credential change as root")
	}
	for _, w := range warns {
		t.Logf("warning: %s", w)
	}
}

// The program compiled into enclaves is exactly what go-seccomp-bpf assembles from the policy,
// for any pid, and the generated files are up to date for every architecture.
func TestPrecompiledFilter(t *testing.T) {
	for _, pid := range []uint32{1, 77, 4194304} {
		want, wantNames, err := seccomppolicy.Program(runtime.GOARCH, pid)
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Clone(seccompFilter)
		for _, i := range seccompFilterPidAt {
			got[i].K = pid
		}
		if len(got) != len(want) {
			t.Fatalf("pid %d: %d instructions compiled in, the library assembles %d (run go generate)", pid, len(got), len(want))
		}
		for i := range want {
			if g := got[i]; g.Code != want[i].Op || g.Jt != want[i].Jt || g.Jf != want[i].Jf || g.K != want[i].K {
				t.Fatalf("pid %d: instruction %d is %+v, the library assembles %+v (run go generate)", pid, i, g, want[i])
			}
		}
		if !slices.Equal(seccompAllowed, wantNames) {
			t.Fatalf("allowed names differ from the policy's (run go generate)")
		}
	}
	for _, goarch := range seccomppolicy.Arches {
		want, err := seccomppolicy.Generate(goarch)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile("zfilter_linux_" + goarch + ".go")
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("zfilter_linux_%s.go is not what the policy generates (run go generate in internal/sandbox): %v", goarch, err)
		}
	}
}

// Enclaves must not link the policy library (their trusted computing base): only the program
// it assembled ahead of time.
func TestEnclaveDoesNotLinkPolicyLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/asylo-go/asylo/enclave").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/elastic/go-seccomp-bpf") || strings.HasPrefix(dep, "github.com/asylo-go/asylo/internal/sandbox/seccomppolicy") {
			t.Errorf("package enclave links %s", dep)
		}
	}
}

// TestStartDirect: children of a root host started with Start have no user namespace of their
// own, each has its own pid namespace, and all share one network namespace that is not the
// host's and holds nothing but a loopback device. Only the thread that starts them left the
// host's network namespace.
func TestStartDirect(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("direct starts are for root hosts; others use ProcAttr, tested by TestSandboxedChild")
	}
	d := probeDirect()
	if !d.ok || d.net == nil {
		t.Fatalf("root on a machine with every namespace, yet direct starts are off (%+v)", d)
	}
	e := newEnv(t)
	// A start that fails reports its error and leaves the starting thread serving.
	if _, err := Start(exec.Command("/nonexistent/asylo-start-test")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Start of a missing program: %v, want ErrNotExist", err)
	}
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
	}
	var kids []child
	for range 2 {
		cmd := exec.Command(childBin, "-test.run=^$")
		cmd.Env = e.vars("wait-stdin")
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		warns, err := Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if len(warns) != 0 {
			t.Errorf("warnings: %q", warns)
		}
		kids = append(kids, child{cmd, in})
	}
	defer func() {
		for _, k := range kids {
			k.stdin.Close()
			if err := k.cmd.Wait(); err != nil {
				t.Errorf("child: %v", err)
			}
		}
	}()
	ns := func(pid int, kind string) string {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	host := func(kind string) string { return ns(os.Getpid(), kind) }
	a, b := kids[0].cmd.Process.Pid, kids[1].cmd.Process.Pid
	if got := ns(a, "user"); got != host("user") {
		t.Errorf("child has user namespace %s, want the host's %s", got, host("user"))
	}
	if ns(a, "pid") == ns(b, "pid") || ns(a, "pid") == host("pid") {
		t.Errorf("pid namespaces: %s, %s, host %s: want one each", ns(a, "pid"), ns(b, "pid"), host("pid"))
	}
	if ns(a, "net") != ns(b, "net") || ns(a, "net") == host("net") {
		t.Errorf("network namespaces: %s, %s, host %s: want one shared, not the host's", ns(a, "net"), ns(b, "net"), host("net"))
	}
	dev, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", a))
	if err != nil {
		t.Fatal(err)
	}
	// Two header lines, then one line per device.
	if lines := strings.Split(strings.TrimSpace(string(dev)), "\n"); len(lines) != 3 || !strings.HasPrefix(strings.TrimSpace(lines[2]), "lo:") {
		t.Errorf("shared network namespace has devices other than lo:\n%s", dev)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	away := 0
	for _, task := range tasks {
		l, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
		if err == nil && l != host("net") {
			away++
		}
	}
	if away != 1 {
		t.Errorf("%d of the host's %d threads are outside its network namespace, want 1 (Start's)", away, len(tasks))
	}
}

// TestUnprivilegedHost runs this package's main end-to-end tests again in a host that is not
// root, as most developers' are: Start then gives each child a user namespace of its own
// (ProcAttr), and the sandbox must hold all the same. CI runs as root, so without this the
// unprivileged path would go untested.
func TestUnprivilegedHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("already unprivileged: the other tests cover this host")
	}
	const uid = 4242 // not 65534: the host and its children must be different users
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, childBin, "-test.run=^(TestSandboxedChild|TestStartDirect|TestChildPanicAndExit)$", "-test.v")
	cmd.Dir = os.TempDir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if bytes.Contains(out, []byte("user namespace left out")) {
		// Unprivileged user namespaces are off here (sysctls, AppArmor): such a host loses
		// isolation by design, and says so; that is not what this test is about.
		t.Skipf("uid %d cannot create user namespaces on this machine:\n%s", uid, out)
	}
	if err != nil {
		t.Fatalf("tests as uid %d: %v\n%s", uid, err, out)
	}
	for _, want := range []string{"--- PASS: TestSandboxedChild", "--- PASS: TestChildPanicAndExit", "--- SKIP: TestStartDirect"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("tests as uid %d: no %q in\n%s", uid, want, out)
		}
	}
	if strings.Contains(string(out), "warning:") {
		t.Errorf("isolation left out for an unprivileged host:\n%s", out)
	}
}

// The Launch stage allows clone with seccomppolicy's namespace flags; the spawner clones with
// this package's.
func TestSpawnNamespaceFlags(t *testing.T) {
	if SpawnNamespaceFlags != seccomppolicy.SpawnNamespaceFlags {
		t.Fatalf("sandbox.SpawnNamespaceFlags %#x, seccomppolicy's %#x", SpawnNamespaceFlags, seccomppolicy.SpawnNamespaceFlags)
	}
}
