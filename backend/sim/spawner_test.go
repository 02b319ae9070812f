//go:build linux

package sim_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/internal/conformance"
	"github.com/asylo-go/asylo/internal/enclavetest"
	"github.com/asylo-go/asylo/internal/sandbox"
	"github.com/asylo-go/asylo/internal/wire"
)

// waitPrestarted waits for be's prestarted process or spawner other than not and returns its pid.
func waitPrestarted(t *testing.T, be *sim.Backend, not int) int {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if pid := sim.PrestartedPid(be); pid != 0 && pid != not {
			return pid
		}
	}
	t.Fatal("no process prestarted")
	return 0
}

func nsLink(t *testing.T, pid int, ns string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestPrestartSpawner: where the sandbox has a user namespace, a Backend keeps one spawner that
// starts every enclave (loads at once included) as the host's child, pid 1 of namespaces of its
// own, without capabilities; enclaves outlive it, and a load after its death waits for the
// spawner the back-end prepares instead, and is confined from its start as before.
func TestPrestartSpawner(t *testing.T) {
	skipUnlessSpawner(t)
	ctx := context.Background()
	path := testEnclave(t)
	be := sim.New()
	defer be.Close()
	spawner := waitPrestarted(t, be, 0)
	const n = 4
	encs := make([]*host.Enclave, n)
	var wg sync.WaitGroup
	for i := range encs {
		wg.Go(func() {
			e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true})
			if err != nil {
				t.Error(err)
				return
			}
			encs[i] = e
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if got := sim.PrestartedPid(be); got != spawner {
		t.Fatalf("spawner %d replaced by %d after %d loads", spawner, got, n)
	}
	seen := map[string]int{}
	for _, e := range encs {
		pid, _ := e.Process()
		if pid == spawner {
			t.Fatalf("enclave runs in the spawner %d itself", pid)
		}
		if ppid := statusField(t, pid, "PPid:"); ppid[0] != os.Getpid() {
			t.Errorf("enclave %d's parent is %d, want the host %d", pid, ppid[0], os.Getpid())
		}
		if nspid := statusField(t, pid, "NSpid:"); nspid[len(nspid)-1] != 1 {
			t.Errorf("enclave %d is pid %d in its pid namespace, want 1", pid, nspid[len(nspid)-1])
		}
		for _, ns := range []string{"user", "net"} {
			if got, want := nsLink(t, pid, ns), nsLink(t, spawner, ns); got != want {
				t.Errorf("enclave %d in %s namespace %s, the spawner in %s", pid, ns, got, want)
			}
		}
		// Its own pid, mount, IPC, UTS and cgroup namespaces: not the spawner's, nor another
		// enclave's.
		for _, ns := range []string{"pid", "mnt", "ipc", "uts", "cgroup"} {
			l := nsLink(t, pid, ns)
			if l == nsLink(t, spawner, ns) {
				t.Errorf("enclave %d shares the spawner's %s namespace", pid, ns)
			}
			if other, dup := seen[l]; dup {
				t.Errorf("enclaves %d and %d share %s", other, pid, l)
			}
			seen[l] = pid
		}
		checkIsolated(t, e)
	}
	probeRefusesAll(t, encs[0])

	// The spawner dies: its enclaves go on, and the next load waits for a new spawner, which
	// serves it and the loads after it.
	if err := syscall.Kill(spawner, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !sim.Exited(spawner); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("spawner did not die")
		}
	}
	for _, e := range encs {
		if got, err := e.Call(ctx, "echo", []byte("alive")); err != nil || string(got) != "alive" {
			t.Fatalf("enclave after its spawner died: %q, %v", got, err)
		}
	}
	after, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	defer after.Destroy(ctx, nil)
	if mode := earlySeccomp(t, after); mode != 2 {
		t.Errorf("load after the spawner died: seccomp mode %d before the runtime's initialisation, want 2 (not a direct start)", mode)
	}
	next := waitPrestarted(t, be, spawner)
	e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx, nil)
	pid, _ := e.Process()
	nextNS := nsLink(t, next, "user")
	if nsLink(t, pid, "user") != nextNS {
		t.Errorf("enclave %d not started by the new spawner %d", pid, next)
	}

	// A spawner that dies with a request unread started nothing (its socket says so with
	// ECONNRESET): the load starts the enclave directly instead of failing.
	if err := syscall.Kill(next, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	type loaded struct {
		e   *host.Enclave
		err error
	}
	got := make(chan loaded, 1)
	go func() {
		e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true})
		got <- loaded{e, err}
	}()
	time.Sleep(100 * time.Millisecond) // the request is sent, and waits in the stopped spawner's socket
	if err := syscall.Kill(next, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	l := <-got
	if l.err != nil {
		t.Fatalf("load while the spawner died: %v", l.err)
	}
	defer l.e.Destroy(ctx, nil)
	if pid, _ := l.e.Process(); nsLink(t, pid, "user") == nextNS {
		t.Errorf("enclave %d started by the spawner that died", pid)
	}
	if got, err := l.e.Call(ctx, "echo", []byte("y")); err != nil || string(got) != "y" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	for _, e := range encs {
		if err := e.Destroy(ctx, nil); err != nil {
			t.Error(err)
		}
	}
}

