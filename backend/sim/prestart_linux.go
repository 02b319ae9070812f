package sim

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/internal/sandbox"
	"github.com/asylo-go/asylo/internal/wire"
)

// Prestarting (docs/sandbox.md, "Prestarted processes").
//
// Creating the sandbox's namespaces costs more than executing a small program: clone(2) with a
// new user namespace and its id maps, and new pid, mount, network, IPC, UTS and cgroup
// namespaces, takes about 1.5 ms on a small VM. With Prestart the back-end keeps one process
// ready, already in the sandbox's namespaces and with its credentials, that waits for the image
// and descriptors of the next enclave and then executes it. A load then pays for the exec and
// the enclave's own start, and a new process is prepared in the background.
//
// The waiting process is this host program executed again (through a descriptor of
// /proc/self/exe, like the enclave image, so that the sandbox's unprivileged user needs no
// search permission on its directory) with envPrestart set: this package's init function
// recognises it and runs waitAndExec instead of the program. It holds nothing of the host's
// (fresh process, nothing inherited but its control socket), and what it executes is the sealed
// image the host measured, passed as a descriptor.
//
// While it waits it applies the part of the sandbox that does not depend on the enclave
// (sandbox.PrepareLaunch: descriptors close-on-exec, no core dumps, no_new_privs, the first
// stage of the seccomp policy), so that the enclave only finishes it.
//
// Where the sandbox has a user namespace (spawn mode), the process is a spawner: it does not
// execute an image itself, but starts every enclave of the back-end as a child, and lives until
// the back-end is closed. Executing in place would first tear down this whole Go program (~0.45
// ms on the critical path, more for a bigger host program, against ~0.15 ms for executing from a
// vfork child), and a process per load would cost the host a process start (with a copy of its
// page tables: Go cannot vfork into a new user namespace) for every load. The spawner is started
// outside the pid namespace, with CAP_SYS_ADMIN in its own user namespace as an ambient
// capability. The thread that forks keeps that capability and nothing else, but not as an
// ambient one (sandbox.PrepareSpawner), and starts each enclave with CLONE_PARENT and new pid,
// mount, IPC, UTS and cgroup namespaces (sandbox.SpawnNamespaceFlags): the enclave is pid 1 of
// its own pid namespace, the host's child, and loses the capability at its exec (uid 65534 in
// the namespace keeps only ambient capabilities across execve). The enclaves share the spawner's
// user and network namespaces, as a root host's directly started enclaves share one network
// namespace (docs/sandbox.md §1). Without a user namespace (exec mode) the capability would be
// the host's, so the process is created in the pid namespace, executes one image in place, and
// the back-end prepares another for the next load.

// envPrestart marks a prestarted process; its value is the control socket's descriptor.
const envPrestart = "ASYLO_SIM_PRESTART_FD"

// envPrestartFail makes a prestarted process fail as if it could not prepare the sandbox, with
// the variable's value as the reason. Tests set it through prestartEnv; nothing else does.
const envPrestartFail = "ASYLO_SIM_PRESTART_FAIL"

// prestartEnv is added to a prestarted process's environment (tests only, which may change it
// while the back-end prepares a process in the background).
var prestartEnv atomic.Pointer[[]string]

// envSpawnerDie makes a spawner exit after starting an enclave, before it reports the pid. Tests
// set it through prestartEnv; nothing else does.
const envSpawnerDie = "ASYLO_SIM_SPAWNER_DIE_AFTER_FORK"

// dieAfterFork is envSpawnerDie, read once.
var dieAfterFork = os.Getenv(envSpawnerDie) != ""

// envPrestartSpawn tells a prestarted process to be a spawner (spawn mode).
const envPrestartSpawn = "ASYLO_SIM_PRESTART_SPAWN"

// prestartExecOnly makes startPrestarted use exec mode even where spawn mode is possible
// (tests only).
var prestartExecOnly atomic.Bool

// prestartDelay delays every start of a prestarted process (tests only: a load must wait for a
// process being prepared, however long that takes).
var prestartDelay atomic.Int64

