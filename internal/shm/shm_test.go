//go:build linux

package shm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// (a) Byte-stream correctness across processes with random write/read sizes
// up to several ring sizes.
func TestEchoStream(t *testing.T) {
	cases := []struct {
		name  string
		size  int
		spin  time.Duration
		total int
	}{
		{"ring4K", 4096, 0, 4 << 20},
		{"ring4K-nospin", 4096, -1, 2 << 20},
		{"ring64K-spin1us", 64 << 10, time.Microsecond, 8 << 20},
		{"ring1M", 1 << 20, 0, 24 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			total := tc.total
			if testing.Short() {
				total /= 4
			}
			c, p := newPair(t, "echo", Options{Size: tc.size, Spin: tc.spin}, tc.spin.String())
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			maxChunk := 3 * tc.size
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				src := rand.New(rand.NewPCG(seed, 1))
				data := rand.New(rand.NewPCG(seed, 2))
				buf := make([]byte, maxChunk)
				for sent := 0; sent < total; {
					n := min(1+src.IntN(maxChunk), total-sent)
					for i := range buf[:n] {
						buf[i] = byte(data.Uint32())
					}
					if m, err := c.Write(buf[:n]); err != nil || m != n {
						t.Errorf("Write(%d) = %d, %v", n, m, err)
						return
					}
					sent += n
				}
			}()
			src := rand.New(rand.NewPCG(seed, 3))
			data := rand.New(rand.NewPCG(seed, 2))
			buf := make([]byte, maxChunk)
			for got := 0; got < total; {
				n, err := c.Read(buf[:1+src.IntN(maxChunk)])
				if err != nil {
					t.Fatalf("Read after %d bytes: %v", got, err)
				}
				for i, b := range buf[:n] {
					if want := byte(data.Uint32()); b != want {
						t.Fatalf("byte %d: got %#x want %#x", got+i, b, want)
					}
				}
				got += n
			}
			wg.Wait()
			c.Close()
			if err := p.wait(t, 5*time.Second); err != nil {
				t.Fatalf("peer: %v", err)
			}
		})
	}
}

// (b) Lost-wake-up torture: many small round trips where (nearly) every wait
// goes through the futex path. Any round taking more than 1 s fails.
func TestLostWakeupTorture(t *testing.T) {
	total := 20 * time.Second
	if testing.Short() {
		total = 2 * time.Second
	}
	if s := os.Getenv("ASYLO_SHM_TORTURE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		total = d
	}
	// With the normal 100 ms timeout a lost wake-up only shows up as a slow
	// round; make it a 10 s stall (in both processes) so the watchdog fails.
	defer func(d time.Duration) { futexTimeout = d }(futexTimeout)
	futexTimeout = 10 * time.Second
	const stallLimit = 5 * time.Second
	for _, tc := range []struct {
		name  string
		spin  time.Duration
		share int // in quarters of total
	}{
		{"nospin", -1, 3},
		{"spin1us", time.Microsecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := total * time.Duration(tc.share) / 4
			c, p := newPair(t, "echo", Options{Size: 4096, Spin: tc.spin}, tc.spin.String())
			var progress atomic.Int64 // unix nanos of last completed round
			progress.Store(time.Now().UnixNano())
			stop := make(chan struct{})
			var stalled atomic.Bool
			go func() {
				tk := time.NewTicker(50 * time.Millisecond)
				defer tk.Stop()
				for {
					select {
					case <-stop:
						return
					case now := <-tk.C:
						// A lost wake-up stalls for the whole 10 s futex timeout; 5 s tolerates a
						// starved process on a loaded 2-core machine without missing one.
						if now.UnixNano()-progress.Load() > int64(stallLimit) {
							stalled.Store(true)
							t.Logf("stall: %s\npeer threads: %s", c.debugState(), procThreads(p.cmd.Process.Pid))
							c.Close() // unblock the round trip
							return
						}
					}
				}
			}()
			var out, in [8]byte
			rounds := 0
			start := time.Now()
			var worst time.Duration
			s0, e0 := statSlept.Load(), statEagain.Load()
			for time.Since(start) < d {
				for i := 0; i < 256; i++ {
					t0 := time.Now()
					out[0], out[1], out[2] = byte(rounds), byte(rounds>>8), byte(rounds>>16)
					if _, err := c.Write(out[:]); err != nil {
						close(stop)
						t.Fatalf("round %d: write: %v (stalled=%v)", rounds, err, stalled.Load())
					}
					if _, err := io.ReadFull(c, in[:]); err != nil {
						close(stop)
						t.Fatalf("round %d: read: %v (stalled=%v)", rounds, err, stalled.Load())
					}
					if in != out {
						close(stop)
						t.Fatalf("round %d: echo mismatch %x != %x", rounds, in, out)
					}
					rt := time.Since(t0)
					worst = max(worst, rt)
					progress.Store(time.Now().UnixNano())
					rounds++
				}
			}
			close(stop)
			el := time.Since(start)
			t.Logf("parent futex waits: %d slept+woken, %d EAGAIN", statSlept.Load()-s0, statEagain.Load()-e0)
			t.Logf("%d round trips in %v (%.1f µs/round, worst %v)", rounds, el.Round(time.Millisecond),
				float64(el.Microseconds())/float64(rounds), worst)
			if stalled.Load() {
				t.Fatalf("a round trip stalled for more than %v", stallLimit)
			}
		})
	}
}

