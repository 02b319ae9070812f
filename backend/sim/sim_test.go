//go:build linux

package sim_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asylo-go/asylo/attest"
	simev "github.com/asylo-go/asylo/attest/sim"
	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/backend/earlyinit"
	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/identity/signing"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/internal/conformance"
	"github.com/asylo-go/asylo/internal/enclavetest"
	"github.com/asylo-go/asylo/internal/testenclave"
)

func TestMain(m *testing.M) {
	if path := os.Getenv("ASYLO_TEST_HOST_PROCESS"); path != "" {
		hostProcess(path)
		return
	}
	code := m.Run()
	enclavetest.Cleanup()
	os.Exit(code)
}

func testEnclave(t testing.TB) string {
	return enclavetest.Build(t, "./internal/testenclave/cmd/testenclave")
}

// TestConformance runs the suite on the default back-end: one for all loads, whose enclaves its
// spawner starts, under Landlock and seccomp from their first instruction.
func TestConformance(t *testing.T) {
	runConformance(t, true)
}

// The same suite over shared memory: the protocol must behave identically on either channel.
func TestConformanceSwitchless(t *testing.T) {
	runConformance(t, true, sim.Switchless())
}

// The suite again with enclaves started directly (sim.Direct).
func TestConformanceDirect(t *testing.T) {
	runConformance(t, false, sim.Direct())
}

func runConformance(t *testing.T, confined bool, opts ...sim.Option) {
	path := testEnclave(t)
	be := sim.New(opts...)
	t.Cleanup(func() { be.Close() })
	conformance.Run(t, conformance.Target{
		Load: func(ctx context.Context, cfg host.LoadConfig) (*host.Enclave, error) {
			cfg.Path, cfg.Backend, cfg.Debug = path, be, true
			return host.Load(ctx, cfg)
		},
		Isolated:          true,
		ConfinedFromStart: confined,
	})
}

// TestFirstLoadConfined: the first load of a new Backend waits for the spawner that New started
// preparing (made slow here), rather than starting its enclave directly, and with Direct it
// starts directly and says so in the load's log.
func TestFirstLoadConfined(t *testing.T) {
	path := testEnclave(t)
	defer sim.DelayPrestart(300 * time.Millisecond)()
	for _, c := range []struct {
		name     string
		opts     []sim.Option
		confined bool
	}{{"default", nil, true}, {"direct", []sim.Option{sim.Direct()}, false}} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			be := sim.New(c.opts...)
			defer be.Close()
			var log bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&log, nil))
			e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Destroy(ctx, nil)
			if mode := earlySeccomp(t, e); (mode == 2) != c.confined {
				t.Errorf("seccomp mode %d before the runtime's initialisation; want confined=%v", mode, c.confined)
			}
			if warned := strings.Contains(log.String(), "started directly (sim.Direct)"); warned == c.confined {
				t.Errorf("direct start logged: %v, want %v; log:\n%s", warned, !c.confined, log.String())
			}
		})
	}
}

// earlySeccomp returns the seccomp mode the test enclave's backend/earlyinit saw: 2 if the
// process was confined before the enclave runtime's initialisation.
func earlySeccomp(t *testing.T, e *host.Enclave) int {
	t.Helper()
	return callJSON[earlyinit.Result](t, e, "early", []byte("{}")).Seccomp
}

// callJSON calls method with in and decodes its JSON answer.
func callJSON[T any](t *testing.T, e *host.Enclave, method string, in []byte) T {
	t.Helper()
	var r T
	out, err := e.Call(context.Background(), method, in)
	if err == nil {
		err = json.Unmarshal(out, &r)
	}
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return r
}

// TestConcurrentLoadsWait: loads at once on a new Backend all wait for a prestarted process,
// also in exec mode, where each uses one up and the others wait for the next; none starts
// directly.
func TestConcurrentLoadsWait(t *testing.T) {
	path := testEnclave(t)
	defer sim.DelayPrestart(100 * time.Millisecond)()
	for _, mode := range []string{"spawn", "exec"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "exec" {
				defer sim.PrestartExecOnly()()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			be := sim.New()
			defer be.Close()
			var log conformance.SyncBuffer
			logger := slog.New(slog.NewTextHandler(&log, nil))
			errs := make(chan error, 3)
			for range 3 {
				go func() {
					e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true, Logger: logger})
					if err != nil {
						errs <- err
						return
					}
					defer e.Destroy(ctx, nil)
					var r earlyinit.Result
					out, err := e.Call(ctx, "early", []byte("{}"))
					if err == nil {
						err = json.Unmarshal(out, &r)
					}
					if err == nil && r.Seccomp != 2 {
						err = fmt.Errorf("seccomp mode %d before the runtime's initialisation", r.Seccomp)
					}
					errs <- err
				}()
			}
			for range 3 {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			if strings.Contains(log.String(), "started directly") {
				t.Errorf("a load started directly:\n%s", log.String())
			}
		})
	}
}