// prestartRequest is what the host sends a prestarted process, with the descriptors as
// SCM_RIGHTS in the same message.
type prestartRequest struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	// FDs names the environment variable that receives each passed descriptor's number, in
	// the order of the SCM_RIGHTS array.
	FDs []string `json:"fds"`
	// Image, Stdout and Stderr index the SCM_RIGHTS array (-1: none; the process keeps
	// /dev/null for a missing standard stream).
	Image  int `json:"image"`
	Stdout int `json:"stdout"`
	Stderr int `json:"stderr"`
}

// maxPrestartRequest bounds the request message (arguments and environment).
const maxPrestartRequest = 1 << 20

// maxPrestartFDs bounds the descriptors of one request.
const maxPrestartFDs = 8

func init() {
	if v, ok := os.LookupEnv(envPrestart); ok {
		fd, err := strconv.Atoi(v)
		if err != nil {
			os.Exit(126)
		}
		waitAndExec(fd)
	}
}

// waitAndExec is the prestarted process: it prepares the sandbox and tells the host it is
// ready. In exec mode it then receives one request and executes the image; in spawn mode it
// starts an enclave for each request and reports its pid, until the host closes the control
// socket. It never returns. Any failure before it is ready exits with status 126 (the host
// starts another process later); in exec mode, a bad request or failed exec exits with 127 (the
// load fails).
func waitAndExec(ctl int) {
	spawn := os.Getenv(envPrestartSpawn) == "1"
	var err error
	if spawn {
		err = sandbox.PrepareSpawner()
	}
	if err == nil {
		err = sandbox.PrepareLaunch()
	}
	if msg := os.Getenv(envPrestartFail); msg != "" {
		err = errors.New(msg)
	}
	if err != nil {
		// Not ready, and why (the host logs it; this process's stderr is /dev/null).
		unix.Write(ctl, append([]byte{'E'}, err.Error()...))
		os.Exit(126)
	}
	warmUp()
	if _, err := unix.Write(ctl, []byte{'R'}); err != nil {
		os.Exit(126)
	}
	buf := make([]byte, maxPrestartRequest)
	oob := make([]byte, unix.CmsgSpace(maxPrestartFDs*4))
	if spawn {
		serveSpawns(ctl, buf, oob)
	}
	req, fds, err := receiveRequest(ctl, buf, oob)
	if err == io.EOF {
		os.Exit(126) // the host went away
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "asylo sim: prestarted process: "+format+"\n", args...)
		os.Exit(127)
	}
	if err != nil {
		fail("%v", err)
	}
	if req.Stderr >= 0 {
		if err := unix.Dup3(fds[req.Stderr], 2, 0); err != nil {
			fail("stderr: %v", err)
		}
	}
	if req.Stdout >= 0 {
		if err := unix.Dup3(fds[req.Stdout], 1, 0); err != nil {
			fail("stdout: %v", err)
		}
	}
	// Everything else this process holds is close-on-exec (PrepareLaunch, MSG_CMSG_CLOEXEC):
	// only 0, 1, 2 and the named descriptors reach the enclave, which therefore need not look
	// for inherited ones.
	env := launchEnv(req.Env, req.FDs)
	for i, name := range req.FDs {
		if name == "" {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fds[i]), unix.F_SETFD, 0); err != nil {
			fail("%v", err)
		}
		env = append(env, name+"="+strconv.Itoa(fds[i]))
	}
	err = syscall.Exec("/proc/self/fd/"+strconv.Itoa(fds[req.Image]), req.Args, env)
	fail("exec: %v", err)
}

// receiveRequest reads one request and its descriptors (close-on-exec) from the control
// socket: io.EOF once the host has closed it, or if recvmsg fails.
func receiveRequest(ctl int, buf, oob []byte) (req prestartRequest, fds []int, err error) {
	n, oobn, flags, _, err := unix.Recvmsg(ctl, buf, oob, unix.MSG_CMSG_CLOEXEC)
	for err == unix.EINTR {
		n, oobn, flags, _, err = unix.Recvmsg(ctl, buf, oob, unix.MSG_CMSG_CLOEXEC)
	}
	if err != nil || (n == 0 && oobn == 0) {
		return req, nil, io.EOF // the host went away (or the socket broke: nothing more comes)
	}
	msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
	for _, m := range msgs {
		rights, err := unix.ParseUnixRights(&m)
		if err != nil && perr == nil {
			perr = err
		}
		fds = append(fds, rights...)
	}
	if perr == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		perr = errors.New("request truncated")
	}
	if perr == nil {
		req, perr = parseRequest(buf[:n], len(fds))
	}
	if perr != nil {
		closeAll(fds)
		return req, nil, fmt.Errorf("request: %w", perr)
	}
	return req, fds, nil
}

