//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// NobodyID is the uid and gid the child runs as inside its user namespace
// (and, when the host is root, outside it too).
const NobodyID = 65534

// nsKind is one namespace type ProcAttr tries to use.
type nsKind struct {
	name  string // human name, e.g. "pid namespace"
	file  string // entry under /proc/self/ns
	flag  uintptr
	avail bool
	why   string // reason when !avail
}

type nsProbeResult struct {
	user  nsKind
	other []nsKind // pid, mount, net, ipc, uts, cgroup
}

var (
	nsOnce   sync.Once
	nsResult nsProbeResult
)

// probePath is executed by probe clones. It does not exist, so a successful
// clone+setup ends in execve failing with ENOENT, which clone/unshare never
// return themselves.
const probePath = "/nonexistent/asylo-sandbox-ns-probe"

func isRoot() bool { return os.Geteuid() == 0 }

// idMaps returns the user-namespace id mappings and credentials that make the
// child uid/gid NobodyID.
func userNSAttr(a *syscall.SysProcAttr) {
	hostUID, hostGID := os.Geteuid(), os.Getegid()
	if isRoot() {
		// Map to the host's nobody so the child is unprivileged outside
		// the namespace too.
		hostUID, hostGID = NobodyID, NobodyID
	}
	a.Cloneflags |= syscall.CLONE_NEWUSER
	a.UidMappings = []syscall.SysProcIDMap{{ContainerID: NobodyID, HostID: hostUID, Size: 1}}
	a.GidMappings = []syscall.SysProcIDMap{{ContainerID: NobodyID, HostID: hostGID, Size: 1}}
	// Unprivileged writers must deny setgroups before writing gid_map.
	a.GidMappingsEnableSetgroups = isRoot()
	a.Credential = &syscall.Credential{Uid: NobodyID, Gid: NobodyID, NoSetGroups: !isRoot()}
}

// tryClone starts (and immediately loses to a failed execve) a process with
// the given attributes. It reports nil if the namespaces could be created.
func tryClone(a *syscall.SysProcAttr) error {
	_, err := syscall.ForkExec(probePath, []string{probePath}, &syscall.ProcAttr{Sys: a})
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err == nil {
		// Cannot happen (the path does not exist); be conservative.
		return errors.New("probe unexpectedly started a process")
	}
	return err
}

func probeNamespaces() nsProbeResult {
	nsOnce.Do(func() {
		r := nsProbeResult{
			user: nsKind{name: "user namespace", file: "user", flag: syscall.CLONE_NEWUSER},
			other: []nsKind{
				{name: "pid namespace", file: "pid", flag: syscall.CLONE_NEWPID},
				{name: "mount namespace", file: "mnt", flag: syscall.CLONE_NEWNS},
				{name: "network namespace", file: "net", flag: syscall.CLONE_NEWNET},
				{name: "ipc namespace", file: "ipc", flag: syscall.CLONE_NEWIPC},
				{name: "uts namespace", file: "uts", flag: syscall.CLONE_NEWUTS},
				{name: "cgroup namespace", file: "cgroup", flag: syscall.CLONE_NEWCGROUP},
			},
		}
		kernelHas := func(k *nsKind) bool {
			if _, err := os.Lstat("/proc/self/ns/" + k.file); err != nil {
				k.why = fmt.Sprintf("kernel lacks it (/proc/self/ns/%s: %v)", k.file, err)
				return false
			}
			return true
		}
		// User namespace first: the others are created inside it when it
		// is available (that is what lets an unprivileged host use them).
		if kernelHas(&r.user) {
			a := &syscall.SysProcAttr{}
			userNSAttr(a)
			if err := tryClone(a); err != nil {
				r.user.why = fmt.Sprintf("clone(CLONE_NEWUSER) failed: %v (unprivileged user namespaces disabled? see kernel.unprivileged_userns_clone, user.max_user_namespaces, AppArmor)", err)
			} else {
				r.user.avail = true
			}
		}
		base := func() *syscall.SysProcAttr {
			a := &syscall.SysProcAttr{}
			if r.user.avail {
				userNSAttr(a)
			}
			return a
		}
		// Fast path: everything at once.
		all := base()
		for i := range r.other {
			all.Cloneflags |= r.other[i].flag
		}
		allOK := true
		for i := range r.other {
			if !kernelHas(&r.other[i]) {
				allOK = false
			}
		}
		if allOK && tryClone(all) == nil {
			for i := range r.other {
				r.other[i].avail = true
			}
		} else {
			for i := range r.other {
				k := &r.other[i]
				if k.why != "" {
					continue
				}
				a := base()
				a.Cloneflags |= k.flag
				if err := tryClone(a); err != nil {
					k.why = fmt.Sprintf("clone(%s) failed: %v", k.name, err)
					if !r.user.avail && !isRoot() {
						k.why += " (needs root or a user namespace)"
					}
				} else {
					k.avail = true
				}
			}
		}
		nsResult = r
	})
	return nsResult
}

