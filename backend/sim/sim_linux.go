package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asylo-go/asylo/backend"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/sandbox"
	"github.com/asylo-go/asylo/internal/shm"
	"github.com/asylo-go/asylo/internal/wire"
	"github.com/asylo-go/asylo/seal"
	"github.com/asylo-go/asylo/storage"
)

// Image is an enclave image copied into a sealed memfd and measured there: its bytes can no
// longer change, so what is executed is exactly what was measured.
type Image struct {
	f           *os.File
	Measurement identity.Measurement
	Size        int64
	// Static is true for an executable without a program interpreter (PT_INTERP): one that
	// needs no file but itself to start, as `asylo build` makes them (CGO_ENABLED=0). Only
	// those can run in a prestarted process, whose seccomp filter is in place before the
	// image starts (docs/sandbox.md, "Prestarted processes").
	Static bool
}

// Close releases the image.
func (im *Image) Close() error { return im.f.Close() }

// LoadImage copies the file at path into a sealed memfd and measures the sealed copy.
func LoadImage(path string) (*Image, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sim: opening enclave: %w", err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", backend.ErrNotEnclave, path)
	}
	if st.Size() > maxImage {
		return nil, fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrTooLarge, path, st.Size(), maxImage)
	}
	var magic [4]byte
	if _, err := src.ReadAt(magic[:], 0); err != nil || !bytes.Equal(magic[:], []byte("\x7fELF")) {
		return nil, fmt.Errorf("%w: %s is not an ELF executable", backend.ErrNotEnclave, path)
	}

	fd, err := unix.MemfdCreate("asylo-enclave", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("sim: memfd_create: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "asylo-enclave")
	n, err := copyImage(mf, src)
	if err != nil {
		mf.Close()
		return nil, fmt.Errorf("sim: copying enclave image: %w", err)
	}
	if n > maxImage {
		mf.Close()
		return nil, fmt.Errorf("%w: %s grew past %d bytes while being read", ErrTooLarge, path, maxImage)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(mf.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		mf.Close()
		return nil, fmt.Errorf("sim: sealing enclave image: %w", err)
	}
	// Execute-only: a process that executes a file it may not read is not dumpable from its
	// first instruction (the kernel's would_dump), where exec would otherwise make the enclave
	// dumpable until its runtime's init clears that again. This process reads the image through
	// its own descriptor, which was opened read-write.
	if err := unix.Fchmod(int(mf.Fd()), 0o111); err != nil {
		mf.Close()
		return nil, fmt.Errorf("sim: making enclave image execute-only: %w", err)
	}
	// Measure the sealed copy, not the file: the file may change, the memfd cannot.
	m, err := measureFD(mf, n)
	if err != nil {
		mf.Close()
		return nil, err
	}
	// debug/elf checks more than the kernel does (section headers, which exec ignores), which
	// refuses truncated and corrupt images before they run (an enclave image is a Go program).
	ef, err := elf.NewFile(mf)
	if err == nil && ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		err = fmt.Errorf("ELF type %v", ef.Type)
	}
	if err != nil {
		mf.Close()
		return nil, fmt.Errorf("%w: %s is not a complete ELF executable (%v)", backend.ErrNotEnclave, path, err)
	}
	if want := nativeMachine[runtime.GOARCH]; want != 0 && ef.Machine != want {
		mf.Close()
		return nil, fmt.Errorf("%w: %s is built for %v, this machine runs %s", backend.ErrNotEnclave, path, ef.Machine, runtime.GOARCH)
	}
	static := isStatic(ef)
	// An enclave is a Go program built with this module: anything else would only die waiting
	// for its HELLO, with a message that does not say why.
	bi, err := buildinfo.Read(mf)
	if err != nil {
		mf.Close()
		return nil, fmt.Errorf("%w: %s is not a Go program (%v)", backend.ErrNotEnclave, path, err)
	}
	if !linksModule(bi, modulePath) {
		mf.Close()
		return nil, fmt.Errorf("%w: %s is a Go program that does not use %s", backend.ErrNotEnclave, path, modulePath)
	}
	return &Image{f: mf, Measurement: m, Size: n, Static: static}, nil
}

// copyImage copies src to dst, up to one byte more than maxImage. sendfile(2) copies from the
// page cache into the memfd in the kernel, where io.Copy copies through a buffer (its
// copy_file_range fails between file systems): LoadImage of a 3.2 MB image 4.2 → 3.8 ms.
func copyImage(dst, src *os.File) (int64, error) {
	var n int64
	for n <= maxImage {
		c, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), nil, int(min(maxImage+1-n, 1<<30)))
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			if n == 0 && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)) {
				return io.Copy(dst, io.LimitReader(src, maxImage+1)) // a file sendfile cannot read
			}
			return n, err
		}
		if c == 0 {
			break
		}
		n += int64(c)
	}
	return n, nil
}