// parseReady decodes what a prestarted process says once it has started: "R" (ready), or "E" and
// why it cannot prepare the sandbox.
func parseReady(msg []byte) error {
	switch {
	case len(msg) == 1 && msg[0] == 'R':
		return nil
	case len(msg) > 1 && msg[0] == 'E':
		return errors.New(reason(msg[1:]))
	}
	return fmt.Errorf("unexpected %q from the process", msg)
}

// reason is an error message a prestarted process sent, made printable UTF-8.
func reason(b []byte) string { return strings.ToValidUTF8(string(b), "?") }

// parseAnswer decodes the spawner's answer to a request: the enclave's pid, or the error it
// reported (refused), or an error for an answer no spawner sends (the spawner is not to be
// trusted with another request).
func parseAnswer(msg []byte) (pid int, refused bool, err error) {
	switch {
	case len(msg) > 1 && msg[0] == 'E':
		return 0, true, fmt.Errorf("sim: spawner: %s", reason(msg[1:]))
	case len(msg) != 9 || msg[0] != 'P':
		return 0, false, fmt.Errorf("%w: unexpected answer %q", errSpawnerLost, msg)
	}
	// Linux pids are at most 2^22 (PID_MAX_LIMIT).
	v := binary.LittleEndian.Uint64(msg[1:9])
	if v == 0 || v > 1<<22 {
		return 0, false, fmt.Errorf("%w: reported pid %d", errSpawnerLost, v)
	}
	return int(v), false, nil
}

// parseRequest decodes a request that came with nfds descriptors and checks that everything
// it indexes is there, so that its users can index without looking.
func parseRequest(data []byte, nfds int) (prestartRequest, error) {
	var req prestartRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return req, err
	}
	valid := func(i int) bool { return i >= -1 && i < nfds }
	if len(req.FDs) != nfds || req.Image < 0 || !valid(req.Image) || !valid(req.Stdout) || !valid(req.Stderr) {
		return req, fmt.Errorf("request does not match its %d descriptors", nfds)
	}
	if len(req.Args) == 0 {
		return req, errors.New("request without arguments")
	}
	for _, name := range req.FDs {
		if name != "" && !envName(name) {
			return req, fmt.Errorf("request names a descriptor %q", name)
		}
	}
	return req, nil
}

