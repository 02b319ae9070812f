package sim

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
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
// Where the sandbox has a user namespace (spawn mode), it does not execute the image itself:
// exec would first tear down this whole Go program (~0.45 ms on the critical path, more for a
// bigger host program, against ~0.15 ms for executing from a vfork child). It is started
// outside the pid namespace, with CAP_SYS_ADMIN in its own user namespace as an ambient
// capability; it creates a pid namespace for its children and drops every capability on the
// thread that will fork (sandbox.UnsharePidForChildren), and at the request starts the enclave
// with CLONE_PARENT: the enclave is pid 1 of its own pid namespace and the host's child, as when
// started directly. It reports the enclave's pid and exits. Without a user namespace (exec
// mode) the capability would be the host's, so the process is created in the pid namespace
// and executes the image in place.

// envPrestart marks a prestarted process; its value is the control socket's descriptor.
const envPrestart = "ASYLO_SIM_PRESTART_FD"

// envPrestartFail makes a prestarted process fail as if it could not prepare the sandbox, with
// the variable's value as the reason. Tests set it through prestartEnv; nothing else does.
const envPrestartFail = "ASYLO_SIM_PRESTART_FAIL"

// prestartEnv is added to a prestarted process's environment (tests only).
var prestartEnv []string

// envPrestartSpawn tells a prestarted process to start the enclave as a child (spawn mode).
const envPrestartSpawn = "ASYLO_SIM_PRESTART_SPAWN"

// prestartExecOnly makes startPrestarted use exec mode even where spawn mode is possible
// (tests only).
var prestartExecOnly bool

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

// waitAndExec is the prestarted process: it prepares the sandbox, tells the host it is ready,
// receives one request, and executes the image (exec mode) or starts it as the host's child and
// reports its pid (spawn mode). It never returns. Any failure exits with status 126 (before the
// request: the host starts another process) or 127 (after it: the load fails).
func waitAndExec(ctl int) {
	spawn := os.Getenv(envPrestartSpawn) == "1"
	var err error
	if spawn {
		err = sandbox.UnsharePidForChildren()
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
	n, oobn, flags, _, err := unix.Recvmsg(ctl, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || n == 0 || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		os.Exit(126) // the host went away, or sent what it never sends
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "asylo sim: prestarted process: "+format+"\n", args...)
		os.Exit(127)
	}
	var fds []int
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		fail("%v", err)
	}
	for _, m := range msgs {
		rights, err := unix.ParseUnixRights(&m)
		if err != nil {
			fail("%v", err)
		}
		fds = append(fds, rights...)
	}
	var req prestartRequest
	if err := json.Unmarshal(buf[:n], &req); err != nil {
		fail("request: %v", err)
	}
	valid := func(i int) bool { return i >= -1 && i < len(fds) }
	if len(req.FDs) != len(fds) || req.Image < 0 || !valid(req.Image) || !valid(req.Stdout) || !valid(req.Stderr) || len(req.Args) == 0 {
		fail("request does not match its %d descriptors", len(fds))
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
	env := make([]string, 0, len(req.Env)+len(fds)+1)
	for _, kv := range req.Env {
		if !strings.HasPrefix(kv, wire.EnvSandbox+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, wire.EnvSandbox+"="+wire.SandboxLaunched)
	for i, name := range req.FDs {
		if name == "" {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fds[i]), unix.F_SETFD, 0); err != nil {
			fail("%v", err)
		}
		env = append(env, name+"="+strconv.Itoa(fds[i]))
	}
	path := "/proc/self/fd/" + strconv.Itoa(fds[req.Image])
	if !spawn {
		err = syscall.Exec(path, req.Args, env)
		fail("exec: %v", err)
	}
	// On the thread UnsharePidForChildren locked: its children go into the new pid namespace.
	// Not Pdeathsig: Go's child would compare its parent with this process and kill itself (its
	// parent is the host); the enclave asks for the signal itself (sandbox, Options.Launched).
	pid, err := syscall.ForkExec(path, req.Args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Cloneflags: syscall.CLONE_PARENT},
	})
	if err != nil {
		fail("starting the enclave: %v", err)
	}
	var msg [8]byte
	binary.LittleEndian.PutUint64(msg[:], uint64(pid))
	if _, err := unix.Write(ctl, msg[:]); err != nil {
		fail("reporting the enclave's pid: %v", err)
	}
	// Let go of what the enclave holds (the host must see the enclave's channel close and its
	// stream pipes end when the enclave does), then exit only when the host closes the control
	// socket: tearing this process down now would take the CPU the enclave's start needs.
	for _, fd := range append(fds, 0, 1, 2) {
		unix.Close(fd)
	}
	var b [1]byte
	for {
		if _, err := unix.Read(ctl, b[:]); err != unix.EINTR {
			os.Exit(0)
		}
	}
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

