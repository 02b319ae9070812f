//go:build linux

package sim

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/asylo-go/asylo/internal/wire"
)

// hostRequest is a request as launchPrestarted builds it: the descriptors named as the launch
// contract names them, the image second, then two pipes for the standard streams.
func hostRequest() prestartRequest {
	return prestartRequest{
		Args: []string{"hello.enclave", "-v"}, Env: []string{"A=1", wire.EnvSandbox + "=" + wire.SandboxWhole},
		FDs:   []string{wire.EnvChannel, wire.EnvImage, wire.EnvConnPass, wire.EnvAttention, "", ""},
		Image: 1, Stdout: 4, Stderr: 5,
	}
}

// FuzzParseRequest: whatever the spawner receives, parseRequest either refuses it or returns a
// request whose every index is within the descriptors that came with it and whose names are
// variable names, which spawnEnclave then relies on without looking again.
func FuzzParseRequest(f *testing.F) {
	good, err := json.Marshal(hostRequest())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, uint8(6))
	f.Add(good, uint8(5))
	f.Add([]byte(`{"args":["x"],"fds":["A=B"],"image":0,"stdout":-1,"stderr":-1}`), uint8(1))
	f.Add([]byte(`{"args":[],"fds":[],"image":0,"stdout":-1,"stderr":-1}`), uint8(0))
	f.Add([]byte(`{"args":["x"],"fds":["A"],"image":0,"stdout":-2,"stderr":7}`), uint8(1))
	f.Add([]byte(`null`), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		nfds := int(n) % (maxPrestartFDs + 1)
		req, err := parseRequest(data, nfds)
		if err != nil {
			return
		}
		in := func(i int) bool { return -1 <= i && i < nfds }
		if len(req.FDs) != nfds || req.Image < 0 || !in(req.Image) || !in(req.Stdout) || !in(req.Stderr) || len(req.Args) == 0 {
			t.Fatalf("accepted a request that does not fit %d descriptors: %+v", nfds, req)
		}
		for _, name := range req.FDs {
			if name != "" && !envName(name) {
				t.Fatalf("accepted descriptor name %q", name)
			}
		}
	})
}