// envName reports whether s is a portable environment variable name.
func envName(s string) bool {
	for i, r := range s {
		if !(r == '_' || 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || i > 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return s != ""
}

// launchEnv is the enclave's environment without any variable that the launch itself sets
// (ASYLO_SANDBOX, and the names of the descriptors it passes, appended by the caller), whatever
// the host asked for: the enclave's runtime takes the first of duplicates, and a direct start's
// os/exec the last, so both find the launch's own. ASYLO_SANDBOX says the sandbox was begun by
// a prestarted process.
func launchEnv(reqEnv, names []string) []string {
	env := make([]string, 0, len(reqEnv)+len(names)+1)
	for _, kv := range reqEnv {
		key, _, _ := strings.Cut(kv, "=")
		if key != wire.EnvSandbox && (key == "" || !slices.Contains(names, key)) {
			env = append(env, kv)
		}
	}
	return append(env, wire.EnvSandbox+"="+wire.SandboxLaunched)
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// serveSpawns is the spawner's loop: it answers each request with 'P' and the enclave's pid
// (8 bytes, little-endian), or 'E' and why it could not start it, and exits when the host closes
// the control socket.
func serveSpawns(ctl int, buf, oob []byte) {
	for {
		req, fds, err := receiveRequest(ctl, buf, oob)
		if err == io.EOF {
			os.Exit(0)
		}
		var pid int
		if err == nil {
			pid, err = spawnEnclave(req, fds)
			closeAll(fds) // the enclave has its own; the host must see them close when it ends
			if err == nil && dieAfterFork {
				os.Exit(3) // tests: a spawner killed between the fork and its answer
			}
		}
		reply := []byte{'P', 0, 0, 0, 0, 0, 0, 0, 0}
		if err != nil {
			reply = append([]byte{'E'}, err.Error()...)
		} else {
			binary.LittleEndian.PutUint64(reply[1:], uint64(pid))
		}
		if _, err := unix.Write(ctl, reply); err != nil {
			os.Exit(0) // the host went away
		}
	}
}

// spawnEnclave starts the enclave of req as the host's child in namespaces of its own, with the
// standard streams and named descriptors of req as its 0-2 and 3, 4, ... (nothing else: all
// this process holds is close-on-exec). It runs on the thread PrepareSpawner prepared, which is
// this goroutine's: serveSpawns runs on the main goroutine, locked to its thread.
func spawnEnclave(req prestartRequest, fds []int) (int, error) {
	files := []uintptr{0, 1, 2} // 1 and 2 are /dev/null here
	if req.Stdout >= 0 {
		files[1] = uintptr(fds[req.Stdout])
	}
	if req.Stderr >= 0 {
		files[2] = uintptr(fds[req.Stderr])
	}
	env := launchEnv(req.Env, req.FDs)
	image := -1
	for i, name := range req.FDs {
		if name == "" {
			continue
		}
		if i == req.Image {
			image = len(files)
		}
		env = append(env, name+"="+strconv.Itoa(len(files)))
		files = append(files, uintptr(fds[i]))
	}
	if image < 0 {
		image = len(files)
		files = append(files, uintptr(fds[req.Image]))
	}
	// Not Pdeathsig: Go's child would compare its parent with this process and kill itself (its
	// parent is the host); the enclave asks for the signal itself (sandbox, Options.Launched).
	pid, err := syscall.ForkExec("/proc/self/fd/"+strconv.Itoa(image), req.Args, &syscall.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Cloneflags: syscall.CLONE_PARENT | sandbox.SpawnNamespaceFlags},
	})
	if err != nil {
		return 0, fmt.Errorf("starting the enclave: %w", err)
	}
	return pid, nil
}

// warmUp runs, while the process waits, the code that handling a request needs, so that its
// first use is off the load's critical path: encoding/json builds its decoder for a type on
// first use, and the code's pages are faulted in. From the request's arrival to the exec: 130
// → 45 µs (medians of 61 loads).
func warmUp() {
	var req prestartRequest
	json.Unmarshal([]byte(`{"args":["a"],"env":["A=1"],"fds":["B"],"image":0,"stdout":-1,"stderr":-1}`), &req)
	if msgs, err := unix.ParseSocketControlMessage(unix.UnixRights(0)); err == nil {
		for _, m := range msgs {
			unix.ParseUnixRights(&m)
		}
	}
}

// prestarted is a process waiting for an enclave (exec mode), or a spawner.
type prestarted struct {
	cmd     *exec.Cmd
	ctl     *net.UnixConn // the host's end of the control socket
	spawner bool          // starts every enclave as a child and reports its pid (see above)

	mu   sync.Mutex // a spawner's requests, one at a time
	lost bool       // the spawner failed: it is being ended

	userNS string // a spawner's user namespace (/proc/<pid>/ns/user), which its enclaves share
	pidsMu sync.Mutex
	pids   map[int]bool // enclaves the spawner started and their Instance has not reaped
}

// prestartTimeout bounds how long a new prestarted process may take to report ready, and a
// spawner to answer a request.
const prestartTimeout = 10 * time.Second

// startPrestarted starts a process that waits for an enclave (see waitAndExec).
func startPrestarted() (*prestarted, error) {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer self.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	child := os.NewFile(uintptr(fds[1]), "asylo-prestart-child")
	defer child.Close()
	ctlFile := os.NewFile(uintptr(fds[0]), "asylo-prestart")
	c, err := net.FileConn(ctlFile)
	ctlFile.Close()
	if err != nil {
		return nil, err
	}
	ctl := c.(*net.UnixConn)
	attr, _ := sandbox.ProcAttr() // the warnings are logged at each load
	// One P: fewer threads (for exec to kill, in exec mode); the enclave gets its own environment.
	env := []string{envPrestart + "=3", "GOMAXPROCS=1"}
	if extra := prestartEnv.Load(); extra != nil {
		env = append(env, *extra...)
	}
	spawner := attr.Cloneflags&syscall.CLONE_NEWUSER != 0 &&
		attr.Cloneflags&sandbox.SpawnNamespaceFlags == sandbox.SpawnNamespaceFlags && !prestartExecOnly.Load()
	if spawner {
		attr.Cloneflags &^= syscall.CLONE_NEWPID
		attr.AmbientCaps = []uintptr{unix.CAP_SYS_ADMIN} // in its own user namespace only
		env = append(env, envPrestartSpawn+"=1")
	}
	cmd := &exec.Cmd{
		Path:        "/proc/self/fd/4",
		Args:        []string{"asylo-sim-prestarted"},
		Env:         env,
		ExtraFiles:  []*os.File{child, self},
		SysProcAttr: attr,
	}
	// The enclaves a spawner starts are the host's children (CLONE_PARENT), and their
	// parent-death signal is tied to the host thread that started the spawner.
	if err := sandbox.StartStable(cmd); err != nil {
		ctl.Close()
		return nil, err
	}
	// Ready: "R", within the timeout (the process may be slow to start, or dead), or "E" and
	// the reason it cannot prepare the sandbox.
	var b [512]byte
	ctl.SetReadDeadline(time.Now().Add(prestartTimeout))
	n, err := ctl.Read(b[:])
	ctl.SetReadDeadline(time.Time{})
	if err == nil {
		err = parseReady(b[:n])
	}
	if err != nil {
		cmd.Process.Kill()
		ctl.Close()
		cmd.Wait()
		return nil, fmt.Errorf("prestarted process: %w", err)
	}
	p := &prestarted{cmd: cmd, ctl: ctl, spawner: spawner}
	if spawner {
		p.pids = map[int]bool{}
		if p.userNS, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid)); err != nil {
			p.abandon()
			return nil, fmt.Errorf("prestarted process: %w", err)
		}
	}
	return p, nil
}

