//go:build linux

package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as the peer process: when envPeer is set,
// TestMain runs the requested peer mode on fd 3 (ExtraFiles[0]) and exits.
const (
	envPeer = "ASYLO_SHM_PEER"
	envSpin = "ASYLO_SHM_SPIN"
	// envFutexTimeout overrides futexTimeout in the peer.
	envFutexTimeout = "ASYLO_SHM_FUTEX_TIMEOUT"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envPeer); mode != "" {
		os.Exit(runPeer(mode))
	}
	os.Exit(m.Run())
}

// cpuNow returns the user+system CPU time consumed by this process so far.
func cpuNow() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func peerFail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "shm peer: "+format+"\n", args...)
	return 2
}

func runPeer(mode string) int {
	f := os.NewFile(3, "peer")
	switch mode {
	case "atomic":
		return peerAtomic(f)
	case "sock":
		return peerSock(f)
	}
	var opts Options
	if s := os.Getenv(envFutexTimeout); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return peerFail("bad futex timeout: %v", err)
		}
		futexTimeout = d
	}
	if s := os.Getenv(envSpin); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return peerFail("bad spin: %v", err)
		}
		opts.Spin = d
	}
	c, err := Open(f, opts)
	if err != nil {
		return peerFail("open: %v", err)
	}
	f.Close()
	defer c.Close()
	switch mode {
	case "echo": // stream echo until EOF
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err == io.EOF {
				return 0
			}
			if err != nil {
				return peerFail("echo read: %v", err)
			}
			if _, err := c.Write(buf[:n]); err != nil {
				if errors.Is(err, io.ErrClosedPipe) {
					return 0
				}
				return peerFail("echo write: %v", err)
			}
		}
	case "pp64": // 64-byte messages; 0xFF in byte 0 asks for our CPU time
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				if err == io.EOF {
					return 0
				}
				return peerFail("pp64 read: %v", err)
			}
			if buf[0] == 0xFF {
				binary.LittleEndian.PutUint64(buf[1:], uint64(cpuNow()))
			}
			if _, err := c.Write(buf); err != nil {
				return peerFail("pp64 write: %v", err)
			}
		}
	case "sink": // frames: 8-byte length, payload; replies 1 byte per frame
		buf := make([]byte, 1<<20)
		var hdr [8]byte
		for {
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				if err == io.EOF {
					return 0
				}
				return peerFail("sink read: %v", err)
			}
			n := binary.LittleEndian.Uint64(hdr[:])
			for n > 0 {
				m := min(n, uint64(len(buf)))
				k, err := c.Read(buf[:m])
				if err != nil {
					return peerFail("sink payload: %v", err)
				}
				n -= uint64(k)
			}
			if _, err := c.Write(hdr[:1]); err != nil {
				return peerFail("sink ack: %v", err)
			}
		}
	case "closeonbyte": // read one byte, wait a little, close
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			return peerFail("closeonbyte: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
		c.Close()
		return 0
	case "expecteof": // blocked Read must return io.EOF when the parent closes
		var b [1]byte
		_, err := c.Read(b[:])
		if err != io.EOF {
			return peerFail("expecteof: got %v", err)
		}
		return 0
	case "flood": // blocked Write must return io.ErrClosedPipe when the parent closes
		buf := make([]byte, 1<<20)
		_, err := c.Write(buf)
		if !errors.Is(err, io.ErrClosedPipe) {
			return peerFail("flood: got %v", err)
		}
		return 0
	case "block":
		time.Sleep(time.Hour)
		return 0
	case "corrupt": // publish an impossible tail and wake the parent
		atomic.StoreUint64(c.out.tail, 1<<40)
		atomic.AddUint32(c.out.dataSeq, 1)
		futexWake(c.out.dataSeq)
		time.Sleep(time.Hour)
		return 0
	}
	return peerFail("unknown mode %q", mode)
}

// Raw floor: ping-pong on two shared atomic words (offset 0: parent->peer,
// offset 128: peer->parent). A value with the top bit set asks for the peer's
// CPU time, written at offset 256 before the reply; ^0 means exit.
func peerAtomic(f *os.File) int {
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return peerFail("mmap: %v", err)
	}
	in := (*uint64)(unsafe.Pointer(&mem[0]))
	out := (*uint64)(unsafe.Pointer(&mem[128]))
	cpu := (*uint64)(unsafe.Pointer(&mem[256]))
	var last uint64
	for {
		v := atomic.LoadUint64(in)
		if v == last {
			continue
		}
		last = v
		if v == ^uint64(0) {
			return 0
		}
		if v&(1<<63) != 0 {
			atomic.StoreUint64(cpu, uint64(cpuNow()))
		}
		atomic.StoreUint64(out, v)
	}
}

// Raw floor: 64-byte ping-pong over a socketpair (0xFF in byte 0 asks for CPU time).
func peerSock(f *os.File) int {
	fd := int(f.Fd())
	buf := make([]byte, 64)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return 0
		}
		if n != 64 {
			return peerFail("sock: short read %d", n)
		}
		if buf[0] == 0xFF {
			binary.LittleEndian.PutUint64(buf[1:], uint64(cpuNow()))
		}
		if _, err := unix.Write(fd, buf); err != nil {
			return peerFail("sock write: %v", err)
		}
	}
}

// peer is a running peer process.
type peer struct {
	cmd  *exec.Cmd
	done chan error
}

// startPeer re-executes the test binary in the given mode with f as fd 3.
// spin is passed as the peer's Options.Spin ("" = default).
func startPeer(tb testing.TB, mode string, f *os.File, spin string) *peer {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envPeer+"="+mode, envSpin+"="+spin, envFutexTimeout+"="+futexTimeout.String())
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start peer: %v", err)
	}
	p := &peer{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	tb.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		p.done <- nil
	})
	return p
}

// wait waits for the peer to exit and returns its exit error (nil = status 0).
func (p *peer) wait(tb testing.TB, d time.Duration) error {
	tb.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(d):
		tb.Fatalf("peer did not exit within %v", d)
		return nil
	}
}

// newPair creates a region and starts a peer process on it.
func newPair(tb testing.TB, mode string, opts Options, peerSpin string) (*Conn, *peer) {
	tb.Helper()
	c, f, err := New(opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	p := startPeer(tb, mode, f, peerSpin)
	f.Close()
	tb.Cleanup(func() { c.Close() })
	return c, p
}