// nativeMachine is the ELF machine of executables this machine runs, per GOARCH.
var nativeMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM,
	"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "loong64": elf.EM_LOONGARCH,
}

// modulePath is the module every enclave is built with.
const modulePath = "github.com/asylo-go/asylo"

// linksModule reports whether the program bi describes is module mod or depends on it.
func linksModule(bi *buildinfo.BuildInfo, mod string) bool {
	if bi.Main.Path == mod {
		return true
	}
	for _, d := range bi.Deps {
		if d.Path == mod {
			return true
		}
	}
	return false
}

// isStatic reports whether ef has no program interpreter.
func isStatic(ef *elf.File) bool {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

func measureFD(f *os.File, n int64) (identity.Measurement, error) {
	var m identity.Measurement
	if n == 0 {
		return identity.Measurement(sha256.Sum256(nil)), nil
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return m, fmt.Errorf("sim: mapping enclave image: %w", err)
	}
	m = sha256.Sum256(mem)
	unix.Munmap(mem)
	return m, nil
}

// imageKey identifies a file's contents as far as the kernel tells: the same inode, size,
// modification and change times. Any write to the file changes its ctime, which no unprivileged
// process can set back.
type imageKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

// imageCacheSize bounds the sealed images kept for reuse.
const imageCacheSize = 8

// image returns the sealed, measured image of path, reusing one loaded before when the file is
// unchanged. Reuse is safe whatever the cache decides: a cached memfd is sealed, so it still
// holds exactly the bytes that were measured; the cache can only be stale, never wrong about
// what runs. The caller must Close the result.
func (b *Backend) image(path string) (*Image, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return LoadImage(path) // reports the error in LoadImage's words
	}
	key := imageKey{uint64(st.Dev), st.Ino, st.Size, st.Mtim, st.Ctim}
	b.imu.Lock()
	if im, ok := b.images[key]; ok {
		b.imu.Unlock()
		return im.dup()
	}
	b.imu.Unlock()
	im, err := LoadImage(path)
	if err != nil {
		return nil, err
	}
	b.imu.Lock()
	defer b.imu.Unlock()
	if b.closed {
		return im, nil // not cached: Close has released the cache
	}
	if b.images == nil {
		b.images = map[imageKey]*Image{}
	}
	if len(b.images) >= imageCacheSize {
		for k, old := range b.images { // evict any one
			old.Close()
			delete(b.images, k)
			break
		}
	}
	b.images[key] = im
	return im.dup()
}