// errSpawnerLost: a spawner failed (died, answered nonsense or not in time). It is ended, and the
// pool prepares another.
var errSpawnerLost = errors.New("sim: the spawner failed")

// errNotSent: the prestarted process failed before it got the request, so no enclave can have
// started: the load may start it directly instead.
var errNotSent = errors.New("sim: prestarted process lost before the request")

// launch sends the request and descriptors and returns the enclave's process: the prestarted
// process itself in exec mode, the child it reports in spawn mode. On error an exec-mode process
// is killed and reaped, and so is a spawner that failed (errSpawnerLost).
func (p *prestarted) launch(req prestartRequest, files []*os.File) (*os.Process, func() error, error) {
	body, err := json.Marshal(req)
	if err != nil || len(body) > maxPrestartRequest || len(files) > maxPrestartFDs {
		if !p.spawner {
			p.abandon()
		}
		return nil, nil, fmt.Errorf("sim: launch request too large (%d bytes, %d descriptors)", len(body), len(files))
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if p.spawner {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.lost {
			return nil, nil, errNotSent
		}
	}
	p.ctl.SetDeadline(time.Now().Add(prestartTimeout))
	_, _, err = p.ctl.WriteMsgUnix(body, unix.UnixRights(fds...), nil)
	if err != nil {
		p.abandon()
		if p.spawner {
			return nil, nil, fmt.Errorf("%w (%w): %v", errNotSent, errSpawnerLost, err)
		}
		return nil, nil, fmt.Errorf("%w: %v", errNotSent, err)
	}
	if !p.spawner {
		p.ctl.Close()
		return p.cmd.Process, p.cmd.Wait, nil
	}
	// The pid, or why not. The spawner's fork returns once the enclave has executed or failed
	// to, so this is quick; the deadline only keeps a wedged spawner from holding the load.
	var msg [512]byte
	n, err := p.ctl.Read(msg[:])
	p.ctl.SetDeadline(time.Time{})
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		// The spawner closed its end with the request unread (the kernel says so with
		// ECONNRESET), so it started nothing: the load may start the enclave itself.
		p.abandon()
		return nil, nil, fmt.Errorf("%w (%w): %v", errNotSent, errSpawnerLost, err)
	case err != nil:
		p.abandon()
		if n, ok := p.reapStrays(); ok && n == 0 {
			// It died before it started anything (its request unread, though the kernel
			// said EOF rather than ECONNRESET: it sets the two one after the other).
			return nil, nil, fmt.Errorf("%w (%w): %v", errNotSent, errSpawnerLost, err)
		}
		return nil, nil, fmt.Errorf("%w: no answer: %v", errSpawnerLost, err)
	}
	pid, refused, err := parseAnswer(msg[:n])
	switch {
	case refused:
		p.reapStrays() // a child whose exec failed
		return nil, nil, err
	case err != nil:
		p.abandon()
		p.reapStrays()
		return nil, nil, err
	}
	// The enclave is this process's child (CLONE_PARENT), and nobody else reaps it: its pid
	// cannot be reused before Wait.
	proc, err := os.FindProcess(pid)
	if err != nil {
		return nil, nil, err
	}
	p.pidsMu.Lock()
	p.pids[pid] = true
	p.pidsMu.Unlock()
	wait := func() error {
		st, err := proc.Wait()
		p.pidsMu.Lock()
		delete(p.pids, pid)
		p.pidsMu.Unlock()
		if err == nil && !st.Success() {
			err = &exec.ExitError{ProcessState: st}
		}
		return err
	}
	return proc, wait, nil
}