// (c) Close from either side unblocks the other.
func TestPeerCloseUnblocksRead(t *testing.T) {
	c, p := newPair(t, "closeonbyte", Options{Size: 4096}, "")
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var b [1]byte
	n, err := c.Read(b[:])
	if err != io.EOF || n != 0 {
		t.Fatalf("Read = %d, %v; want io.EOF", n, err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("Read took %v", el)
	}
	if err := p.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte{1}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Write after peer close: %v", err)
	}
}

func TestLocalCloseUnblocksPeerRead(t *testing.T) {
	for _, spin := range []time.Duration{0, -1} {
		c, p := newPair(t, "expecteof", Options{Size: 4096, Spin: spin}, spin.String())
		time.Sleep(100 * time.Millisecond)
		c.Close()
		if err := p.wait(t, 5*time.Second); err != nil {
			t.Fatalf("spin %v: peer: %v", spin, err)
		}
	}
}

func TestLocalCloseUnblocksPeerWrite(t *testing.T) {
	c, p := newPair(t, "flood", Options{Size: 4096}, "-1ns")
	time.Sleep(100 * time.Millisecond)
	c.Close()
	if err := p.wait(t, 5*time.Second); err != nil {
		t.Fatalf("peer: %v", err)
	}
}

// inProcessPair returns both endpoints of one region in this process.
func inProcessPair(t testing.TB, opts Options) (a, b *Conn) {
	t.Helper()
	a, f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err = Open(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestLocalCloseUnblocksLocal(t *testing.T) {
	for _, spin := range []time.Duration{0, -1} {
		a, b := inProcessPair(t, Options{Size: 4096, Spin: spin})
		errc := make(chan error, 2)
		go func() {
			_, err := a.Read(make([]byte, 10))
			errc <- err
		}()
		go func() {
			_, err := a.Write(make([]byte, 10000)) // more than the ring: blocks
			errc <- err
		}()
		time.Sleep(50 * time.Millisecond)
		a.Close()
		for i := 0; i < 2; i++ {
			select {
			case err := <-errc:
				if !errors.Is(err, io.ErrClosedPipe) {
					t.Fatalf("spin %v: got %v, want io.ErrClosedPipe", spin, err)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("spin %v: blocked call not released by Close", spin)
			}
		}
		if _, err := a.Read(make([]byte, 1)); !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("Read after Close: %v", err)
		}
		// The peer sees EOF (after draining the 4096 bytes that fitted).
		buf := make([]byte, 8192)
		got := 0
		for {
			n, err := b.Read(buf)
			got += n
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if got != 4096 {
			t.Fatalf("peer drained %d bytes, want 4096", got)
		}
	}
}

func TestDataBeforeCloseIsDelivered(t *testing.T) {
	a, b := inProcessPair(t, Options{Size: 4096})
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "hello" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Write to closed peer: %v", err)
	}
}

// (d) A peer killed with SIGKILL never closes; the parent's blocked Read
// returns as soon as the parent calls Close.
func TestPeerKilled(t *testing.T) {
	c, p := newPair(t, "block", Options{Size: 4096}, "")
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 16))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	p.cmd.Process.Kill()
	p.wait(t, 5*time.Second)
	select {
	case err := <-errc:
		t.Fatalf("Read returned before Close: %v", err)
	case <-time.After(150 * time.Millisecond):
	}
	start := time.Now()
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("Read: %v", err)
		}
		t.Logf("Read released %v after Close", time.Since(start))
	case <-time.After(time.Second):
		t.Fatal("Read not released by Close")
	}
}