// dup returns an independent handle on the same sealed memfd.
func (im *Image) dup() (*Image, error) {
	fd, err := unix.FcntlInt(im.f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	return &Image{f: os.NewFile(uintptr(fd), im.f.Name()), Measurement: im.Measurement, Size: im.Size, Static: im.Static}, nil
}

// Start implements backend.Backend.
func (b *Backend) Start(ctx context.Context, spec backend.Spec) (backend.Instance, error) {
	b.imu.Lock()
	closed := b.closed
	b.imu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	img, err := b.image(spec.Path)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	id, err := backend.ResolveIdentity(Name, spec.Path, img.Measurement, spec.Debug)
	if err != nil {
		return nil, err
	}
	if !img.Static && !id.Debug {
		// Its measurement would not cover the program interpreter and the libraries it loads
		// from the host's file system, so a signed identity would claim more than it covers.
		return nil, fmt.Errorf("%w: %s is dynamically linked (it names a program interpreter), so its measurement would not cover the code it loads; build it with asylo build, or load it in debug mode", backend.ErrNotEnclave, spec.Path)
	}
	return b.start(ctx, spec, img, id)
}

func (b *Backend) start(ctx context.Context, spec backend.Spec, img *Image, id identity.Identity) (backend.Instance, error) {
	logger := spec.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sim: socketpair: %w", err)
	}
	childSock := os.NewFile(uintptr(fds[1]), "asylo-child")
	defer childSock.Close()
	hostFile := os.NewFile(uintptr(fds[0]), "asylo-host")
	hostSock, err := net.FileConn(hostFile) // through the net poller, with writev
	hostFile.Close()
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}

	// The enclave's descriptors and the variables that name them (docs/wire.md, launch contract
	// in internal/wire). Started here, they become fds 3, 4, 5, ... in the child; handed to a
	// prestarted process, they keep the numbers they arrive with.
	files := []*os.File{childSock, img.f}
	names := []string{wire.EnvChannel, wire.EnvImage}
	// What the host keeps of each descriptor, closed if the start fails.
	closers := []func() error{hostSock.Close}
	fail := func(err error) (backend.Instance, error) {
		for _, c := range closers {
			c()
		}
		return nil, fmt.Errorf("sim: %w", err)
	}
	var sc *shm.Conn
	if b.switchless {
		var sf *os.File
		sc, sf, err = shm.New(shm.Options{})
		if err != nil {
			return fail(fmt.Errorf("shared memory: %w", err))
		}
		defer sf.Close()
		closers = append(closers, sc.Close)
		files, names = append(files, sf), append(names, wire.EnvSharedMemory)
	}
	// The connection-passing socket: accepted connections go into the enclave as SCM_RIGHTS.
	hostPassConn, childPass, err := seqpacketPair("connpass")
	if err != nil {
		return fail(err)
	}
	defer childPass.Close()
	closers = append(closers, hostPassConn.Close)
	files, names = append(files, childPass), append(names, wire.EnvConnPass)
	// The attention socket (docs/wire.md, "Attention").
	attnConn, childAttn, err := seqpacketPair("attention")
	if err != nil {
		return fail(err)
	}
	defer childAttn.Close()
	closers = append(closers, attnConn.Close)
	attn, err := newNotifier(attnConn)
	if err != nil {
		return fail(err)
	}
	files, names = append(files, childAttn), append(names, wire.EnvAttention)
	env := append([]string(nil), spec.Env...)
	args := append([]string{filepath.Base(spec.Path)}, spec.Args...)
	if b.noSandbox {
		logger.Warn("sim: starting enclave WITHOUT sandbox (InsecureNoSandbox)")
	} else {
		env = append(env, wire.EnvSandbox+"="+wire.SandboxWhole)
	}
	in := &instance{id: id, done: make(chan struct{}), backend: b, pass: hostPassConn.(*net.UnixConn), attn: attn}
	var p *prestarted
	if img.Static {
		if p, err = b.prestartProcess(ctx, logger); err != nil {
			fail(err) // closes what was made for the enclave
			return nil, err
		}
	}
	started := false
	if p != nil {
		err = in.launchPrestarted(p, spec, args, env, files, names)
		if errors.Is(err, errNotSent) {
			logger.Warn("sim: prestarted process lost; starting the enclave directly", "err", err)
			err = nil
		} else {
			started = true
			// The prestarted process was started with sandbox.ProcAttr: its warnings are the load's.
			_, warnings := sandbox.ProcAttr()
			logWarnings(logger, warnings)
		}
	}
	if !started {
		for i, name := range names {
			env = append(env, fmt.Sprintf("%s=%d", name, 3+i))
		}
		cmd := &exec.Cmd{
			// Executing the sealed memfd through the child's own fd 4: the bytes the kernel
			// maps are the measured bytes, whatever happens to spec.Path meanwhile.
			Path:       "/proc/self/fd/4",
			Args:       args,
			Env:        env,
			ExtraFiles: files,
			Stdout:     spec.Stdout,
			Stderr:     spec.Stderr,
		}
		if b.noSandbox {
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			err = sandbox.StartStable(cmd)
		} else {
			var warnings []string
			warnings, err = sandbox.Start(cmd)
			logWarnings(logger, append(warnings, directStart(b, img)))
		}
		if err == nil {
			in.proc, in.waitProc = cmd.Process, cmd.Wait
		}
	}
	if err != nil {
		_, err = fail(fmt.Errorf("starting enclave process: %w", err))
		in.copies.Wait() // a prestarted process's enclave that started ends with its channel
		return nil, err
	}
	if sc != nil {
		in.ch = &shmChannel{Conn: sc, sock: hostSock}
	} else {
		in.ch = hostSock
	}
	go in.wait()
	return in, nil
}

// directStart says why a sandboxed enclave was started directly, and what that leaves out.
func directStart(b *Backend, img *Image) string {
	why := "no prestarted process"
	switch {
	case !b.prestart:
		why = "sim.Direct"
	case !img.Static:
		why = "the image is not static"
	}
	return "started directly (" + why + "): the enclave runtime sandboxes the process from its init function, so the init functions of packages Go initialises before it run unconfined"
}

func logWarnings(logger *slog.Logger, warnings []string) {
	for _, w := range warnings {
		logger.Warn("sim: reduced isolation", "reason", w)
	}
}

// shmChannel is the host end in switchless mode: protocol over shared memory, with the socket
// kept open beside it so the enclave's end stays valid.
type shmChannel struct {
	*shm.Conn
	sock net.Conn
}

func (c *shmChannel) Close() error {
	err := c.Conn.Close()
	c.sock.Close()
	return err
}

type instance struct {
	backend  *Backend
	proc     *os.Process
	waitProc func() error   // waits for proc to end (an *exec.ExitError for a status other than 0)
	copies   sync.WaitGroup // standard streams of a prestarted process
	pass     *net.UnixConn  // connection-passing socket
	attn     *notifier      // attention socket
	passMu   sync.Mutex
	token    uint64
	ch       io.ReadWriteCloser
	id       identity.Identity
	done     chan struct{}
	err      error
}

