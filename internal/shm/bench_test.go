//go:build linux

package shm

import (
	"encoding/binary"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reportCPU reports the CPU time (user+sys) per operation of this process,
// of the peer and of both together.
func reportCPU(b *testing.B, self, peer time.Duration) {
	n := float64(b.N)
	b.ReportMetric(float64(self.Nanoseconds())/n, "self-cpu-ns/op")
	b.ReportMetric(float64(peer.Nanoseconds())/n, "peer-cpu-ns/op")
	b.ReportMetric(float64((self+peer).Nanoseconds())/n, "cpu-ns/op")
}

// pp64 performs one 64-byte round trip; if cpu is set it asks the peer for
// its CPU time and returns it.
func pp64(b *testing.B, c *Conn, buf []byte, cpu bool) time.Duration {
	buf[0] = 0
	if cpu {
		buf[0] = 0xFF
	}
	if _, err := c.Write(buf); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		b.Fatal(err)
	}
	return time.Duration(binary.LittleEndian.Uint64(buf[1:]))
}

// BenchmarkRoundTrip64 measures a 64-byte request/response between two
// processes over Conn: with the default spin budget, and futex-only.
func BenchmarkRoundTrip64(b *testing.B) {
	for _, tc := range []struct {
		name string
		spin time.Duration
	}{
		{"spin", 0},
		{"futex", -1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, _ := newPair(b, "pp64", Options{Size: 64 << 10, Spin: tc.spin}, tc.spin.String())
			buf := make([]byte, 64)
			for i := 0; i < 1000; i++ { // warm up
				pp64(b, c, buf, false)
			}
			p0, s0 := pp64(b, c, buf, true), cpuNow()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pp64(b, c, buf, false)
			}
			b.StopTimer()
			s1, p1 := cpuNow(), pp64(b, c, buf, true)
			reportCPU(b, s1-s0, p1-p0)
		})
	}
}

// BenchmarkFloorAtomic is the raw floor: ping-pong of a counter on two shared
// atomic words, both processes busy-polling with no Conn logic at all.
func BenchmarkFloorAtomic(b *testing.B) {
	fd, err := unix.MemfdCreate("floor", unix.MFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "floor")
	if err := f.Truncate(4096); err != nil {
		b.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mem)
	out := (*uint64)(unsafe.Pointer(&mem[0]))
	in := (*uint64)(unsafe.Pointer(&mem[128]))
	cpu := (*uint64)(unsafe.Pointer(&mem[256]))
	p := startPeer(b, "atomic", f, "")
	f.Close()
	var seq uint64
	rt := func(flag uint64) {
		seq++
		v := seq | flag
		atomic.StoreUint64(out, v)
		for atomic.LoadUint64(in) != v {
		}
	}
	for i := 0; i < 1000; i++ {
		rt(0)
	}
	rt(1 << 63)
	p0, s0 := time.Duration(atomic.LoadUint64(cpu)), cpuNow()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rt(0)
	}
	b.StopTimer()
	s1 := cpuNow()
	rt(1 << 63)
	p1 := time.Duration(atomic.LoadUint64(cpu))
	reportCPU(b, s1-s0, p1-p0)
	atomic.StoreUint64(out, ^uint64(0))
	p.wait(b, 5*time.Second)
}

// BenchmarkFloorSocketpair is a 64-byte ping-pong over an AF_UNIX socketpair.
func BenchmarkFloorSocketpair(b *testing.B) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fds[0])
	f := os.NewFile(uintptr(fds[1]), "sock")
	startPeer(b, "sock", f, "")
	f.Close()
	fd := fds[0]
	buf := make([]byte, 64)
	rt := func(cpu bool) time.Duration {
		buf[0] = 0
		if cpu {
			buf[0] = 0xFF
		}
		if _, err := unix.Write(fd, buf); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < 64; {
			n, err := unix.Read(fd, buf[got:])
			if err == unix.EINTR {
				continue
			}
			if err != nil || n == 0 {
				b.Fatal("read", n, err)
			}
			got += n
		}
		return time.Duration(binary.LittleEndian.Uint64(buf[1:]))
	}
	for i := 0; i < 1000; i++ {
		rt(false)
	}
	p0, s0 := rt(true), cpuNow()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rt(false)
	}
	b.StopTimer()
	s1, p1 := cpuNow(), rt(true)
	reportCPU(b, s1-s0, p1-p0)
}

// BenchmarkThroughput1MiB measures one-way throughput: each op writes 1 MiB
// (in 64 KiB writes) to the peer, which reads and discards it.
func BenchmarkThroughput1MiB(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"ring1M", 1 << 20},
		{"ring64K", 64 << 10},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, _ := newPair(b, "sink", Options{Size: tc.size}, "")
			chunk := make([]byte, 64<<10)
			var hdr [8]byte
			binary.LittleEndian.PutUint64(hdr[:], uint64(b.N)<<20)
			b.SetBytes(1 << 20)
			b.ResetTimer()
			if _, err := c.Write(hdr[:]); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				for j := 0; j < 16; j++ {
					if _, err := c.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
			}
			if _, err := io.ReadFull(c, hdr[:1]); err != nil {
				b.Fatal(err)
			}
		})
	}
}