// (e) Corrupt header and indices yield ErrCorrupt, never a panic or hang.
func TestCorruptHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		off  int
		val  uint64
		w32  bool
	}{
		{"magic", offMagic, 0x1234, false},
		{"version", offVersion, 2, true},
		{"hdrsize", offHdrSize, 8192, true},
		{"ringsize-not-pow2", offRingSize, 4097, false},
		{"ringsize-mismatch", offRingSize, 8192, false},
		{"ringsize-huge", offRingSize, 1 << 62, false},
		{"ringsize-zero", offRingSize, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, f, err := New(Options{Size: 4096})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			defer f.Close()
			if tc.w32 {
				atomic.StoreUint32(u32(a.mem, tc.off), uint32(tc.val))
			} else {
				atomic.StoreUint64(u64(a.mem, tc.off), tc.val)
			}
			b, err := Open(f, Options{})
			if !errors.Is(err, ErrCorrupt) {
				if b != nil {
					b.Close()
				}
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestOpenRejectsUnsealed(t *testing.T) {
	fd, err := unix.MemfdCreate("x", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "x")
	defer f.Close()
	if err := f.Truncate(headerSize + 2*MinSize); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(f, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open(unsealed) = %v, want ErrCorrupt", err)
	}
	tmp, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	if _, err := Open(tmp, Options{}); err == nil {
		t.Fatal("Open(regular file) succeeded")
	}
}

func TestCorruptIndices(t *testing.T) {
	t.Run("tail-beyond-capacity", func(t *testing.T) {
		a, b := inProcessPair(t, Options{Size: 4096})
		atomic.StoreUint64(a.out.tail, 4097)
		if _, err := b.Read(make([]byte, 10)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Read: %v", err)
		}
		if _, err := b.Write([]byte{1}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Write after corruption: %v", err)
		}
		// The failed side marked itself closed for the peer.
		if _, err := a.Write([]byte{1}); !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("peer Write: %v", err)
		}
	})
	t.Run("tail-backwards", func(t *testing.T) {
		a, b := inProcessPair(t, Options{Size: 4096})
		a.Write([]byte("abcdef"))
		if n, err := b.Read(make([]byte, 6)); n != 6 || err != nil {
			t.Fatal(n, err)
		}
		atomic.StoreUint64(a.out.tail, 2)
		if _, err := b.Read(make([]byte, 10)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Read: %v", err)
		}
	})
	t.Run("head-beyond-tail", func(t *testing.T) {
		a, b := inProcessPair(t, Options{Size: 4096})
		atomic.StoreUint64(b.in.head, 1<<50)
		// The writer consults head only when its cached view is full.
		if _, err := a.Write(make([]byte, 5000)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Write: %v", err)
		}
	})
	t.Run("garbage-wait-words", func(t *testing.T) {
		a, b := inProcessPair(t, Options{Size: 4096, Spin: -1})
		for _, w := range []*uint64{a.out.rwait, a.out.wwait, a.in.rwait, a.in.wwait} {
			atomic.StoreUint64(w, 0xdeadbeef)
		}
		for _, w := range []*uint32{a.out.dataSeq, a.out.spaceSeq, a.in.dataSeq, a.in.spaceSeq} {
			atomic.StoreUint32(w, 0xffffffff)
		}
		go a.Write(bytes.Repeat([]byte{7}, 20000))
		got, err := io.ReadAll(io.LimitReader(b, 20000))
		if err != nil || len(got) != 20000 {
			t.Fatalf("ReadAll = %d, %v", len(got), err)
		}
	})
	t.Run("cross-process", func(t *testing.T) {
		c, _ := newPair(t, "corrupt", Options{Size: 4096}, "")
		errc := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 10))
			errc <- err
		}()
		select {
		case err := <-errc:
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Read: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read did not detect corruption")
		}
	})
}