// reapStrays kills and reaps what a failed request may have left behind: this process's
// children in the spawner's user namespace that are neither the spawner nor an enclave it
// reported. Those are a child whose exec failed, which Go's ForkExec in the spawner cannot reap
// (with CLONE_PARENT it is the host's child), or an enclave whose pid the spawner did not report
// before it died. The caller holds p.mu, so no request is under way. It reports how many it
// found, and false if it could not look everywhere (the caller must then not conclude that
// nothing was started).
func (p *prestarted) reapStrays() (n int, ok bool) {
	children, err := hostChildren() // what it found, even if it could not look everywhere
	for _, pid := range children {
		if pid == p.cmd.Process.Pid {
			continue
		}
		p.pidsMu.Lock()
		known := p.pids[pid]
		p.pidsMu.Unlock()
		if known {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); err != nil || ns != p.userNS {
			continue // another's child (only this spawner makes processes in its namespace)
		}
		unix.Kill(pid, unix.SIGKILL)
		for {
			if _, err := unix.Wait4(pid, nil, 0, nil); err != unix.EINTR {
				break
			}
		}
		n++
	}
	return n, err == nil
}

// scanProcForChildren makes hostChildren scan /proc even where the kernel lists children (tests).
var scanProcForChildren atomic.Bool

// hostChildren lists this process's children: from /proc/self/task/*/children (with
// CLONE_PARENT a child belongs to the thread that started the spawner), or, on a kernel built
// without CONFIG_PROC_CHILDREN, by reading the parent of every process in /proc.
func hostChildren() ([]int, error) {
	// The pids /proc shows are those of the pid namespace it was mounted for; the host kills
	// and reaps by its own. A /proc of another namespace would name other processes.
	if self, err := os.Readlink("/proc/self"); err != nil || self != strconv.Itoa(os.Getpid()) {
		return nil, fmt.Errorf("/proc is not this process's pid namespace's (/proc/self is %q, %v)", self, err)
	}
	if !scanProcForChildren.Load() {
		pids, err := listedChildren()
		if !errors.Is(err, errNoChildrenFiles) {
			return pids, err
		}
	}
	return scanChildren()
}

// errNoChildrenFiles: the kernel was built without CONFIG_PROC_CHILDREN.
var errNoChildrenFiles = errors.New("no /proc/<pid>/task/<tid>/children")