// TestCloseWhileWaiting: a load waiting for the prestarted process of a Backend that is closed
// meanwhile fails with ErrClosed; it does not start its enclave directly.
func TestCloseWhileWaiting(t *testing.T) {
	path := testEnclave(t)
	defer sim.DelayPrestart(500 * time.Millisecond)()
	be := sim.New()
	time.AfterFunc(100*time.Millisecond, func() { be.Close() })
	e, err := host.Load(context.Background(), host.LoadConfig{Path: path, Backend: be, Debug: true})
	if err == nil {
		e.Destroy(context.Background(), nil)
	}
	if !errors.Is(err, sim.ErrClosed) {
		t.Fatalf("load on a Backend closed while it waited: %v, want ErrClosed", err)
	}
}

// TestPrestart: the second load runs in the process prepared after the first, which is as
// isolated as a process started for it, relays standard streams and reports its exit. In spawn
// mode (the default where the sandbox has a user namespace) the prepared process starts the
// enclave as the host's child in a new pid namespace; in exec mode it becomes the enclave.
func TestPrestart(t *testing.T) {
	t.Run("spawn", func(t *testing.T) { testPrestart(t, false) })
	t.Run("exec", func(t *testing.T) {
		defer sim.PrestartExecOnly()()
		testPrestart(t, true)
	})
}

func testPrestart(t *testing.T, execMode bool) {
	ctx := context.Background()
	be := sim.New(sim.Switchless())
	defer be.Close()
	path := testEnclave(t)
	e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Destroy(ctx, nil); err != nil {
		t.Fatal(err)
	}
	ready := waitPrestarted(t, be, 0)
	readyNS := nsLink(t, ready, "user")
	// The waiting process is not traceable by other processes of the sandbox's uid.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", ready)); err == nil {
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/mem", ready), &st) == nil && st.Uid != 0 {
			t.Errorf("prestarted process %d is dumpable (/proc/pid/mem owned by uid %d)", ready, st.Uid)
		}
	}
	var out conformance.SyncBuffer
	e, err = host.Load(ctx, host.LoadConfig{Path: path, Backend: be, Debug: true, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := e.Process()
	if execMode {
		if pid != ready {
			t.Fatalf("enclave runs as pid %d, the prestarted process was %d", pid, ready)
		}
	} else {
		if pid == ready {
			t.Fatalf("enclave runs in the prestarted process %d itself", pid)
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); err != nil || ns != readyNS {
			t.Fatalf("enclave %d in user namespace %s (%v), the prestarted process %d in %s", pid, ns, err, ready, readyNS)
		}
		if ppid := statusField(t, pid, "PPid:"); ppid[0] != os.Getpid() {
			t.Errorf("enclave's parent is %d, want the host %d", ppid[0], os.Getpid())
		}
	}
	if nspid := statusField(t, pid, "NSpid:"); nspid[len(nspid)-1] != 1 {
		t.Errorf("enclave is pid %d in its pid namespace, want 1", nspid[len(nspid)-1])
	}
	checkIsolated(t, e)
	// Everything a directly started enclave refuses, this one refuses too (the conformance
	// suite's probe), although it only finished a sandbox the prestarted process began.
	probeRefusesAll(t, e)
	// It holds the same kinds of descriptors as an enclave started directly: nothing of the
	// prestarted process (its control socket, the host program) leaked through the exec. (A
	// directly started enclave's Go runtime also holds the cgroup CPU limit files it opened
	// before the sandbox; a prestarted one's runtime starts under seccomp and cannot open them:
	// docs/sandbox.md, "Prestarted processes".)
	var out2 conformance.SyncBuffer
	dbe := sim.New(sim.Switchless(), sim.Direct())
	defer dbe.Close()
	direct, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: dbe, Debug: true, Stdout: &out2})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Destroy(ctx, nil)
	dpid, _ := direct.Process()
	isCgroup := func(k string) bool { return strings.HasPrefix(k, "/sys/fs/cgroup/") }
	if got, want := fdKinds(t, pid), slices.DeleteFunc(fdKinds(t, dpid), isCgroup); !slices.Equal(got, want) {
		t.Errorf("prestarted enclave's descriptors %v, a directly started one's %v", got, want)
	}
	if got, err := e.Call(ctx, "echo", []byte("hi")); err != nil || string(got) != "hi" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	if _, err := e.Call(ctx, "print", []byte("to stdout")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Call(ctx, "exit", []byte("3")); !errors.Is(err, host.ErrEnclaveLost) {
		t.Fatalf("exit: %v", err)
	}
	var le *host.LostError
	if !errors.As(e.Err(), &le) || le.Exit == nil || le.Exit.Code != 3 {
		t.Fatalf("lost enclave: %v, want exit status 3", e.Err())
	}
	if !strings.Contains(out.String(), "to stdout") {
		t.Errorf("stdout relayed %q", out.String())
	}
}