func TestParseRequest(t *testing.T) {
	want := hostRequest()
	body, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseRequest(body, len(want.FDs))
	if err != nil {
		t.Fatalf("the host's own request: %v", err)
	}
	if !slices.Equal(got.Args, want.Args) || !slices.Equal(got.Env, want.Env) || !slices.Equal(got.FDs, want.FDs) ||
		got.Image != want.Image || got.Stdout != want.Stdout || got.Stderr != want.Stderr {
		t.Fatalf("parsed %+v, sent %+v", got, want)
	}
	for name, mutate := range map[string]func(*prestartRequest){
		"more descriptors named":  func(r *prestartRequest) { r.FDs = append(r.FDs, "X") },
		"image out of range":      func(r *prestartRequest) { r.Image = len(r.FDs) },
		"no image":                func(r *prestartRequest) { r.Image = -1 },
		"stdout out of range":     func(r *prestartRequest) { r.Stdout = len(r.FDs) },
		"stderr below -1":         func(r *prestartRequest) { r.Stderr = -2 },
		"no arguments":            func(r *prestartRequest) { r.Args = nil },
		"name with =":             func(r *prestartRequest) { r.FDs[0] = "LD_PRELOAD=/x" },
		"name with a digit first": func(r *prestartRequest) { r.FDs[0] = "1X" },
	} {
		r := hostRequest()
		mutate(&r)
		body, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseRequest(body, len(hostRequest().FDs)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseAnswer: an answer is a pid in Linux's range, or the spawner's own refusal, or an
// error that drops the spawner (errSpawnerLost); never a panic. The same bytes as a prestarted
// process's first message are accepted as ready only if they are exactly "R".
func FuzzParseAnswer(f *testing.F) {
	p := func(pid uint64) []byte { return binary.LittleEndian.AppendUint64([]byte{'P'}, pid) }
	f.Add(p(4242))
	f.Add(p(0))
	f.Add(p(1<<22 + 1))
	f.Add([]byte("Eexec: no such file"))
	f.Add([]byte("E"))
	f.Add([]byte("P"))
	f.Add([]byte{})
	f.Add([]byte("R"))
	f.Add([]byte("RR"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if err := parseReady(msg); (err == nil) != (string(msg) == "R") {
			t.Fatalf("parseReady(%q) = %v", msg, err)
		} else if err != nil && len(msg) > 1 && msg[0] == 'E' && !utf8.ValidString(err.Error()) {
			t.Fatalf("parseReady(%q): reason %q is not UTF-8", msg, err)
		}
		pid, refused, err := parseAnswer(msg)
		switch {
		case refused:
			if err == nil || msg[0] != 'E' || errors.Is(err, errSpawnerLost) {
				t.Fatalf("refusal %q: %v", msg, err)
			}
		case err != nil:
			if !errors.Is(err, errSpawnerLost) {
				t.Fatalf("%q: %v is not errSpawnerLost", msg, err)
			}
		default:
			if len(msg) != 9 || msg[0] != 'P' || pid < 1 || pid > 1<<22 || uint64(pid) != binary.LittleEndian.Uint64(msg[1:]) {
				t.Fatalf("%q: accepted pid %d", msg, pid)
			}
		}
	})
}

// FuzzStatParent: whatever a process calls itself (its comm: up to 15 bytes, anything but NUL,
// parentheses and spaces included), statParent finds its parent in /proc/<pid>/stat; and
// whatever else it is given, it does not panic.
func FuzzStatParent(f *testing.F) {
	f.Add([]byte("sim.test"), uint32(17), []byte("4242 (sim.test) S 17 4242 17 0 -1"))
	f.Add([]byte("x) S 99 4243) R"), uint32(4242), []byte(")"))
	f.Add([]byte(""), uint32(0), []byte("1 () Z"))
	f.Fuzz(func(t *testing.T, comm []byte, ppid uint32, raw []byte) {
		statParent(raw)
		comm = bytes.ReplaceAll(comm[:min(len(comm), 15)], []byte{0}, nil)
		stat := fmt.Appendf(nil, "4243 (%s) S %d 4243 1 0 -1 4194560 1 0\n", comm, ppid)
		if got, ok := statParent(stat); !ok || got != int(ppid) {
			t.Fatalf("%q: parent %d, %v; want %d", stat, got, ok, ppid)
		}
	})
}

// TestScanChildren: the /proc scan used where the kernel does not list children finds them,
// zombies included, and finds nothing else; where the kernel lists them, it agrees.
func TestScanChildren(t *testing.T) {
	start := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(name, args...)
		if err := c.Start(); err != nil {
			t.Skip(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	var want []int
	for range 3 {
		want = append(want, start("sleep", "60").Process.Pid)
	}
	zombie := start("true")
	for !exited(zombie.Process.Pid) {
		time.Sleep(time.Millisecond)
	}
	want = append(want, zombie.Process.Pid)

	scanned, err := scanChildren()
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range want {
		if !slices.Contains(scanned, pid) {
			t.Errorf("scan missed child %d: %v", pid, scanned)
		}
	}
	for _, other := range []int{os.Getpid(), os.Getppid(), 1} {
		if slices.Contains(scanned, other) { // ourselves, our parent, init: never our children
			t.Errorf("scan lists %d, which is not a child of %d: %v", other, os.Getpid(), scanned)
		}
	}
	listed, err := listedChildren()
	if errors.Is(err, errNoChildrenFiles) {
		return // nothing to compare with
	} else if err != nil {
		t.Fatal(err)
	}
	for _, pid := range want {
		if !slices.Contains(listed, pid) {
			t.Errorf("children files miss child %d: %v", pid, listed)
		}
	}
}

func TestLaunchEnv(t *testing.T) {
	names := []string{wire.EnvChannel, wire.EnvImage, ""}
	got := launchEnv([]string{"A=1", wire.EnvChannel + "=99", "=x", wire.EnvSandbox + "=whole", "B=" + wire.EnvImage, wire.EnvImage + "=98"}, names)
	want := []string{"A=1", "=x", "B=" + wire.EnvImage, wire.EnvSandbox + "=" + wire.SandboxLaunched}
	if !slices.Equal(got, want) {
		t.Fatalf("launchEnv = %q, want %q", got, want)
	}
}

// TestHostChildrenRefusesForeignProc: in a pid namespace whose /proc is still the parent
// namespace's, the pids /proc shows are not the ones kill and wait take, so the host must not
// reap by them (it would kill other processes); it reports that it could not look instead.
func TestHostChildrenRefusesForeignProc(t *testing.T) {
	if os.Getenv("ASYLO_TEST_FOREIGN_PROC") == "1" {
		if os.Getpid() != 1 {
			t.Fatalf("not in a new pid namespace: pid %d", os.Getpid())
		}
		if pids, err := hostChildren(); err == nil {
			t.Fatalf("hostChildren with another namespace's /proc: %v, no error", pids)
		} else {
			t.Log(err)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a pid namespace without a user namespace")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostChildrenRefusesForeignProc$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "ASYLO_TEST_FOREIGN_PROC=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHostChildrenRefusesForeignProc") {
		t.Fatalf("in a new pid namespace: %v\n%s", err, out)
	}
}