func TestOptions(t *testing.T) {
	for _, size := range []int{-1, 1, 4095, 4097, 3 << 20, 2 << 30} {
		if c, f, err := New(Options{Size: size}); err == nil {
			c.Close()
			f.Close()
			t.Errorf("New(Size=%d) succeeded", size)
		}
	}
	a, f, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer f.Close()
	if a.size != DefaultSize || a.spin != DefaultSpin {
		t.Fatalf("defaults: size %d spin %v", a.size, a.spin)
	}
	if _, err := Open(f, Options{Size: 4096}); err == nil {
		t.Fatal("Open with mismatching size succeeded")
	}
	if n, err := a.Write(nil); n != 0 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := a.Read(nil); n != 0 || err != nil {
		t.Fatal(n, err)
	}
}

func (c *Conn) debugState() string {
	r := func(x ring) string {
		return fmt.Sprintf("tail=%d head=%d rwait=%d wwait=%d dataSeq=%d spaceSeq=%d",
			atomic.LoadUint64(x.tail), atomic.LoadUint64(x.head), atomic.LoadUint64(x.rwait),
			atomic.LoadUint64(x.wwait), atomic.LoadUint32(x.dataSeq), atomic.LoadUint32(x.spaceSeq))
	}
	return fmt.Sprintf("in{%s} rhead=%d lastWW=%d; out{%s} wtail=%d lastRW=%d; closed me=%d peer=%d",
		r(c.in), c.rhead, c.lastWW, r(c.out), c.wtail, c.lastRW, atomic.LoadUint32(c.myClosed), atomic.LoadUint32(c.peerClosed))
}

// procThreads describes the state and wait channel of every thread of pid.
func procThreads(pid int) string {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		st, _ := os.ReadFile(dir + "/" + e.Name() + "/stat")
		wc, _ := os.ReadFile(dir + "/" + e.Name() + "/wchan")
		f := strings.Fields(string(st))
		state := "?"
		if len(f) > 2 {
			state = f[2]
		}
		out = append(out, e.Name()+":"+state+":"+string(wc))
	}
	return strings.Join(out, " ")
}

// SetReadDeadline ends a Read that waits, whether it spins or sleeps on the futex, and never
// loses data: what is there is returned, and reading resumes once the deadline is cleared.
func TestReadDeadline(t *testing.T) {
	for _, spin := range []time.Duration{-1, 50 * time.Microsecond} {
		t.Run(fmt.Sprint("spin=", spin), func(t *testing.T) {
			a, b := inProcessPair(t, Options{Size: MinSize, Spin: spin})
			buf := make([]byte, 16)

			b.SetReadDeadline(time.Unix(1, 0))
			if _, err := b.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read past its deadline, no data: %v", err)
			}
			a.Write([]byte("data"))
			if n, err := b.Read(buf); err != nil || string(buf[:n]) != "data" {
				t.Fatalf("Read past its deadline with data there: %q, %v", buf[:n], err)
			}

			b.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
			start := time.Now()
			if _, err := b.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read with a 30 ms deadline: %v", err)
			}
			if d := time.Since(start); d < 25*time.Millisecond || d > 5*time.Second {
				t.Errorf("Read with a 30 ms deadline returned after %v", d)
			}

			// A Read asleep with no deadline is woken by one set from another goroutine (the
			// futex timeout, raised here, would otherwise wake it).
			defer func(d time.Duration) { futexTimeout = d }(futexTimeout)
			futexTimeout = time.Minute
			b.SetReadDeadline(time.Time{})
			wokenByDeadline(t, "Read", func() error { _, err := b.Read(buf); return err },
				func() { b.SetReadDeadline(time.Unix(1, 0)) })

			b.SetReadDeadline(time.Time{})
			a.Write([]byte("more"))
			if n, err := b.Read(buf); err != nil || string(buf[:n]) != "more" {
				t.Fatalf("Read after clearing the deadline: %q, %v", buf[:n], err)
			}
		})
	}
}