// listedChildren reads the kernel's list of each thread's children (CONFIG_PROC_CHILDREN). It
// returns what it read, and an error if a list could not be read.
func listedChildren() ([]int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	self := strconv.Itoa(os.Getpid())
	var pids []int
	var firstErr error
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		switch {
		case os.IsNotExist(err) && task.Name() == self:
			// The main thread lasts as long as the process (Go never ends it): the kernel
			// has no such files.
			return nil, errNoChildrenFiles
		case os.IsNotExist(err):
			continue // a thread that has just exited
		case err != nil:
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids, firstErr
}

// scanChildren finds this process's children by reading every process's parent. It returns
// what it found, and an error if a process's parent could not be read (other than because it
// has ended).
func scanChildren() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	var firstErr error
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH):
			continue // it has ended (and been reaped) meanwhile
		case errors.Is(err, fs.ErrPermission):
			// Another user's process, hidden by a /proc mounted with hidepid: not one of ours
			// (a host that is not root maps its enclaves' user to its own; root reads all).
			continue
		}
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		if ppid, ok := statParent(b); ok && ppid == self {
			pids = append(pids, pid)
		}
	}
	return pids, firstErr
}

// statParent returns the parent's pid from the contents of /proc/<pid>/stat, "pid (comm) state
// ppid ...". The process chooses its comm, which may hold spaces and parentheses: the fields
// after it follow its last ')'.
func statParent(b []byte) (int, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil && ppid >= 0
}

// abandon ends the process; a spawner's caller holds p.mu (or nobody else can have p).
func (p *prestarted) abandon() {
	p.lost = true
	p.ctl.Close()
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// end ends p unless that is under way (a spawner may be failing a request meanwhile).
func (p *prestarted) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.lost {
		p.abandon()
	}
}

// refillDelay is how long after handing out its process (exec mode) the pool starts preparing the
// next: long enough for the enclave that got it to start without competing for the CPU.
const refillDelay = 20 * time.Millisecond

// prestartRetry is how long the pool waits after a process failed to start before trying again
// (a host program whose initialisation cannot run in the sandbox's namespaces would otherwise be
// started again at every load).
const prestartRetry = 30 * time.Second

// prestartPool keeps at most one prestarted process: one waiting for the next enclave (exec
// mode), or the spawner that starts them all.
type prestartPool struct {
	mu       sync.Mutex
	ready    *prestarted
	starting bool
	started  chan struct{} // while starting: closed when the start has ended
	closed   bool
	lastErr  error
	failedAt time.Time
	reported error // lastErr, once take has returned it
}

// take returns the spawner or the ready process; a process in exec mode is the caller's and the
// pool starts preparing the next one. While one is being prepared, take waits for it, however
// many loads wait (in exec mode each gets the next): an enclave started directly instead would
// run its first instructions unconfined. It returns nil, for a direct start, only if there is
// none to wait for (the last attempt to prepare one failed less than prestartRetry ago, or two
// in a row died as soon as they were ready); ErrClosed once the pool is closed, and ctx's error
// if ctx ends first. failed is the reason the last attempt failed, the first time take sees it.
func (pp *prestartPool) take(ctx context.Context) (p *prestarted, failed error, err error) {
	dead := 0
	for {
		// ready and started change together, under mu, when a start ends: read them together.
		pp.mu.Lock()
		if pp.closed {
			pp.mu.Unlock()
			return nil, failed, ErrClosed
		}
		p = pp.ready
		if p != nil && !p.spawner {
			pp.ready = nil
		}
		if pp.lastErr != nil && pp.lastErr != pp.reported {
			failed, pp.reported = pp.lastErr, pp.lastErr
		}
		started := pp.started
		pp.mu.Unlock()
		if p != nil {
			if p.alive() {
				if !p.spawner {
					time.AfterFunc(refillDelay, pp.refill)
				}
				return p, failed, nil
			}
			pp.drop(p) // and starts preparing another
			if dead++; dead == 2 {
				return nil, failed, nil
			}
			continue
		}
		if started == nil {
			pp.refill()
			pp.mu.Lock()
			started = pp.started
			none := started == nil && pp.ready == nil && !pp.closed // refill declined: a recent failure
			pp.mu.Unlock()
			if none {
				return nil, failed, nil
			}
			if started == nil {
				continue // closed meanwhile, or one became ready
			}
		}
		select {
		case <-started:
		case <-ctx.Done():
			return nil, failed, ctx.Err()
		}
	}
}

// alive reports whether p can take a request. A spawner may be ended meanwhile (abandon, under
// p.mu); a process in exec mode is its taker's alone.
func (p *prestarted) alive() bool {
	if p.spawner {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.lost {
			return false
		}
	}
	return p.cmd.ProcessState == nil && !exited(p.cmd.Process.Pid)
}