func (i *instance) wait() {
	err := i.waitProc()
	i.copies.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws, _ := ee.Sys().(syscall.WaitStatus)
		xe := &backend.ExitError{Code: ee.ExitCode()}
		if ws.Signaled() {
			xe.Signal = ws.Signal().String()
		}
		err = xe
	} else if err != nil {
		err = &backend.ExitError{Code: -1, Err: err}
	}
	i.err = err
	i.pass.Close()
	i.attn.close()
	close(i.done)
	// A blocked reader on the shared-memory channel cannot see the process die: wake it, after
	// letting it drain what the enclave wrote last (its FINALIZE result, say).
	if c, ok := i.ch.(*shmChannel); ok {
		c.Conn.PeerGone()
	}
}

// Attest implements backend.Attester: the software platform signs evidence for the identity this
// back-end measured and verified at start.
func (i *instance) Attest(ctx context.Context, userData []byte) ([]byte, error) {
	p, err := i.backend.Platform()
	if err != nil {
		return nil, err
	}
	ev, err := p.Attest(i.id, userData, time.Now())
	if err != nil {
		return nil, err
	}
	return ev.Marshal()
}

// sealRoot is the sealing root of this enclave: the platform secret, bound to the identity this
// back-end measured. It lives on the host side, in the platform: on sim the host can read it.
func (i *instance) sealRoot() (*seal.SoftwareRoot, error) {
	p, err := i.backend.Platform()
	if err != nil {
		return nil, err
	}
	return seal.NewSoftwareRoot(p.SealSecret(), i.id)
}

// SealKeyID implements backend.SealingRoot.
func (i *instance) SealKeyID(ctx context.Context) ([]byte, error) {
	r, err := i.sealRoot()
	if err != nil {
		return nil, err
	}
	id := r.KeyID()
	return id[:], nil
}

// DeriveSealKey implements backend.SealingRoot.
func (i *instance) DeriveSealKey(ctx context.Context, request []byte) ([]byte, error) {
	var req seal.KeyRequest
	if err := req.UnmarshalBinary(request); err != nil {
		return nil, err
	}
	r, err := i.sealRoot()
	if err != nil {
		return nil, err
	}
	return r.DeriveKey(ctx, req)
}

// counters returns the platform's counters and this enclave's namespace in them: the signer and
// product for a signed enclave (so an upgrade keeps its counters), the measurement otherwise.
func (i *instance) counters() (*storage.FileCounter, string, error) {
	p, err := i.backend.Platform()
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(p.Dir(), "counters")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	ns := "m:" + i.id.Measurement.String()
	if i.id.Signed {
		ns = fmt.Sprintf("s:%s:%d", i.id.SignerID, i.id.ProductID)
	}
	if i.id.Debug {
		ns += ":debug"
	}
	return i.backend.counterStore(dir), ns + "/", nil
}

// CounterGet implements backend.MonotonicCounter.
func (i *instance) CounterGet(ctx context.Context, id string) (uint64, error) {
	c, ns, err := i.counters()
	if err != nil {
		return 0, err
	}
	return c.Get(ctx, ns+id)
}

// CounterIncrement implements backend.MonotonicCounter.
func (i *instance) CounterIncrement(ctx context.Context, id string) (uint64, error) {
	c, ns, err := i.counters()
	if err != nil {
		return 0, err
	}
	return c.Increment(ctx, ns+id)
}

// PassConn implements backend.ConnPasser: it sends c's socket into the enclave with a fresh
// token, and closes the host's copy.
func (i *instance) PassConn(c net.Conn) (uint64, error) {
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("sim: cannot pass a %T", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	i.passMu.Lock()
	defer i.passMu.Unlock()
	i.token++
	tok := binary.LittleEndian.AppendUint64(nil, i.token)
	var werr error
	if err := raw.Control(func(fd uintptr) {
		_, _, werr = i.pass.WriteMsgUnix(tok, unix.UnixRights(int(fd)), nil)
	}); err != nil {
		return 0, err
	}
	if werr != nil {
		return 0, fmt.Errorf("sim: passing a connection to the enclave: %w", werr)
	}
	return i.token, nil
}

// Spins reports whether the channel busy-polls (switchless mode).
func (i *instance) Spins() bool {
	_, ok := i.ch.(*shmChannel)
	return ok
}

func (i *instance) Channel() io.ReadWriteCloser { return i.ch }
func (i *instance) Identity() identity.Identity { return i.id }
func (i *instance) Done() <-chan struct{}       { return i.done }
func (i *instance) Pid() int                    { return i.proc.Pid }
func (i *instance) Wait() error                 { <-i.done; return i.err }
func (i *instance) Kill() error {
	select {
	case <-i.done:
		return nil
	default:
	}
	return i.proc.Kill()
}