// TestPrestartFailureIsLogged: a prestarted process that cannot prepare the sandbox says why,
// the back-end logs it once, and enclaves start directly meanwhile.
func TestPrestartFailureIsLogged(t *testing.T) {
	defer sim.FailPrestart("injected failure")()
	ctx := context.Background()
	be := sim.New()
	defer be.Close()
	var logs conformance.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	load := func() {
		e, err := host.Load(ctx, host.LoadConfig{Path: testEnclave(t), Backend: be, Debug: true, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := e.Call(ctx, "echo", []byte("x")); err != nil || string(got) != "x" {
			t.Fatalf("echo: %q, %v", got, err)
		}
		e.Destroy(ctx, nil)
	}
	load() // starts preparing a process, which fails
	for deadline := time.Now().Add(20 * time.Second); !sim.PrestartFailed(be); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the prestarted process did not fail")
		}
	}
	load()
	load()
	if n := strings.Count(logs.String(), "injected failure"); n != 1 {
		t.Errorf("failure logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestPrestartDynamicImage: an executable that needs a program interpreter (a cgo build) cannot
// start under the seccomp filter a prestarted process installs before it knows its image (the
// interpreter must open the libraries): such an image is started directly, and the prestarted
// process waits for the next static one.
func TestPrestartDynamicImage(t *testing.T) {
	ctx := context.Background()
	dyn := filepath.Join(t.TempDir(), "dynamic.enclave")
	cmd := exec.Command("go", "build", "-o", dyn, "./internal/testenclave/cmd/testenclave")
	cmd.Dir = enclavetest.ModuleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for path, want := range map[string]bool{dyn: false, testEnclave(t): true} {
		im, err := sim.LoadImage(path)
		if err != nil {
			t.Fatal(err)
		}
		if im.Static != want {
			t.Errorf("%s: Static = %v, want %v", filepath.Base(path), im.Static, want)
		}
		im.Close()
	}
	be := sim.New()
	defer be.Close()
	// Signed, it is refused outside debug mode: its measurement does not cover what it loads.
	key, _ := signing.GenerateKey(nil)
	src, err := os.ReadFile(dyn)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := signing.Sign(key, identity.Measurement(sha256.Sum256(src)), 1, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := mf.Marshal()
	if err := os.WriteFile(signing.ManifestPath(dyn), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Load(ctx, host.LoadConfig{Path: dyn, Backend: be}); !errors.Is(err, backend.ErrNotEnclave) {
		t.Fatalf("signed dynamic image, not debug: %v, want ErrNotEnclave", err)
	}
	os.Remove(signing.ManifestPath(dyn)) // unsigned from here on, loaded in debug mode
	first, err := host.Load(ctx, host.LoadConfig{Path: testEnclave(t), Backend: be, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	first.Destroy(ctx, nil)
	ready := waitPrestarted(t, be, 0)
	e, err := host.Load(ctx, host.LoadConfig{Path: dyn, Backend: be, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx, nil)
	if pid, _ := e.Process(); pid == ready {
		t.Fatalf("the dynamic image runs in the prestarted process %d", ready)
	}
	if got, err := e.Call(ctx, "echo", []byte("dyn")); err != nil || string(got) != "dyn" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	checkIsolated(t, e)
	probeRefusesAll(t, e)
	if sim.PrestartedPid(be) != ready {
		t.Errorf("the prestarted process %d was used or lost", ready)
	}
}

// TestInheritedDescriptorsClosed: a descriptor the host process holds without close-on-exec is
// inherited by every child it starts; the enclave runtime closes it before the application runs.
func TestInheritedDescriptorsClosed(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETFD, 0); err != nil {
		t.Fatal(err)
	}
	leaked, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, be := range map[string]*sim.Backend{"sandboxed": sim.New(), "switchless": sim.New(sim.Switchless())} {
		e, err := host.Load(ctx, host.LoadConfig{Path: testEnclave(t), Backend: be, Debug: true})
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := e.Process()
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range ents {
			if target, _ := os.Readlink(filepath.Join(dir, ent.Name())); target == leaked {
				t.Errorf("%s: the enclave holds the host's %s as fd %s", name, leaked, ent.Name())
			}
		}
		if got, err := e.Call(ctx, "echo", []byte("x")); err != nil || string(got) != "x" {
			t.Errorf("%s: echo: %q, %v", name, got, err)
		}
		e.Destroy(ctx, nil)
	}
}

// The enclave process lives in its own namespaces and runs unprivileged, seen from the host.
func TestNamespacesAndCredentials(t *testing.T) {
	ctx := context.Background()
	for name, be := range map[string]*sim.Backend{"default": sim.New(), "direct": sim.New(sim.Direct())} {
		t.Run(name, func(t *testing.T) {
			defer be.Close()
			e, err := host.Load(ctx, host.LoadConfig{Path: testEnclave(t), Backend: be, Debug: true})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Destroy(ctx, nil)
			checkIsolated(t, e)
		})
	}
}

func checkIsolated(t *testing.T, e *host.Enclave) {
	t.Helper()
	pid, ok := e.Process()
	if !ok {
		t.Fatal("sim enclave has no process id")
	}
	for _, ns := range []string{"user", "pid", "mnt", "net", "ipc", "uts"} {
		mine, err1 := os.Readlink("/proc/self/ns/" + ns)
		theirs, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err1 != nil || err2 != nil {
			t.Fatalf("reading %s namespace links: %v %v", ns, err1, err2)
		}
		// A root host starts enclaves directly without a user namespace (sandbox.Start): they
		// are uid 65534 without capabilities outside too, which the checks below assert.
		if mine == theirs && !(ns == "user" && os.Geteuid() == 0) {
			t.Errorf("enclave shares the host's %s namespace (%s)", ns, mine)
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && (f[0] == "Uid:" || f[0] == "Gid:") && slices.Contains(f[1:], "0"):
			t.Errorf("enclave runs as root (real, effective, saved or filesystem id): %s", line)
		case len(f) > 1 && strings.HasPrefix(f[0], "Cap") && f[0] != "CapBnd:" && strings.Trim(f[1], "0") != "":
			t.Errorf("enclave has capabilities: %s", line)
		case len(f) > 1 && f[0] == "Seccomp:" && f[1] != "2":
			t.Errorf("enclave not under a seccomp filter: %s", line)
		case len(f) > 1 && f[0] == "NoNewPrivs:" && f[1] != "1":
			t.Errorf("no_new_privs not set: %s", line)
		}
	}
}

// What runs is what was measured: replacing the file after load changes nothing in the running
// enclave, and the identity is the hash of the bytes loaded.
func TestMeasurementIsOfExecutedBytes(t *testing.T) {
	src, err := os.ReadFile(testEnclave(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "e.enclave")
	if err := os.WriteFile(path, src, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e, err := host.Load(ctx, host.LoadConfig{Path: path, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx, nil)
	if want := identity.Measurement(sha256.Sum256(src)); e.Identity().Measurement != want {
		t.Errorf("measurement %s, want sha256 of the file %s", e.Identity().Measurement, want)
	}
	pid, _ := e.Process()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || !strings.HasPrefix(exe, "/memfd:asylo-enclave") {
		t.Errorf("enclave executes %q (%v), want the sealed memfd", exe, err)
	}
	// Overwrite the file: the running enclave is unaffected.
	os.WriteFile(path, []byte("not an enclave any more"), 0o755)
	if out, err := e.Call(ctx, "echo", []byte("still me")); err != nil || string(out) != "still me" {
		t.Errorf("after replacing the file: %q, %v", out, err)
	}
}

func TestLoadErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script")
	os.WriteFile(notELF, []byte("#!/bin/sh\necho hi\n"), 0o755)
	// The test enclave, marked as built for another architecture (e_machine, offset 18).
	foreign := filepath.Join(dir, "foreign")
	img, err := os.ReadFile(testEnclave(t))
	if err != nil {
		t.Fatal(err)
	}
	other := elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		other = elf.EM_X86_64
	}
	binary.LittleEndian.PutUint16(img[18:], uint16(other))
	os.WriteFile(foreign, img, 0o755)
	goTool, err := exec.LookPath("go") // a Go program that does not use asylo
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want error
		says string
	}{
		{filepath.Join(dir, "missing"), fs.ErrNotExist, ""},
		{notELF, backend.ErrNotEnclave, "not an ELF executable"},
		{foreign, backend.ErrNotEnclave, "is built for"},
		{dir, backend.ErrNotEnclave, "not a regular file"},
		{"/bin/true", backend.ErrNotEnclave, "is not a Go program"},
		{goTool, backend.ErrNotEnclave, "is a Go program that does not use github.com/asylo-go/asylo"},
		{testEnclave(t), backend.ErrUnsigned, ""}, // not debug, no manifest
	} {
		_, err := host.Load(ctx, host.LoadConfig{Path: tc.path, Debug: tc.want != backend.ErrUnsigned})
		if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.says) {
			t.Errorf("Load(%s) = %v, want %v saying %q", tc.path, err, tc.want, tc.says)
		}
	}
}

// hostProcess is a host that loads an enclave, reports its pid, and waits to be killed. With
// ASYLO_TEST_HOST_PRESTART set, the enclave it reports is started by a prestarted process.
func hostProcess(path string) {
	ctx := context.Background()
	be := sim.New(sim.Direct())
	if os.Getenv("ASYLO_TEST_HOST_PRESTART") != "" {
		be.Close()
		be = sim.New()
		first, err := host.Load(ctx, host.LoadConfig{Path: path, Debug: true, Backend: be})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		first.Destroy(ctx, nil)
		for deadline := time.Now().Add(20 * time.Second); sim.PrestartedPid(be) == 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				fmt.Println("error: no prestarted process")
				os.Exit(1)
			}
		}
	}
	e, err := host.Load(ctx, host.LoadConfig{Path: path, Debug: true, Backend: be})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	pid, _ := e.Process()
	fmt.Println(pid)
	select {}
}

// If the host process dies, its enclaves die with it: no orphan keeps running with secrets.
func TestEnclaveDiesWithHost(t *testing.T) {
	t.Run("direct", func(t *testing.T) { enclaveDiesWithHost(t, false) })
	t.Run("prestarted", func(t *testing.T) { enclaveDiesWithHost(t, true) })
}

func enclaveDiesWithHost(t *testing.T, prestart bool) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ASYLO_TEST_HOST_PROCESS="+testEnclave(t))
	if prestart {
		cmd.Env = append(cmd.Env, "ASYLO_TEST_HOST_PRESTART=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscan(out, &pid); err != nil || pid <= 0 {
		cmd.Process.Kill()
		t.Fatalf("host process did not report an enclave pid: %v", err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("enclave %d not running: %v", pid, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("enclave %d still alive 10s after its host was killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Over shared memory the enclave's last message (the FINALIZE result) must not be lost when the
// process exits right after writing it.
func TestSwitchlessDestroyDeliversFinalize(t *testing.T) {
	path := testEnclave(t)
	ctx := context.Background()
	for i := range 30 {
		e, err := host.Load(ctx, host.LoadConfig{Path: path, Debug: true, Backend: sim.New(sim.Switchless())})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Destroy(ctx, []byte("fail-fini")); err == nil || !strings.Contains(err.Error(), "finalize refused") {
			t.Fatalf("round %d: Destroy = %v, want the Finalize error itself", i, err)
		}
	}
}

// An enclave asks for evidence; the sim platform signs what the loader measured; a verifier
// given the platform's root accepts it and sees the enclave's identity and the bound user data.
func TestAttestation(t *testing.T) {
	ctx := context.Background()
	p, err := platform.Open(filepath.Join(t.TempDir(), "platform"))
	if err != nil {
		t.Fatal(err)
	}
	// A signed enclave.
	src, _ := os.ReadFile(testEnclave(t))
	path := filepath.Join(t.TempDir(), "e.enclave")
	os.WriteFile(path, src, 0o755)
	key, _ := signing.GenerateKey(nil)
	mf, _ := signing.Sign(key, identity.Measurement(sha256.Sum256(src)), 42, 7, false)
	b, _ := mf.Marshal()
	os.WriteFile(signing.ManifestPath(path), b, 0o644)

	e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: sim.New(sim.WithPlatform(p))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx, nil)
	nonce := bytes.Repeat([]byte{0x5a}, 32)
	raw, err := e.Call(ctx, "attest", nonce)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := attest.ParseEvidence(raw)
	if err != nil || ev.Format != attest.FormatSim {
		t.Fatalf("evidence envelope: %v %v", ev.Format, err)
	}
	c, err := simev.Verify(ev.Data, simev.Options{Roots: []*x509.Certificate{p.Root()}, UserData: nonce, MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	id := e.Identity()
	if !bytes.Equal(c.Measurement, id.Measurement[:]) || !bytes.Equal(c.SignerID, func() []byte { s := key.SignerID(); return s[:] }()) ||
		c.ProductID != 42 || c.SVN != 7 || c.Debug {
		t.Errorf("claims %+v do not match the loaded identity %+v", c, id)
	}
	// More than 64 bytes of user data is refused inside the enclave.
	if _, err := e.Call(ctx, "attest", make([]byte, 65)); err == nil {
		t.Error("65 bytes of user data accepted")
	}
}

// A back-end reuses the sealed image of an unchanged file, and notices a changed one.
func TestImageCache(t *testing.T) {
	src, _ := os.ReadFile(testEnclave(t))
	path := filepath.Join(t.TempDir(), "e.enclave")
	os.WriteFile(path, src, 0o755)
	ctx := context.Background()
	b := sim.New()
	load := func() identity.Measurement {
		e, err := host.Load(ctx, host.LoadConfig{Path: path, Debug: true, Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Destroy(ctx, nil)
		return e.Identity().Measurement
	}
	m1, m2 := load(), load()
	if m1 != m2 || m1 != identity.Measurement(sha256.Sum256(src)) {
		t.Fatalf("measurements %s, %s", m1, m2)
	}
	// Same size, one byte changed in place (in the padding after a section, which nothing
	// reads: the image stays a valid executable): a new measurement.
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	at := int64(-1)
	for i, sec := range ef.Sections[:len(ef.Sections)-1] {
		next := ef.Sections[i+1]
		if sec.Type != elf.SHT_NULL && sec.Type != elf.SHT_NOBITS && next.Type != elf.SHT_NOBITS && sec.Offset+sec.Size < next.Offset {
			at = int64(sec.Offset + sec.Size)
			break
		}
	}
	ef.Close()
	if at < 0 {
		t.Fatal("no padding between sections")
	}
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt([]byte{src[at] ^ 0xff}, at)
	f.Close()
	src[at] ^= 0xff
	if m3 := load(); m3 == m1 || m3 != identity.Measurement(sha256.Sum256(src)) {
		t.Errorf("after changing the file: measurement %s, want the new file's", m3)
	}
}

// signedCopy writes the test enclave, with extra bytes appended (a different measurement), and
// a manifest for it signed by key.
func signedCopy(t *testing.T, dir, name string, extra []byte, key *signing.SigningKey, product, svn uint32) string {
	t.Helper()
	src, err := os.ReadFile(testEnclave(t))
	if err != nil {
		t.Fatal(err)
	}
	src = append(src, extra...)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, src, 0o755); err != nil {
		t.Fatal(err)
	}
	mf, err := signing.Sign(key, identity.Measurement(sha256.Sum256(src)), product, svn, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := mf.Marshal()
	if err := os.WriteFile(signing.ManifestPath(path), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Sealing from inside real enclaves: bound to the measurement, or to signer + product with SVN
// rules, with keys from the sim platform, which checks every request against what it measured.
func TestSealing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, err := platform.Open(filepath.Join(dir, "platform"))
	if err != nil {
		t.Fatal(err)
	}
	be := sim.New(sim.WithPlatform(p))
	key, _ := signing.GenerateKey(nil)
	other, _ := signing.GenerateKey(nil)
	v2 := signedCopy(t, dir, "v2", nil, key, 1, 2)
	v3 := signedCopy(t, dir, "v3", []byte{1}, key, 1, 3)        // an upgrade: new measurement, higher SVN
	v1 := signedCopy(t, dir, "v1", []byte{1, 2}, key, 1, 1)     // a rollback to an older SVN
	prod2 := signedCopy(t, dir, "p2", []byte{3}, key, 2, 9)     // another product of the signer
	stranger := signedCopy(t, dir, "x", []byte{4}, other, 1, 9) // another signer

	call := func(path, method string, in []byte) ([]byte, error) {
		e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Destroy(ctx, nil)
		return e.Call(ctx, method, in)
	}
	byMeasurement, err := call(v2, "seal-measurement", []byte("the secret"))
	if err != nil {
		t.Fatal(err)
	}
	bySigner, err := call(v2, "seal-signer", []byte("the secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(byMeasurement, []byte("the secret")) || bytes.Contains(bySigner, []byte("the secret")) {
		t.Fatal("plaintext visible in a sealed blob")
	}
	for _, tc := range []struct {
		name, path string
		blob       []byte
		want       string // "" = unseals
	}{
		{"same enclave, measurement", v2, byMeasurement, ""},
		{"same enclave, signer", v2, bySigner, ""},
		{"upgrade, measurement", v3, byMeasurement, "another enclave identity"},
		{"upgrade, signer", v3, bySigner, ""},
		{"rollback, signer", v1, bySigner, "SVN above"},
		{"other product", prod2, bySigner, "another enclave identity"},
		{"other signer", stranger, bySigner, "another enclave identity"},
		{"tampered", v2, func() []byte { b := bytes.Clone(bySigner); b[len(b)-1] ^= 1; return b }(), "failed authentication"},
	} {
		out, err := call(tc.path, "unseal", tc.blob)
		switch {
		case tc.want == "" && (err != nil || string(out) != "the secret"):
			t.Errorf("%s: %q, %v; want the secret", tc.name, out, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %q, %v; want an error containing %q", tc.name, out, err, tc.want)
		}
	}
	// Another platform (another machine) cannot unseal.
	p2, _ := platform.Open(filepath.Join(dir, "platform2"))
	e, err := host.Load(ctx, host.LoadConfig{Path: v2, Backend: sim.New(sim.WithPlatform(p2))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx, nil)
	if _, err := e.Call(ctx, "unseal", byMeasurement); err == nil || !strings.Contains(err.Error(), "key id") {
		t.Errorf("other platform: %v, want an unknown key id error", err)
	}
}

// Secure storage from inside real enclaves: files survive reloads, tampering is caught, and
// killing the enclave process at random points during writes always leaves the old or the new
// committed content.
func TestSecureStorage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, err := platform.Open(filepath.Join(dir, "platform"))
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	os.Mkdir(store, 0o700)
	be := sim.New(sim.WithPlatform(p))
	key, _ := signing.GenerateKey(nil)
	path := signedCopy(t, dir, "e", nil, key, 1, 1)
	load := func() *host.Enclave {
		e, err := host.Load(ctx, host.LoadConfig{Path: path, Backend: be, StorageDir: store, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	read := func() (string, error) {
		e := load()
		defer e.Destroy(ctx, nil)
		b, err := e.Call(ctx, "file-read", []byte("data"))
		return string(b), err
	}

	e := load()
	if _, err := e.Call(ctx, "file-write", []byte("data\nfirst version")); err != nil {
		t.Fatal(err)
	}
	e.Destroy(ctx, nil)
	if got, err := read(); err != nil || got != "first version" {
		t.Fatalf("after reload: %q, %v", got, err)
	}
	raw, _ := os.ReadFile(filepath.Join(store, "data"))
	if bytes.Contains(raw, []byte("first version")) {
		t.Fatal("plaintext on the host's disk")
	}
	// The host flips a byte: refused.
	tampered := bytes.Clone(raw)
	tampered[len(tampered)-100] ^= 1
	os.WriteFile(filepath.Join(store, "data"), tampered, 0o600)
	if _, err := read(); err == nil || !strings.Contains(err.Error(), "storage") {
		t.Errorf("tampered file read: %v", err)
	}
	// The host replays an older version: the platform counter catches it.
	os.WriteFile(filepath.Join(store, "data"), raw, 0o600)
	e = load()
	if _, err := e.Call(ctx, "file-write", []byte("data\nsecond version")); err != nil {
		t.Fatal(err)
	}
	e.Destroy(ctx, nil)
	os.WriteFile(filepath.Join(store, "data"), raw, 0o600)
	if _, err := read(); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Errorf("replayed file read: %v, want a rollback error", err)
	}

	// Crash consistency: SIGKILL the enclave at random points of a write.
	os.Remove(filepath.Join(store, "data"))
	content := func(v int) string {
		return fmt.Sprintf("v%04d:", v) + strings.Repeat(string(rune('a'+v%26)), 40000+v*97%9000)
	}
	e = load()
	if _, err := e.Call(ctx, "file-write", []byte("data\n"+content(0))); err != nil {
		t.Fatal(err)
	}
	e.Destroy(ctx, nil)
	// How long does an undisturbed write take? Kills then land uniformly within it.
	var took time.Duration
	for range 3 {
		e := load()
		t0 := time.Now()
		if _, err := e.Call(ctx, "file-write", []byte("data\n"+content(0))); err != nil {
			t.Fatal(err)
		}
		took += time.Since(t0)
		e.Destroy(ctx, nil)
	}
	took /= 3
	committed, interrupted := 0, 0
	iterations := 200
	for v := 1; v <= iterations; v++ {
		e := load()
		pid, _ := e.Process()
		done := make(chan error, 1)
		go func() {
			_, err := e.Call(ctx, "file-write", []byte("data\n"+content(v)))
			done <- err
		}()
		time.Sleep(took * time.Duration(v*37%100) / 80)
		syscall.Kill(pid, syscall.SIGKILL)
		werr := <-done
		e.Destroy(ctx, nil)
		got, err := read()
		switch {
		case err != nil:
			t.Fatalf("iteration %d: file unreadable after SIGKILL: %v", v, err)
		case got == content(v):
			committed = v
		case got == content(committed):
			interrupted++
			if werr == nil {
				t.Fatalf("iteration %d: write reported success but the file holds version %d", v, committed)
			}
		default:
			t.Fatalf("iteration %d: file holds neither version %d nor %d (%.10q...)", v, committed, v, got)
		}
	}
	t.Logf("write takes %v; %d kills: %d interrupted writes left the old version, %d had committed", took, iterations, interrupted, iterations-interrupted)
	if interrupted == 0 {
		t.Error("no kill landed before a commit: the test did not exercise recovery")
	}
}

// An enclave listens through the host: the sandboxed enclave has no sockets of its own, yet it
// serves TCP clients on connections the host accepts and hands in.
func TestEnclaveListener(t *testing.T) {
	ctx := context.Background()
	for _, be := range []*sim.Backend{sim.New(), sim.New(sim.Switchless())} {
		e, err := host.Load(ctx, host.LoadConfig{Path: testEnclave(t), Debug: true, Backend: be, Logger: quiet,
			AllowListen: func(network, address string) error {
				if !strings.HasPrefix(address, "127.0.0.1:") {
					return errors.New("loopback only")
				}
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		addr, err := e.Call(ctx, "serve-echo", []byte("3"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			c, err := net.Dial("tcp", string(addr))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "hello %d\n", i)
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if want := fmt.Sprintf("enclave:hello %d\n", i); err != nil || line != want {
				t.Errorf("reply %q, %v; want %q", line, err, want)
			}
		}
		e.Destroy(ctx, nil)
	}
	// Without AllowListen the host refuses.
	e, err := host.Load(ctx, host.LoadConfig{Path: testEnclave(t), Debug: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx, nil)
	if _, err := e.Call(ctx, "serve-echo", []byte("1")); err == nil || !strings.Contains(err.Error(), "AllowListen") {
		t.Errorf("listen without permission: %v", err)
	}
}

// fdKinds lists what the descriptors of process pid refer to, without inode numbers, sorted.
func fdKinds(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.IndexAny(target, ":["); i > 0 {
			target = target[:i]
		}
		kinds = append(kinds, target)
	}
	slices.Sort(kinds)
	return kinds
}

// probeRefusesAll runs the test enclave's sandbox probe and fails the test for every action it
// was allowed.
func probeRefusesAll(t *testing.T, e *host.Enclave) {
	t.Helper()
	r := callJSON[testenclave.ProbeResult](t, e, "probe", []byte("127.0.0.1:1"))
	for action, result := range r.Attempts {
		if result == "" {
			t.Errorf("sandbox allowed: %s", action)
		}
	}
	if r.Dumpable != 0 || r.NoNewPrivs != 1 || r.CoreLimit != 0 {
		t.Errorf("dumpable=%d no_new_privs=%d core limit=%d", r.Dumpable, r.NoNewPrivs, r.CoreLimit)
	}
}

// statusField returns the numbers of a line of /proc/<pid>/status.
func statusField(t *testing.T, pid int, name string) []int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == name {
			var v []int
			for _, s := range f[1:] {
				n, err := strconv.Atoi(s)
				if err != nil {
					t.Fatalf("%q", line)
				}
				v = append(v, n)
			}
			return v
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return nil
}

// TestBackendClose: New with Prestart prepares a process before any load; Close ends it (reaped,
// not left a zombie), refuses later loads with ErrClosed and leaves running enclaves alone.
func TestBackendClose(t *testing.T) {
	ctx := context.Background()
	be := sim.New()
	waitPrestarted(t, be, 0) // New prepares one before the first load
	e, err := host.Load(ctx, host.LoadConfig{Path: testEnclave(t), Backend: be, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx, nil)
	// The process Close must end: the spawner, which the load left in place, or in exec mode the
	// next one, prepared after the load took the first.
	next := waitPrestarted(t, be, 0)
	if err := be.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", next)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("prepared process %d still exists after Close (%v)", next, err)
	}
	if sim.PrestartedPid(be) != 0 {
		t.Error("a process is still prepared after Close")
	}
	if _, err := host.Load(ctx, host.LoadConfig{Path: testEnclave(t), Backend: be, Debug: true}); !errors.Is(err, sim.ErrClosed) {
		t.Errorf("load after Close: %v, want ErrClosed", err)
	}
	if got, err := e.Call(ctx, "echo", []byte("still")); err != nil || string(got) != "still" {
		t.Errorf("enclave loaded before Close: %q, %v", got, err)
	}
}

// TestReaderSleepsInRead: an idle enclave on the socket waits for the host's next frame in a
// blocking read(2) of its channel (design note 23), not in the network poller, which parks the
// reader and costs a scheduler round and an epoll_pwait per request.
func TestReaderSleepsInRead(t *testing.T) {
	ctx := context.Background()
	e, err := host.Load(ctx, host.LoadConfig{Path: testEnclave(t), Debug: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(ctx, nil)
	if _, err := e.Call(ctx, "echo", []byte("x")); err != nil {
		t.Fatal(err)
	}
	pid, _ := e.Process()
	sockets := map[string]bool{} // descriptor numbers, in hex as /proc/*/syscall prints them
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, ent.Name()))
		if fd, err := strconv.Atoi(ent.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			sockets[fmt.Sprintf("%#x", fd)] = true
		}
	}
	if len(sockets) == 0 {
		t.Fatal("the enclave holds no socket")
	}
	var seen []string
	for range 200 { // the reader is back in read(2) microseconds after answering
		seen = seen[:0]
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
			if errors.Is(err, fs.ErrPermission) {
				t.Skipf("cannot see the enclave's system calls: %v", err)
			}
			f := strings.Fields(string(b))
			if len(f) > 1 && f[0] == strconv.Itoa(unix.SYS_READ) && sockets[f[1]] {
				return
			}
			if len(f) > 0 {
				seen = append(seen, f[0])
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("no enclave thread is blocked reading a socket; threads are in system calls %v (read is %d)", seen, unix.SYS_READ)
}