// ProcAttr returns the SysProcAttr the host uses to start the sim child:
// new user, pid, mount, network, IPC, UTS and cgroup namespaces where the
// kernel allows, Pdeathsig SIGKILL, a new session, and uid/gid 65534 with no
// capabilities. Every isolation it had to leave out is explained in the
// returned warnings, for the host to log.
//
// Pdeathsig fires when the parent THREAD exits: start the child with
// StartStable (Start does), from a thread that never exits.
//
// The namespace probe runs once per process (it costs a few clone(2)s);
// later calls are cheap. The returned value is fresh and may be modified.
func ProcAttr() (*syscall.SysProcAttr, []string) {
	r := probeNamespaces()
	a := &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGKILL,
		Setsid:    true,
	}
	var warns []string
	if r.user.avail {
		userNSAttr(a)
	} else {
		warns = append(warns, fmt.Sprintf("sandbox: user namespace left out: %s", r.user.why))
		if isRoot() {
			// Root can still drop to nobody directly; setuid from 0 to a
			// non-zero uid clears all capabilities.
			a.Credential = &syscall.Credential{Uid: NobodyID, Gid: NobodyID, Groups: []uint32{}}
		} else {
			warns = append(warns, fmt.Sprintf("sandbox: child keeps the host uid %d (not root and no user namespace, cannot switch to %d)", os.Geteuid(), NobodyID))
		}
	}
	for _, k := range r.other {
		if k.avail {
			a.Cloneflags |= k.flag
		} else {
			warns = append(warns, fmt.Sprintf("sandbox: %s left out: %s", k.name, k.why))
		}
	}
	return a, warns
}

// Start starts cmd as a sandboxed child: it sets cmd.SysProcAttr and starts cmd. The returned
// warnings explain every isolation it had to leave out, for the host to log.
//
// A root host starts the child without a user namespace: it drops the child to uid/gid 65534
// with Credential instead (the same uid outside, and no capabilities, as ProcAttr's mapping
// gives), and the child joins one empty network namespace that every child of this process
// shares, rather than getting its own. That spares each load the two costliest parts of its
// namespaces (docs/sandbox.md §1): Go's forkExec can vfork only without
// CLONE_NEWUSER, and creating a network namespace costs ~0.5 ms. The child still gets its own
// pid, mount, IPC, UTS and cgroup namespaces. Any other host, or a root host where that set
// cannot be made, starts the child with ProcAttr.
func Start(cmd *exec.Cmd) (warnings []string, err error) {
	d := probeDirect()
	if !d.ok {
		attr, warns := ProcAttr()
		cmd.SysProcAttr = attr
		return warns, StartStable(cmd)
	}
	attr := d.attr
	cmd.SysProcAttr = &attr
	if d.net == nil {
		return nil, StartStable(cmd)
	}
	return nil, d.net.do(cmd.Start)
}

// StartStable starts cmd, as set up by the caller, from an OS thread that never exits. A
// child's parent-death signal (SysProcAttr.Pdeathsig, or PR_SET_PDEATHSIG in a child started
// with CLONE_PARENT) fires when the thread that created it exits, not the process; the Go
// runtime ends a thread when a goroutine locked to it exits, which a host program may do at
// any time.
func StartStable(cmd *exec.Cmd) error {
	t, err := stable()
	if err != nil {
		return err
	}
	return t.do(cmd.Start)
}

var (
	stableOnce   sync.Once
	stableThread *starter
	stableErr    error
)

func stable() (*starter, error) {
	stableOnce.Do(func() { stableThread, stableErr = newStarter(nil) })
	return stableThread, stableErr
}

// directResult is how Start starts children of a root host, probed once.
type directResult struct {
	ok   bool
	attr syscall.SysProcAttr
	net  *starter // nil: each child gets its own network namespace (attr has CLONE_NEWNET)
}

var (
	directOnce sync.Once
	direct     directResult
)

func probeDirect() directResult {
	directOnce.Do(func() {
		if !isRoot() {
			return
		}
		a := syscall.SysProcAttr{
			Pdeathsig:  syscall.SIGKILL,
			Setsid:     true,
			Credential: &syscall.Credential{Uid: NobodyID, Gid: NobodyID, Groups: []uint32{}},
		}
		for _, f := range []string{"pid", "mnt", "ipc", "uts", "cgroup", "net"} {
			if _, err := os.Lstat("/proc/self/ns/" + f); err != nil {
				return // a kernel without it: ProcAttr explains what is left out
			}
		}
		a.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWIPC |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP
		probe := a
		if tryClone(&probe) != nil {
			return // e.g. root without CAP_SYS_ADMIN in a container: ProcAttr's user namespace
		}
		if t, err := newStarter(func() error { return unix.Unshare(unix.CLONE_NEWNET) }); err == nil {
			direct = directResult{ok: true, attr: a, net: t}
			return
		}
		probe.Cloneflags |= syscall.CLONE_NEWNET
		if tryClone(&probe) == nil {
			a.Cloneflags |= syscall.CLONE_NEWNET
			direct = directResult{ok: true, attr: a}
		}
	})
	return direct
}