// WriteNoWait writes what fits and never waits: the rest of a full ring is left to the caller,
// the reader gets exactly what it reported written, and a closed peer is an error.
func TestWriteNoWait(t *testing.T) {
	a, b := inProcessPair(t, Options{Size: MinSize, Spin: -1})
	chunk := bytes.Repeat([]byte("0123456789"), MinSize/5) // twice the ring
	n, err := a.WriteNoWait(chunk)
	if err != nil || n != MinSize {
		t.Fatalf("WriteNoWait into an empty ring of %d: %d, %v", MinSize, n, err)
	}
	if m, err := a.WriteNoWait([]byte("x")); m != 0 || err != nil {
		t.Fatalf("WriteNoWait into a full ring: %d, %v", m, err)
	}
	got := make([]byte, 100)
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, chunk[:100]) {
		t.Fatalf("read %q, %v", got, err)
	}
	if m, err := a.WriteNoWait(chunk[n:]); m != 100 || err != nil {
		t.Fatalf("WriteNoWait after the reader took 100 bytes: %d, %v", m, err)
	}
	rest := make([]byte, MinSize)
	if _, err := io.ReadFull(b, rest); err != nil || !bytes.Equal(rest, chunk[100:n+100]) {
		t.Fatalf("the reader got other bytes than were reported written: %v", err)
	}
	b.Close()
	if _, err := a.WriteNoWait([]byte("y")); err == nil {
		t.Fatal("WriteNoWait to a closed peer succeeded")
	}
}

// SetWriteDeadline ends a Write that waits for space, whether it spins or sleeps on the futex;
// Write reports what it wrote, and nothing else reaches the reader.
func TestWriteDeadline(t *testing.T) {
	for _, spin := range []time.Duration{-1, 50 * time.Microsecond} {
		t.Run(fmt.Sprint("spin=", spin), func(t *testing.T) {
			a, b := inProcessPair(t, Options{Size: MinSize, Spin: spin})
			var sent bytes.Buffer
			write := func(p []byte) error {
				n, err := a.Write(p)
				sent.Write(p[:n])
				return err
			}
			chunk := bytes.Repeat([]byte("0123456789"), MinSize/5) // twice the ring

			a.SetWriteDeadline(time.Unix(1, 0))
			if err := write(chunk); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write past its deadline into a full ring: %v", err)
			}
			if sent.Len() == 0 || sent.Len() >= len(chunk) {
				t.Fatalf("wrote %d of %d bytes before the deadline", sent.Len(), len(chunk))
			}

			a.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
			start := time.Now()
			if err := write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write with a 30 ms deadline: %v", err)
			}
			if d := time.Since(start); d < 25*time.Millisecond || d > 5*time.Second {
				t.Errorf("Write with a 30 ms deadline returned after %v", d)
			}

			// A Write asleep with no deadline is woken by one set from another goroutine.
			defer func(d time.Duration) { futexTimeout = d }(futexTimeout)
			futexTimeout = time.Minute
			a.SetWriteDeadline(time.Time{})
			wokenByDeadline(t, "Write", func() error { return write([]byte("y")) },
				func() { a.SetWriteDeadline(time.Unix(1, 0)) })

			// Once the deadline is cleared and the reader drains the ring, writing resumes, and
			// the reader sees exactly what Write reported written.
			a.SetWriteDeadline(time.Time{})
			futexTimeout = 100 * time.Millisecond
			want := append(sent.Bytes(), "end"...)
			done := make(chan error, 1)
			go func() {
				_, err := a.Write([]byte("end"))
				done <- err
			}()
			got := make([]byte, 0, len(want))
			buf := make([]byte, 4096)
			for len(got) < len(want) {
				n, err := b.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, buf[:n]...)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("the reader got %d bytes, not the %d written", len(got), len(want))
			}
		})
	}
}

// wokenByDeadline starts op, which must block, lets it fall asleep, sets a past deadline and
// wants op to return os.ErrDeadlineExceeded promptly.
func wokenByDeadline(t *testing.T, what string, op func() error, setPast func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	time.Sleep(20 * time.Millisecond)
	setPast()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("woken %s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a deadline set from another goroutine did not wake a waiting %s", what)
	}
}