// drop ends a spawner that died or failed a request, and starts preparing another.
func (pp *prestartPool) drop(p *prestarted) {
	pp.mu.Lock()
	if pp.ready == p {
		pp.ready = nil
	}
	pp.mu.Unlock()
	p.end()
	pp.refill()
}

// refill starts a process in the background unless one is ready or starting.
func (pp *prestartPool) refill() {
	pp.mu.Lock()
	if pp.closed || pp.ready != nil || pp.starting || (pp.lastErr != nil && time.Since(pp.failedAt) < prestartRetry) {
		pp.mu.Unlock()
		return
	}
	pp.starting = true
	started := make(chan struct{})
	pp.started = started
	pp.mu.Unlock()
	go func() {
		time.Sleep(time.Duration(prestartDelay.Load()))
		p, err := startPrestarted()
		pp.mu.Lock()
		defer close(started)
		pp.starting, pp.lastErr, pp.started = false, err, nil
		if err != nil {
			pp.failedAt = time.Now()
		}
		if pp.closed && p != nil {
			pp.mu.Unlock()
			p.abandon() // closed while it started
			return
		}
		pp.ready = p
		pp.mu.Unlock()
	}()
}

// close ends the waiting process or spawner, and one still starting once it is ready; nothing
// is prepared after it. Enclaves a spawner started keep running.
func (pp *prestartPool) close() {
	pp.mu.Lock()
	pp.closed = true
	p := pp.ready
	pp.ready = nil
	pp.mu.Unlock()
	if p != nil {
		p.end()
	}
}

// exited reports whether the child pid has ended, without reaping it.
func exited(pid int) bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err != nil || info.Signo != 0
}

// copyOut copies what the enclave writes to a pipe into w, until the enclave closes it.
func copyOut(wg *sync.WaitGroup, w io.Writer, r *os.File) {
	wg.Go(func() {
		io.Copy(w, r)
		r.Close()
	})
}

// prestartProcess returns the Backend's prestarted process, waiting for it while it is being
// prepared, or nil (Direct or InsecureNoSandbox, or none could be prepared: the caller starts the
// enclave itself), or an error (ErrClosed, or ctx's). A new reason why no process could be
// prepared is logged once.
func (b *Backend) prestartProcess(ctx context.Context, logger *slog.Logger) (*prestarted, error) {
	if !b.prestart || b.noSandbox {
		return nil, nil
	}
	p, failed, err := b.prestarted.take(ctx)
	if failed != nil {
		logger.Warn("sim: cannot prestart a process; enclaves start directly", "retry_after", prestartRetry, "err", failed)
	}
	return p, err
}

// launchPrestarted hands the enclave to p, with pipes for the standard streams spec asks for. An
// error wrapping errNotSent means no enclave was started.
func (i *instance) launchPrestarted(p *prestarted, spec backend.Spec, args, env []string, files []*os.File, names []string) error {
	req := prestartRequest{Args: args, Env: env, FDs: names, Image: 1, Stdout: -1, Stderr: -1}
	files = append([]*os.File(nil), files...)
	var closeAfter []*os.File
	for _, s := range []struct {
		w   io.Writer
		idx *int
	}{{spec.Stdout, &req.Stdout}, {spec.Stderr, &req.Stderr}} {
		if s.w == nil {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range closeAfter {
				f.Close()
			}
			i.copies.Wait()
			if !p.spawner {
				p.abandon()
			}
			return err
		}
		copyOut(&i.copies, s.w, r)
		*s.idx = len(files)
		files = append(files, w)
		req.FDs = append(req.FDs, "")
		closeAfter = append(closeAfter, w)
	}
	proc, wait, err := p.launch(req, files)
	for _, f := range closeAfter {
		f.Close()
	}
	if err != nil {
		if errors.Is(err, errSpawnerLost) || (p.spawner && errors.Is(err, errNotSent)) {
			i.backend.prestarted.drop(p)
		}
		if errors.Is(err, errNotSent) {
			i.copies.Wait() // nothing holds the pipes: done at once, before a direct start
		}
		// Otherwise an enclave may have started, and hold the pipes until the channel closes:
		// the caller waits for the copies after closing its end.
		return err
	}
	i.proc, i.waitProc = proc, wait
	return nil
}