// starter is an OS thread that starts children: a root host's, in a new, empty network
// namespace it has left the process's for (a child is created in the namespaces of the thread
// that clones it), or any host's, on a thread that never exits (StartStable). The thread
// stays locked to its goroutine and never exits: it must not return to the runtime's pool in
// another namespace (the runtime never creates threads from a locked one), and children's
// parent-death signal fires when the thread that started them exits.
type starter struct {
	calls chan func()
}

// newStarter starts the thread and runs setup on it first.
func newStarter(setup func() error) (*starter, error) {
	t := &starter{calls: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			t.serve(setup, ready)
			return
		}
		// This is the main thread, whose namespaces /proc/self/ns names: they must stay the
		// process's. While this goroutine holds it, the next one runs on another thread.
		inner := make(chan error, 1)
		go t.serve(setup, inner)
		err := <-inner
		runtime.UnlockOSThread()
		ready <- err
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return t, nil
}

// serve locks the calling goroutine's thread, runs setup on it and then calls.
func (t *starter) serve(setup func() error, ready chan<- error) {
	runtime.LockOSThread()
	if setup != nil {
		if err := setup(); err != nil {
			ready <- err
			return // still locked: the runtime ends the thread
		}
	}
	ready <- nil
	for f := range t.calls {
		f()
	}
}

// do runs f on the thread and returns its error.
func (t *starter) do(f func() error) error {
	done := make(chan error, 1)
	t.calls <- func() { done <- f() }
	return <-done
}

// Probe reports which isolation features this machine supports.
func Probe() []Feature {
	var fs []Feature

	// seccomp: the library's probe (SECCOMP_SET_MODE_STRICT with a bad flag
	// returns EINVAL when the syscall exists).
	sc := seccompSupported()
	fs = append(fs, Feature{Name: "seccomp", Available: sc, Detail: boolDetail(sc,
		"seccomp(2) filter mode with TSYNC", "seccomp(2) unavailable: Restrict will fail")})

	nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	fs = append(fs, Feature{Name: "no_new_privs", Available: err == nil,
		Detail: fmt.Sprintf("prctl(PR_GET_NO_NEW_PRIVS)=%d err=%v", nnp, err)})

	abi := landlockABI()
	fs = append(fs, Feature{Name: "landlock", Available: abi > 0, Detail: landlockDetail(abi)})
	fs = append(fs, Feature{Name: "landlock network (TCP)", Available: abi >= 4,
		Detail: fmt.Sprintf("needs ABI 4, have %d", abi)})
	fs = append(fs, Feature{Name: "landlock scopes (abstract unix, signals)", Available: abi >= 6,
		Detail: fmt.Sprintf("needs ABI 6, have %d", abi)})

	r := probeNamespaces()
	for _, k := range append([]nsKind{r.user}, r.other...) {
		d := "available"
		if !k.avail {
			d = k.why
		}
		fs = append(fs, Feature{Name: k.name, Available: k.avail, Detail: d})
	}
	// How children start, not an isolation feature: always "available", so that doctor does
	// not call the slower mode degraded.
	perChild := "a user namespace per child: each direct load (sim.Direct) copies this host's page tables (~1 ms more per load, more with a large heap); by default sim starts enclaves from one spawner instead"
	if isRoot() {
		d := probeDirect()
		detail := perChild
		switch {
		case d.ok && d.net != nil:
			detail = fmt.Sprintf("fast: no user namespace (uid/gid %d outside, no capabilities); one empty network namespace shared by this host's children", NobodyID)
		case d.ok:
			detail = fmt.Sprintf("no user namespace (uid/gid %d outside, no capabilities); a network namespace per child", NobodyID)
		}
		fs = append(fs, Feature{Name: "root host start mode", Available: true, Detail: detail})
	} else if r.user.avail {
		fs = append(fs, Feature{Name: "host start mode", Available: true, Detail: perChild})
	}
	drop := r.user.avail || isRoot()
	fs = append(fs, Feature{Name: "unprivileged child uid", Available: drop, Detail: boolDetail(drop,
		fmt.Sprintf("child runs as uid/gid %d without capabilities", NobodyID),
		fmt.Sprintf("child keeps host uid %d", os.Geteuid()))})
	return fs
}

func boolDetail(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func landlockDetail(abi int) string {
	if abi == 0 {
		return "not available (kernel without Landlock, or not in the LSM list)"
	}
	if abi < landlockWantABI {
		return fmt.Sprintf("ABI %d (best effort; newest requested %d)", abi, landlockWantABI)
	}
	return fmt.Sprintf("ABI %d", abi)
}