// skipUnlessSpawner skips a test where the back-end prestarts without a spawner (exec mode).
func skipUnlessSpawner(t *testing.T) {
	t.Helper()
	attr, warns := sandbox.ProcAttr()
	for _, w := range warns {
		t.Log(w) // TestUnprivilegedHost looks for "user namespace left out"
	}
	if attr.Cloneflags&syscall.CLONE_NEWUSER == 0 || attr.Cloneflags&sandbox.SpawnNamespaceFlags != sandbox.SpawnNamespaceFlags {
		t.Skip("no user namespace or not every namespace here: Prestart uses exec mode (TestPrestart/exec)")
	}
}

// childrenIn lists this process's children (zombies included) in user namespace ns.
func childrenIn(t *testing.T, ns string) []int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		if os.IsNotExist(err) && task.Name() == strconv.Itoa(os.Getpid()) {
			t.Skip("this kernel lists no children (CONFIG_PROC_CHILDREN), which the test needs to look independently")
		}
		for _, f := range strings.Fields(string(b)) {
			var pid int
			fmt.Sscan(f, &pid)
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); err == nil && l == ns {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// TestSpawnerFailuresLeaveNothing: an enclave whose exec fails in the spawner (an argument
// longer than the kernel takes) fails its load and leaves no zombie, and the spawner goes on
// serving; a spawner that dies between starting an enclave and reporting it fails the load
// without hanging (the enclave holds the pipes of its standard streams), and the enclave it
// started is killed and reaped. Both are the host's children (CLONE_PARENT), which only the host
// can reap, and whose pids it was never told. Both ways of finding them are tested: the kernel's
// lists of children, and the scan of /proc for kernels without them.
func TestSpawnerFailuresLeaveNothing(t *testing.T) {
	skipUnlessSpawner(t)
	t.Run("children files", spawnerFailures)
	// As on a kernel without CONFIG_PROC_CHILDREN, where the host scans /proc instead.
	t.Run("proc scan", func(t *testing.T) {
		defer sim.ScanProcForChildren()()
		spawnerFailures(t)
	})
}

func spawnerFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path := testEnclave(t)
	// A child of the host's own, outside the spawner's namespace: not the reaping's to kill.
	bystander := exec.Command("sleep", "60")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if sim.Exited(bystander.Process.Pid) {
			t.Errorf("the host's own child %d was killed", bystander.Process.Pid)
		}
		bystander.Process.Kill()
		bystander.Wait()
	}()
	t.Run("exec fails", func(t *testing.T) {
		be := sim.New()
		defer be.Close()
		spawner := waitPrestarted(t, be, 0)
		ns := nsLink(t, spawner, "user")
		if _, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true, Args: []string{strings.Repeat("x", 200<<10)}}); err == nil {
			t.Fatal("a load with a 200 KiB argument succeeded")
		} else {
			t.Log(err)
		}
		if left := childrenIn(t, ns); len(left) != 1 || left[0] != spawner {
			t.Errorf("children in the spawner's user namespace: %v, want only the spawner %d", left, spawner)
		}
		e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Destroy(ctx, nil)
		if pid, _ := e.Process(); nsLink(t, pid, "user") != ns {
			t.Errorf("the next load did not go to the spawner %d", spawner)
		}
	})
	t.Run("spawner dies after fork", func(t *testing.T) {
		defer sim.SpawnerDiesAfterFork()()
		be := sim.New()
		defer be.Close()
		spawner := waitPrestarted(t, be, 0)
		ns := nsLink(t, spawner, "user")
		var out conformance.SyncBuffer
		if _, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true, Stdout: &out}); err == nil {
			t.Fatal("the load succeeded")
		} else {
			t.Log(err)
		}
		if left := childrenIn(t, ns); len(left) != 0 {
			t.Errorf("left in the dead spawner's user namespace: %v", left)
		}
	})
}