// prestarted is a process waiting for an enclave.
type prestarted struct {
	cmd   *exec.Cmd
	ctl   *os.File // the host's end of the control socket
	spawn bool     // starts the enclave as a child and reports its pid (see above)
}

// prestartTimeout bounds how long a new prestarted process may take to report ready.
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
	ctl := os.NewFile(uintptr(fds[0]), "asylo-prestart")
	attr, _ := sandbox.ProcAttr() // the warnings are logged at each load
	// One P: fewer threads (for exec to kill, in exec mode); the enclave gets its own environment.
	env := append([]string{envPrestart + "=3", "GOMAXPROCS=1"}, prestartEnv...)
	spawn := attr.Cloneflags&syscall.CLONE_NEWUSER != 0 && attr.Cloneflags&syscall.CLONE_NEWPID != 0 && !prestartExecOnly
	if spawn {
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
	if err := cmd.Start(); err != nil {
		ctl.Close()
		return nil, err
	}
	// Ready: "R", within the timeout (the process may be slow to start, or dead), or "E" and
	// the reason it cannot prepare the sandbox.
	ready := make(chan error, 1)
	go func() {
		var b [512]byte
		n, err := ctl.Read(b[:])
		switch {
		case err != nil:
		case n == 1 && b[0] == 'R':
		case n > 1 && b[0] == 'E':
			err = fmt.Errorf("%s", strings.ToValidUTF8(string(b[1:n]), "?"))
		default:
			err = fmt.Errorf("unexpected %q from the process", b[:n])
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(prestartTimeout):
		err = errors.New("not ready in time")
	}
	if err != nil {
		cmd.Process.Kill()
		ctl.Close()
		cmd.Wait()
		return nil, fmt.Errorf("prestarted process: %w", err)
	}
	return &prestarted{cmd: cmd, ctl: ctl, spawn: spawn}, nil
}

// launch sends the request and descriptors and returns the enclave's process: the prestarted
// process itself in exec mode, the child it reports in spawn mode. On error the prestarted
// process is killed and reaped.
func (p *prestarted) launch(req prestartRequest, files []*os.File) (*os.Process, func() error, error) {
	body, err := json.Marshal(req)
	if err != nil || len(body) > maxPrestartRequest || len(files) > maxPrestartFDs {
		p.abandon()
		return nil, nil, fmt.Errorf("sim: launch request too large (%d bytes, %d descriptors)", len(body), len(files))
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	err = unix.Sendmsg(int(p.ctl.Fd()), body, unix.UnixRights(fds...), nil, 0)
	if err != nil {
		p.abandon()
		return nil, nil, fmt.Errorf("sim: handing the enclave to the prestarted process: %w", err)
	}
	if !p.spawn {
		p.ctl.Close()
		return p.cmd.Process, p.cmd.Wait, nil
	}
	// The pid, or nothing if the process failed. Its fork returns once the enclave has executed
	// or failed to, so this is quick; the timeout only keeps a wedged process from holding the
	// load forever (killing it ends the read).
	var msg [8]byte
	type reply struct {
		n   int
		err error
	}
	got := make(chan reply, 1)
	go func() {
		n, err := p.ctl.Read(msg[:])
		got <- reply{n, err}
	}()
	var r reply
	select {
	case r = <-got:
	case <-time.After(prestartTimeout):
		p.cmd.Process.Kill()
		r = <-got
		r.err = errors.New("no answer in time")
	}
	if r.err != nil || r.n != len(msg) {
		p.ctl.Close()
		werr := p.cmd.Wait()
		return nil, nil, fmt.Errorf("sim: prestarted process did not start the enclave (%v, %v)", r.err, werr)
	}
	pid := binary.LittleEndian.Uint64(msg[:])
	if pid == 0 || pid > 1<<22 {
		p.abandon() // closes ctl
		return nil, nil, fmt.Errorf("sim: prestarted process reported pid %d", pid)
	}
	// The enclave is this process's child (CLONE_PARENT), and nobody else reaps it: its pid
	// cannot be reused before Wait.
	proc, err := os.FindProcess(int(pid))
	if err != nil {
		p.abandon()
		return nil, nil, err
	}
	// The prestarted process exits once the control socket is closed: later, off the load.
	ctl := p.ctl
	time.AfterFunc(prestartLinger, func() {
		ctl.Close()
		p.cmd.Wait()
	})
	wait := func() error {
		st, err := proc.Wait()
		if err == nil && !st.Success() {
			err = &exec.ExitError{ProcessState: st}
		}
		return err
	}
	return proc, wait, nil
}

func (p *prestarted) abandon() {
	p.ctl.Close()
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// prestartLinger is how long a prestarted process that started an enclave (spawn mode) is kept
// before it may exit: its exit, a whole Go program torn down, would otherwise compete with the
// enclave's start for the CPU.
const prestartLinger = 20 * time.Millisecond

// refillDelay is how long after handing out its process the pool starts preparing the next: long
// enough for the enclave that got it to start without competing for the CPU.
const refillDelay = 20 * time.Millisecond

// prestartRetry is how long the pool waits after a process failed to start before trying again
// (a host program whose initialisation cannot run in the sandbox's namespaces would otherwise be
// started again at every load).
const prestartRetry = 30 * time.Second

// prestartPool keeps at most one prestarted process.
type prestartPool struct {
	mu       sync.Mutex
	ready    *prestarted
	starting bool
	closed   bool
	lastErr  error
	failedAt time.Time
	reported error // lastErr, once take has returned it
}

// take returns the ready process, if any, and starts preparing the next one. failed is the
// reason the last attempt to prepare one failed, the first time take sees it.
func (pp *prestartPool) take() (p *prestarted, failed error) {
	pp.mu.Lock()
	p = pp.ready
	pp.ready = nil
	if pp.lastErr != nil && pp.lastErr != pp.reported {
		failed, pp.reported = pp.lastErr, pp.lastErr
	}
	pp.mu.Unlock()
	if p != nil && p.cmd.ProcessState == nil && !exited(p.cmd.Process.Pid) {
		time.AfterFunc(refillDelay, pp.refill)
		return p, failed
	}
	if p != nil {
		p.abandon()
	}
	pp.refill()
	return nil, failed
}

// refill starts a process in the background unless one is ready or starting.
func (pp *prestartPool) refill() {
	pp.mu.Lock()
	if pp.closed || pp.ready != nil || pp.starting || (pp.lastErr != nil && time.Since(pp.failedAt) < prestartRetry) {
		pp.mu.Unlock()
		return
	}
	pp.starting = true
	pp.mu.Unlock()
	go func() {
		p, err := startPrestarted()
		pp.mu.Lock()
		pp.starting, pp.lastErr = false, err
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

// close ends the waiting process, and one still starting once it is ready; nothing is prepared
// after it.
func (pp *prestartPool) close() {
	pp.mu.Lock()
	pp.closed = true
	p := pp.ready
	pp.ready = nil
	pp.mu.Unlock()
	if p != nil {
		p.abandon()
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

// prestartProcess returns a ready prestarted process, or nil (prestarting off, or none ready
// yet: the caller starts the enclave itself). A new reason why no process could be prepared is
// logged once.
func (b *Backend) prestartProcess(logger *slog.Logger) *prestarted {
	if !b.prestart || b.noSandbox {
		return nil
	}
	p, failed := b.prestarted.take()
	if failed != nil {
		logger.Warn("sim: cannot prestart a process; enclaves start directly", "retry_after", prestartRetry, "err", failed)
	}
	return p
}

// launchPrestarted hands the enclave to p, with pipes for the standard streams spec asks for.
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
			p.abandon()
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
		i.copies.Wait()
		return err
	}
	i.proc, i.waitProc = proc, wait
	return nil
}