// TestLaunchEnvCannotMoveDescriptors: an environment that names the launch's own descriptor
// variables does not redirect the enclave, however it is started (the enclave's runtime takes
// the first of duplicate variables, a direct start's os/exec the last).
func TestLaunchEnvCannotMoveDescriptors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := []string{wire.EnvChannel + "=99", wire.EnvAttention + "=98", wire.EnvConnPass + "=97", wire.EnvImage + "=96"}
	for name, opts := range map[string][]sim.Option{"direct": {sim.Direct()}, "prestart": nil} {
		t.Run(name, func(t *testing.T) {
			be := sim.New(opts...)
			defer be.Close()
			if name == "prestart" {
				waitPrestarted(t, be, 0)
			}
			e, err := host.Load(ctx, host.LoadConfig{Path: testEnclave(t), Backend: be, Debug: true, Env: env})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Destroy(ctx, nil)
			if got, err := e.Call(ctx, "echo", []byte("fd")); err != nil || string(got) != "fd" {
				t.Fatalf("echo: %q, %v", got, err)
			}
		})
	}
}

// TestEnclaveOutlivesLoadingThread: an enclave's parent-death signal is tied to the thread that
// created it, and the Go runtime ends a thread whose locked goroutine exits. Loads must not
// leave enclaves at the mercy of the host goroutine that made them. (For a direct load by a host
// that is not root this failed before sandbox.StartStable. Through a spawner the enclave is tied
// to the thread that started the spawner, in the background: the subtest checks only that a
// load from a locked thread is unaffected; which thread started the spawner, no test controls.)
func TestEnclaveOutlivesLoadingThread(t *testing.T) {
	ctx := context.Background()
	path := testEnclave(t)
	for name, be := range map[string]*sim.Backend{"direct": sim.New(sim.Direct()), "prestart": sim.New()} {
		t.Run(name, func(t *testing.T) {
			defer be.Close()
			if name == "prestart" {
				waitPrestarted(t, be, 0)
			}
			loaded := make(chan *host.Enclave, 1)
			go func() {
				runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
				e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true})
				if err != nil {
					t.Error(err)
				}
				loaded <- e
			}()
			e := <-loaded
			if e == nil {
				t.FailNow()
			}
			defer e.Destroy(ctx, nil)
			time.Sleep(50 * time.Millisecond) // the goroutine returns and its thread exits
			if got, err := e.Call(ctx, "echo", []byte("still here")); err != nil || string(got) != "still here" {
				t.Fatalf("enclave after its loading thread ended: %q, %v", got, err)
			}
		})
	}
}

// TestUnprivilegedHost runs the tests of prestarting and of enclaves' lifetimes again in a host
// that is not root, as most developers' are: every directly started enclave then needs a user
// namespace, and the spawner one of its own. CI runs as root, so without this the unprivileged
// path would go untested.
func TestUnprivilegedHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("already unprivileged: the other tests cover this host")
	}
	const uid = 4242 // not 65534: the host and its enclaves must be different users
	dir, err := os.MkdirTemp("", "asylo-sim-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	// The other user cannot build enclaves (enclavetest.EnvPrebuilt).
	bin := filepath.Join(dir, "sim.test")
	for src, dst := range map[string]string{os.Args[0]: bin, testEnclave(t): filepath.Join(dir, "testenclave.enclave")} {
		if err := copyExecutable(src, dst); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	tests := []string{"TestPrestartSpawner", "TestFirstLoadConfined", "TestSpawnerFailuresLeaveNothing", "TestLaunchEnvCannotMoveDescriptors", "TestEnclaveOutlivesLoadingThread", "TestNamespacesAndCredentials", "TestEnclaveDiesWithHost"}
	cmd := exec.CommandContext(ctx, bin, "-test.run=^("+strings.Join(tests, "|")+")$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), enclavetest.EnvPrebuilt+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "user namespace left out") {
		t.Skipf("uid %d cannot create user namespaces on this machine:\n%s", uid, out)
	}
	if err != nil {
		t.Fatalf("tests as uid %d: %v\n%s", uid, err, out)
	}
	for _, name := range tests {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Errorf("tests as uid %d: %s did not pass:\n%s", uid, name, out)
		}
	}
}

func copyExecutable(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// TestUnreachableBackendEndsSpawner: a Backend that nothing refers to any more ends its
// spawner, so that code making a Backend per load does not gather idle processes.
func TestUnreachableBackendEndsSpawner(t *testing.T) {
	pid := func() int {
		be := sim.New()
		return waitPrestarted(t, be, 0)
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		runtime.GC()
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			return // killed and reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("spawner %d still runs after its Backend became unreachable", pid)
		}
	}
}
