//go:build linux

package sim_test

// Benchmarks of the sim back-end against raw floors measured in the same run (docs/benchmarks.md).
//
// Every benchmark family has a "floor" sub-benchmark (the same mechanism with none of asylo's
// logic: internal/benchtools/rawecho, internal/benchtools/firstreply or a bare shm ring), a "sim"
// sub-benchmark (host.Load / host.Enclave.Call on the test enclave), and a "ratio"
// sub-benchmark that runs both alternately in blocks and reports sim/floor as the "x" metric, so
// that machine noise hits both sides alike. CPU metrics are user+sys time of the host process
// (getrusage RUSAGE_SELF) and of the child (sum of its threads' /proc/<pid>/task/*/schedstat
// run time), per operation.

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/internal/blocksock"
	"github.com/asylo-go/asylo/internal/enclavetest"
	"github.com/asylo-go/asylo/internal/sandbox"
	"github.com/asylo-go/asylo/internal/shm"
)

const (
	opEcho   = 1
	opSink   = 2
	opSource = 3
	mib      = 1 << 20
)

// quiet discards the enclaves' log records (Initialize logs one per load).
var quiet = slog.New(slog.DiscardHandler)

func rawEchoBin(tb testing.TB) string {
	return enclavetest.Build(tb, "./internal/benchtools/rawecho")
}

func firstReplyBin(tb testing.TB) string {
	return enclavetest.Build(tb, "./internal/benchtools/firstreply")
}

// memfdCopy copies the binary at path into a memfd, to be executed as /proc/self/fd/N like sim
// does: the sandboxed child (uid 65534 in its user namespace) cannot search the private
// build directory.
func memfdCopy(tb testing.TB, path string) *os.File {
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	fd, err := unix.MemfdCreate("bench-image", unix.MFD_CLOEXEC)
	if err != nil {
		tb.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "bench-image")
	if _, err := f.Write(data); err != nil {
		tb.Fatal(err)
	}
	return f
}

// benchEnv is extra environment for the benchmarked enclaves, from ASYLO_BENCH_ENCLAVE_ENV
// (space-separated, e.g. "GOGC=400 GOMAXPROCS=1"): a knob for experiments, empty by default.
func benchEnv() []string { return strings.Fields(os.Getenv("ASYLO_BENCH_ENCLAVE_ENV")) }

// hostBallast is ASYLO_BENCH_HOST_HEAP_MIB MiB of heap, written once and kept live: a host
// with a large heap, whose page tables a start without vfork copies (docs/sandbox.md §1).
var hostBallast []byte

func touchHostHeap(tb testing.TB) {
	v := os.Getenv("ASYLO_BENCH_HOST_HEAP_MIB")
	if v == "" || hostBallast != nil {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		tb.Fatalf("ASYLO_BENCH_HOST_HEAP_MIB=%q", v)
	}
	if n == 0 {
		return
	}
	hostBallast = make([]byte, n<<20)
	for i := 0; i < len(hostBallast); i += 4096 {
		hostBallast[i] = 1
	}
}

// ---- CPU accounting ----

// hostCPU is the user+sys CPU time of this process.
func hostCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time of process pid: the sum of its live threads' run time from
// /proc/<pid>/task/*/schedstat (nanoseconds), or utime+stime from /proc/<pid>/stat (clock ticks)
// if schedstat is unavailable.
func procCPU(pid int) time.Duration {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err == nil {
		var sum time.Duration
		ok := true
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
			if err != nil {
				ok = false
				break
			}
			f := strings.Fields(string(b))
			if len(f) < 1 {
				ok = false
				break
			}
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
		if ok {
			return sum
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// Fields after "(comm) ": state is f[0]; utime is field 14 overall, i.e. f[11].
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // CLK_TCK = 100 on Linux
}

type cpuMeter struct {
	pid        int
	host, peer time.Duration
	h0, p0     time.Duration
}

func (m *cpuMeter) start() { m.h0, m.p0 = hostCPU(), procCPU(m.pid) }
func (m *cpuMeter) stop() {
	m.host += hostCPU() - m.h0
	m.peer += procCPU(m.pid) - m.p0
}

func (m *cpuMeter) report(b *testing.B, ops int) {
	n := float64(ops)
	b.ReportMetric(float64(m.host.Nanoseconds())/n, "host-cpu-ns/op")
	b.ReportMetric(float64(m.peer.Nanoseconds())/n, "child-cpu-ns/op")
	b.ReportMetric(float64((m.host+m.peer).Nanoseconds())/n, "cpu-ns/op")
}

// ---- raw floor child ----

type rawChild struct {
	cmd *exec.Cmd
	rw  io.ReadWriteCloser
	r   io.Reader // rw, through a buffer on a socket (one read(2) for a whole message)
	buf []byte
}

// startRaw starts rawecho over a socketpair (transport "sock"; "sockblock" for rawecho's blocking
// system calls instead of Go's network poller; "sockblockboth" for blocking calls on this side
// too) or a shared-memory ring ("shm").
// sandboxed starts it with the sim sandbox's namespaces and has it apply seccomp and landlock.
func startRaw(b *testing.B, transport string, sandboxed bool) *rawChild {
	b.Helper()
	var child *os.File
	var rw io.ReadWriteCloser
	switch transport {
	case "sock", "sockblock", "sockblockboth":
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		child = os.NewFile(uintptr(fds[1]), "child")
		if transport == "sockblockboth" {
			// (blocksock never releases its descriptor: one per run of this benchmark.)
			c, err := blocksock.New(fds[0])
			if err != nil {
				b.Fatal(err)
			}
			rw, transport = c, "sockblock"
			break
		}
		pf := os.NewFile(uintptr(fds[0]), "parent")
		c, err := net.FileConn(pf) // as the sim back-end does
		pf.Close()
		if err != nil {
			b.Fatal(err)
		}
		rw = c
	case "shm":
		c, f, err := shm.New(shm.Options{})
		if err != nil {
			b.Fatal(err)
		}
		child, rw = f, c
	}
	cmd := exec.Command(rawEchoBin(b))
	cmd.Env = []string{"RAWECHO_MODE=" + transport}
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stderr = os.Stderr
	if sandboxed {
		img := memfdCopy(b, cmd.Path)
		defer img.Close()
		cmd.Path = "/proc/self/fd/4"
		cmd.ExtraFiles = append(cmd.ExtraFiles, img)
		attr, _ := sandbox.ProcAttr()
		cmd.SysProcAttr = attr
		cmd.Env = append(cmd.Env, "RAWECHO_SANDBOX=1")
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	child.Close()
	r := &rawChild{cmd: cmd, rw: rw, r: rw, buf: make([]byte, 16+64)}
	if transport != "shm" {
		r.r = bufio.NewReaderSize(rw, 64<<10) // as the host's wire.Conn reads
	}
	r.roundTrip(b, opEcho, 0, 0) // started and answering
	return r
}

func (r *rawChild) pid() int { return r.cmd.Process.Pid }

func (r *rawChild) close() {
	r.rw.Close()
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
}

// roundTrip sends one message with a body of n bytes (already in r.buf[16:]) and reads the answer.
func (r *rawChild) roundTrip(b *testing.B, op byte, n int, arg uint64) {
	if len(r.buf) < 16+max(n, int(arg)) {
		r.buf = make([]byte, 16+max(n, int(arg)))
	}
	binary.LittleEndian.PutUint32(r.buf[0:4], uint32(n))
	r.buf[4] = op
	binary.LittleEndian.PutUint64(r.buf[8:16], arg)
	if _, err := r.rw.Write(r.buf[:16+n]); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(r.r, r.buf[:16]); err != nil {
		b.Fatal(err)
	}
	m := int(binary.LittleEndian.Uint32(r.buf[0:4]))
	if _, err := io.ReadFull(r.r, r.buf[16:16+m]); err != nil {
		b.Fatal(err)
	}
}

// ---- enclaves ----

func loadBench(b *testing.B, opts ...sim.Option) *host.Enclave {
	b.Helper()
	e, err := host.Load(context.Background(), host.LoadConfig{
		Path: testEnclave(b), Backend: sim.New(opts...), Debug: true, Logger: quiet,
		Env: benchEnv(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func destroy(b *testing.B, e *host.Enclave) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	checkDestroy(b, e.Destroy(ctx, nil))
}

// checkDestroy fails on any Destroy error. (Switchless mode used to lose the FINALIZE RESULT
// when the enclave exited right after writing it; fixed by shm.Conn.PeerGone, and held by
// TestSwitchlessDestroyDeliversFinalize, so the benchmarks no longer tolerate it.)
func checkDestroy(tb testing.TB, err error) {
	if err != nil {
		tb.Fatal(err)
	}
}

func enclavePid(b *testing.B, e *host.Enclave) int {
	pid, ok := e.Process()
	if !ok {
		b.Fatal("no enclave pid")
	}
	return pid
}

func call(b *testing.B, e *host.Enclave, name string, in []byte) []byte {
	out, err := e.Call(context.Background(), name, in)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// ---- round trips (targets 1 and 2) ----

// roundTripBench runs the 64-byte round-trip sub-benchmarks for one transport ("sock" or "shm").
func roundTripBench(b *testing.B, transport string, opts ...sim.Option) {
	in := make([]byte, 64)
	floorRT := func(b *testing.B, r *rawChild) func() {
		return func() { r.roundTrip(b, opEcho, 64, 0) }
	}
	simRT := func(b *testing.B, e *host.Enclave) func() {
		return func() {
			if out := call(b, e, "echo", in); len(out) != 64 {
				b.Fatalf("echo returned %d bytes", len(out))
			}
		}
	}
	measure := func(b *testing.B, pid int, rt func()) {
		for range 1000 { // warm up
			rt()
		}
		var m cpuMeter
		m.pid = pid
		b.ResetTimer()
		m.start()
		for b.Loop() {
			rt()
		}
		m.stop()
		b.StopTimer()
		m.report(b, b.N)
	}
	b.Run("floor", func(b *testing.B) {
		r := startRaw(b, transport, false)
		defer r.close()
		measure(b, r.pid(), floorRT(b, r))
	})
	b.Run("floor-sandboxed", func(b *testing.B) {
		r := startRaw(b, transport, true)
		defer r.close()
		measure(b, r.pid(), floorRT(b, r))
	})
	b.Run("sim", func(b *testing.B) {
		e := loadBench(b, opts...)
		defer destroy(b, e)
		measure(b, enclavePid(b, e), simRT(b, e))
	})
	b.Run("sim-nosandbox", func(b *testing.B) {
		e := loadBench(b, append(opts, sim.InsecureNoSandbox())...)
		defer destroy(b, e)
		measure(b, enclavePid(b, e), simRT(b, e))
	})
	// sporadic-*: one call after each idle spell (ASYLO_BENCH_SPORADIC_GAP, default 2 ms,
	// outside the timing), as most services' calls come; median and 90th percentile per call.
	sporadic := func(b *testing.B, rt func()) {
		gap := 2 * time.Millisecond
		if v := os.Getenv("ASYLO_BENCH_SPORADIC_GAP"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				b.Fatal(err)
			}
			gap = d
		}
		rt() // started and answering
		var ds []time.Duration
		for b.Loop() {
			time.Sleep(gap)
			t0 := time.Now()
			rt()
			ds = append(ds, time.Since(t0))
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds()), "med-ns")
		b.ReportMetric(float64(ds[len(ds)*9/10].Nanoseconds()), "p90-ns")
	}
	b.Run("sporadic-floor", func(b *testing.B) {
		r := startRaw(b, transport, false)
		defer r.close()
		sporadic(b, floorRT(b, r))
	})
	if transport == "sock" {
		b.Run("sporadic-floor-blocking", func(b *testing.B) {
			r := startRaw(b, "sockblock", false)
			defer r.close()
			sporadic(b, floorRT(b, r))
		})
	}
	b.Run("sporadic-sim", func(b *testing.B) {
		e := loadBench(b, opts...)
		defer destroy(b, e)
		sporadic(b, simRT(b, e))
	})
	// sim-deadline: calls with a context that has a deadline, as a server's usually does.
	b.Run("sim-deadline", func(b *testing.B) {
		e := loadBench(b, opts...)
		defer destroy(b, e)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		measure(b, enclavePid(b, e), func() {
			if out, err := e.Call(ctx, "echo", in); err != nil || len(out) != 64 {
				b.Fatalf("echo: %d bytes, %v", len(out), err)
			}
		})
	})
	// ratio: one op = one floor round trip + one sim round trip, run in alternating blocks.
	ratio := func(b *testing.B, floorTransport string) {
		r := startRaw(b, floorTransport, false)
		defer r.close()
		e := loadBench(b, opts...)
		defer destroy(b, e)
		fl, sm := floorRT(b, r), simRT(b, e)
		for range 1000 {
			fl()
			sm()
		}
		var tf, ts time.Duration
		var blocks loadRatio // per-op times of each block, for the ratio of medians
		mf := cpuMeter{pid: r.pid()}
		ms := cpuMeter{pid: enclavePid(b, e)}
		const block = 1000
		b.ResetTimer()
		for i := 0; i < b.N; i += block {
			k := min(block, b.N-i)
			t0 := time.Now()
			mf.start()
			for range k {
				fl()
			}
			mf.stop()
			t1 := time.Now()
			ms.start()
			for range k {
				sm()
			}
			ms.stop()
			df, ds := t1.Sub(t0), time.Since(t1)
			tf += df
			ts += ds
			blocks.add(df/time.Duration(k), ds/time.Duration(k))
		}
		b.StopTimer()
		n := float64(b.N)
		b.ReportMetric(float64(tf.Nanoseconds())/n, "floor-ns/op")
		b.ReportMetric(float64(ts.Nanoseconds())/n, "sim-ns/op")
		b.ReportMetric(float64(ts)/float64(tf), "x")
		b.ReportMetric(float64(median(blocks.sim))/float64(median(blocks.floor)), "x-med")
		b.ReportMetric(float64((mf.host+mf.peer).Nanoseconds())/n, "floor-cpu-ns/op")
		b.ReportMetric(float64((ms.host+ms.peer).Nanoseconds())/n, "sim-cpu-ns/op")
	}
	b.Run("ratio", func(b *testing.B) { ratio(b, transport) })
	if transport == "sock" {
		// The enclave runtime reads its socket with blocking system calls (design note 23):
		// the same floor, and the ratio, with rawecho doing so too.
		b.Run("floor-blocking", func(b *testing.B) {
			r := startRaw(b, "sockblock", false)
			defer r.close()
			measure(b, r.pid(), floorRT(b, r))
		})
		b.Run("ratio-blocking", func(b *testing.B) { ratio(b, "sockblock") })
		// Both sides blocking in read(2): what a host could reach without the poller
		// (docs/benchmarks.md, session 11), not a floor of the SDK's mechanism.
		b.Run("floor-blockboth", func(b *testing.B) {
			r := startRaw(b, "sockblockboth", false)
			defer r.close()
			measure(b, r.pid(), floorRT(b, r))
		})
	}
}

// BenchmarkCall64 is target 1: a 64-byte Call("echo") over the socket against rawecho's
// 16+64-byte echo over the same kind of socketpair, Go on both sides.
func BenchmarkCall64(b *testing.B) { roundTripBench(b, "sock") }

// BenchmarkSwitchless64 is target 2: the same over shared memory (sim.Switchless) against
// rawecho's echo over a bare internal/shm ring.
func BenchmarkSwitchless64(b *testing.B) { roundTripBench(b, "shm", sim.Switchless()) }

// ---- 1 MiB payloads (target 3) ----

// BenchmarkPayload1MiB moves 1 MiB per call: "in" host -> enclave (Call "count", which ignores
// its input; 1 MiB is counted), "out" enclave -> host (Call "big" with "1048576"), "echo" both
// ways (2 MiB counted). Floors: rawecho's sink, source and echo ops on the same transport.
func BenchmarkPayload1MiB(b *testing.B) {
	for _, tr := range []struct {
		name string
		opts []sim.Option
	}{{"sock", nil}, {"shm", []sim.Option{sim.Switchless()}}} {
		b.Run(tr.name, func(b *testing.B) {
			r := startRaw(b, tr.name, false)
			defer r.close()
			e := loadBench(b, tr.opts...)
			defer destroy(b, e)
			payload := make([]byte, mib)
			for i := range payload {
				payload[i] = byte(i)
			}
			bigArg := []byte(strconv.Itoa(mib))
			var dst []byte
			type dir struct {
				name  string
				bytes int64
				floor func()
				sim   func()
			}
			dirs := []dir{
				{"in", mib,
					func() { r.roundTrip(b, opSink, mib, 0) },
					func() { call(b, e, "count", payload) }},
				{"out-noalloc", mib,
					func() { r.roundTrip(b, opSource, 0, mib) },
					func() {
						if out := call(b, e, "blob", bigArg); len(out) != mib {
							b.Fatalf("got %d bytes", len(out))
						}
					}},
				// The reused-buffer paths: a handler registered with enclave.HandleBorrowed
				// ("in-borrowed"), and host.CallInto with the same dst each time ("out-into").
				{"in-borrowed", mib,
					func() { r.roundTrip(b, opSink, mib, 0) },
					func() { call(b, e, "sink-borrowed", payload) }},
				{"out-into", mib,
					func() { r.roundTrip(b, opSource, 0, mib) },
					func() {
						out, err := e.CallInto(context.Background(), "blob", bigArg, dst)
						if err != nil || len(out) != mib {
							b.Fatalf("CallInto: %d bytes, %v", len(out), err)
						}
						dst = out
					}},
				{"out", mib,
					func() { r.roundTrip(b, opSource, 0, mib) },
					func() {
						if out := call(b, e, "big", bigArg); len(out) != mib {
							b.Fatalf("big returned %d bytes", len(out))
						}
					}},
				{"echo", 2 * mib,
					func() { r.roundTrip(b, opEcho, mib, 0) },
					func() { call(b, e, "echo", payload) }},
			}
			for _, d := range dirs {
				var floorPerOp float64 // ns, from the floor's last run: "x" of the sim side
				for _, side := range []struct {
					name string
					f    func()
					pid  int
				}{{"floor", d.floor, r.pid()}, {"sim", d.sim, enclavePid(b, e)}} {
					b.Run(d.name+"/"+side.name, func(b *testing.B) {
						for range 20 {
							side.f()
						}
						b.SetBytes(d.bytes)
						m := cpuMeter{pid: side.pid}
						b.ResetTimer()
						m.start()
						for b.Loop() {
							side.f()
						}
						m.stop()
						b.StopTimer()
						m.report(b, b.N)
						perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
						if side.name == "floor" {
							floorPerOp = perOp
						} else if floorPerOp > 0 {
							b.ReportMetric(perOp/floorPerOp, "x")
						}
					})
				}
			}
		})
	}
}

// ---- load to ready (target 4) ----

// execFirstReply runs firstreply and returns the time from just before exec to its byte arriving
// (the child is reaped afterwards, outside the measurement).
// With img non-nil, the binary is executed from that memfd (as sim executes enclaves). With attr
// nil, it is started with sandbox.Start, as sim starts enclaves directly.
func execFirstReply(tb testing.TB, bin string, img *os.File, attr *syscall.SysProcAttr) time.Duration {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "child")
	pf := os.NewFile(uintptr(fds[0]), "parent")
	defer pf.Close()
	cmd := exec.Command(bin)
	cmd.Env = []string{}
	cmd.ExtraFiles = []*os.File{child}
	if img != nil {
		cmd.Path = "/proc/self/fd/4"
		cmd.ExtraFiles = append(cmd.ExtraFiles, img)
	}
	var one [1]byte
	t0 := time.Now()
	if attr != nil {
		a := *attr
		cmd.SysProcAttr = &a
		err = cmd.Start()
	} else {
		_, err = sandbox.Start(cmd)
	}
	if err != nil {
		tb.Fatal(err)
	}
	child.Close()
	if _, err := io.ReadFull(pf, one[:]); err != nil {
		tb.Fatal(err)
	}
	d := time.Since(t0)
	if err := cmd.Wait(); err != nil {
		tb.Fatal(err)
	}
	return d
}

// loadReady returns the time host.Load takes (start to Initialize done) and the time Destroy takes.
// The back-end is reused across loads, as host.Load's default is: it keeps the sealed image.
func loadReady(tb testing.TB, path string, be *sim.Backend) (load, destroy time.Duration) {
	t0 := time.Now()
	e, err := host.Load(context.Background(), host.LoadConfig{Path: path, Backend: be, Debug: true, Logger: quiet, Env: benchEnv()})
	if err != nil {
		tb.Fatal(err)
	}
	t1 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	checkDestroy(tb, e.Destroy(ctx, nil))
	return t1.Sub(t0), time.Since(t1)
}

// BenchmarkLoad is target 4: host.Load of a trivial enclave (internal/benchtools/nopenclave) up
// to the end of Initialize, against exec-to-first-reply of firstreply, the trivial static Go
// program. "sim" and "ratio" load as a default back-end does, through its spawner (docs/sandbox.md
// §3; sim-prestart and ratio-prestart before session 12); "sim-direct" and "ratio-direct" start
// each enclave from the host process (sim.Direct; "sim" and "ratio" before session 12);
// "sim-testenclave" loads the conformance suite's larger test enclave. Destroy is outside ns/op
// and reported as destroy-ns/op.
// "first" re-executes the test binary for each op, so that every measurement is the first load
// (or the first exec) of a fresh host process (namespace probe and all one-time costs included).
// With ASYLO_BENCH_HOST_HEAP_MIB=N the benchmark first writes N MiB of its own heap, as a host
// with a large heap would have.
func BenchmarkLoad(b *testing.B) {
	touchHostHeap(b)
	encl, fr := enclavetest.Build(b, "./internal/benchtools/nopenclave"), firstReplyBin(b)
	sbAttr, _ := sandbox.ProcAttr()
	plainAttr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	timed := func(b *testing.B, f func() time.Duration) {
		f()
		var total time.Duration
		for b.Loop() {
			total += f()
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	}
	b.Run("floor", func(b *testing.B) {
		timed(b, func() time.Duration { return execFirstReply(b, fr, nil, plainAttr) })
	})
	b.Run("floor-memfd", func(b *testing.B) {
		img := memfdCopy(b, fr)
		defer img.Close()
		timed(b, func() time.Duration { return execFirstReply(b, fr, img, plainAttr) })
	})
	b.Run("floor-memfd-sandboxattr", func(b *testing.B) {
		img := memfdCopy(b, fr)
		defer img.Close()
		timed(b, func() time.Duration { return execFirstReply(b, fr, img, sbAttr) })
	})
	// floor-memfd-start: started as sim starts an enclave directly (for a root host, without a
	// user namespace and in the shared network namespace; otherwise as sandboxattr).
	b.Run("floor-memfd-start", func(b *testing.B) {
		img := memfdCopy(b, fr)
		defer img.Close()
		timed(b, func() time.Duration { return execFirstReply(b, fr, img, nil) })
	})
	// The back-end is reused across loads, as host.Load's default is: it keeps the sealed image
	// and (unless Direct) the spawner that starts its enclaves. host-cpu-ns/op includes Destroy
	// and the host's share of preparing prestarted processes (in exec mode, one per load; before
	// session 10 in spawn mode too), which a host with a large heap pays in page-table copies.
	for _, c := range []struct {
		name string
		opts []sim.Option
		path string
	}{
		{"sim", nil, encl},
		{"sim-direct", []sim.Option{sim.Direct()}, encl},
		{"sim-nosandbox", []sim.Option{sim.InsecureNoSandbox()}, encl},
		{"sim-switchless", []sim.Option{sim.Switchless()}, encl},
		{"sim-testenclave", nil, testEnclave(b)},
	} {
		b.Run(c.name, func(b *testing.B) {
			var dtotal time.Duration
			be := sim.New(c.opts...)
			defer be.Close()
			loadReady(b, c.path, be)
			cpu0 := hostCPU()
			timed(b, func() time.Duration {
				l, d := loadReady(b, c.path, be)
				dtotal += d
				return l
			})
			b.ReportMetric(float64(dtotal.Nanoseconds())/float64(b.N+1), "destroy-ns/op")
			b.ReportMetric(float64((hostCPU()-cpu0).Nanoseconds())/float64(b.N+1), "host-cpu-ns/op")
		})
	}
	b.Run("loadimage", func(b *testing.B) { // copy into a sealed memfd + SHA-256, part of sim
		timed(b, func() time.Duration {
			t0 := time.Now()
			im, err := sim.LoadImage(encl)
			if err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			im.Close()
			return d
		})
	})
	// "ratio-uncached": every load copies and measures the image again, as the first load of an
	// image by a Backend does (the others reuse the sealed, measured copy).
	for _, c := range []struct {
		name   string
		opts   []sim.Option
		forget bool
	}{{"ratio", nil, false}, {"ratio-direct", []sim.Option{sim.Direct()}, false}, {"ratio-uncached", nil, true}} {
		b.Run(c.name, func(b *testing.B) {
			execFirstReply(b, fr, nil, plainAttr)
			be := sim.New(c.opts...)
			defer be.Close()
			loadReady(b, encl, be)
			var r loadRatio
			for b.Loop() {
				if c.forget {
					sim.ForgetImages(be)
				}
				l, _ := loadReady(b, encl, be)
				r.add(execFirstReply(b, fr, nil, plainAttr), l)
			}
			r.report(b)
		})
	}
	b.Run("first", func(b *testing.B) {
		var tf, ts time.Duration
		for b.Loop() {
			tf += coldRun(b, "floor", fr)
			ts += coldRun(b, "sim", encl)
		}
		n := float64(b.N)
		b.ReportMetric(float64(tf.Nanoseconds())/n, "floor-ns/op")
		b.ReportMetric(float64(ts.Nanoseconds())/n, "sim-ns/op")
		b.ReportMetric(float64(ts)/float64(tf), "x")
		b.ReportMetric(float64((tf+ts).Nanoseconds())/n, "ns/op")
	})
}

// loadRatio collects alternating floor and sim load times. Besides the means it reports the
// ratio of the medians ("x-med"), which one descheduling of the benchmark (a few ms on this
// machine's neighbours) cannot move, unlike the means.
type loadRatio struct{ floor, sim []time.Duration }

func (r *loadRatio) add(floor, sim time.Duration) {
	r.floor = append(r.floor, floor)
	r.sim = append(r.sim, sim)
}

func (r *loadRatio) report(b *testing.B) {
	var tf, ts time.Duration
	for i := range r.floor {
		tf += r.floor[i]
		ts += r.sim[i]
	}
	n := float64(len(r.floor))
	b.ReportMetric(float64(tf.Nanoseconds())/n, "floor-ns/op")
	b.ReportMetric(float64(ts.Nanoseconds())/n, "sim-ns/op")
	b.ReportMetric(float64(ts)/float64(tf), "x")
	b.ReportMetric(float64(median(r.sim))/float64(median(r.floor)), "x-med")
	b.ReportMetric(float64((tf+ts).Nanoseconds())/n, "ns/op")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

const envCold = "ASYLO_SIM_BENCH_COLD"

// coldRun re-executes the test binary to measure one first exec ("floor") or first host.Load
// ("sim") in a fresh process.
func coldRun(b *testing.B, mode, bin string) time.Duration {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestHelperColdStart$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCold+"="+mode+":"+bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("cold helper: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "cold-ns "); ok {
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return time.Duration(ns)
		}
	}
	b.Fatalf("cold helper printed no result:\n%s", out)
	return 0
}

// TestHelperColdStart is not a test: BenchmarkLoad/first runs the test binary with it to measure
// a first load in a fresh process. It skips unless ASYLO_SIM_BENCH_COLD is set.
func TestHelperColdStart(t *testing.T) {
	v := os.Getenv(envCold)
	if v == "" {
		t.Skip("helper for BenchmarkLoad/first")
	}
	mode, bin, _ := strings.Cut(v, ":")
	var d time.Duration
	switch mode {
	case "floor":
		d = execFirstReply(t, bin, nil, &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL})
	case "sim":
		d, _ = loadReady(t, bin, sim.New())
	default:
		t.Fatalf("bad mode %q", mode)
	}
	fmt.Printf("cold-ns %d\n", d.Nanoseconds())
}

// ---- idle memory (target 5) ----

// memOf returns VmRSS from /proc/<pid>/status and Pss from /proc/<pid>/smaps_rollup, in bytes
// (pss < 0 if unreadable).
func memOf(tb testing.TB, pid int) (rss, pss int64) {
	kb := func(file, key string) int64 {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), file))
		if err != nil {
			return -1
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, key+":"); ok {
				f := strings.Fields(v)
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
		return -1
	}
	rss = kb("status", "VmRSS")
	if rss < 0 {
		tb.Fatalf("cannot read VmRSS of %d", pid)
	}
	return rss, kb("smaps_rollup", "Pss")
}

// BenchmarkIdleMemory is target 5: RSS and PSS of a loaded, initialized, idle test enclave
// ("fresh": after one 64-byte call; "after1MiB": after 20 1 MiB echo calls, the heap grown), and
// of the idle rawecho floor. ns/op is meaningless here (one /proc read); see the MiB metrics.
func BenchmarkIdleMemory(b *testing.B) {
	var floorRSS int64 // rawecho's, for the "x" of the others
	report := func(b *testing.B, pid int) {
		time.Sleep(200 * time.Millisecond) // let start-up settle
		var rss, pss int64
		for b.Loop() {
			rss, pss = memOf(b, pid)
		}
		b.ReportMetric(float64(rss)/mib, "rss-MiB")
		if pss >= 0 {
			b.ReportMetric(float64(pss)/mib, "pss-MiB")
		}
		if floorRSS > 0 {
			b.ReportMetric(float64(rss)/float64(floorRSS), "x")
		}
	}
	b.Run("floor", func(b *testing.B) {
		r := startRaw(b, "sock", false)
		defer r.close()
		report(b, r.pid())
		floorRSS, _ = memOf(b, r.pid())
	})
	for _, c := range []struct {
		name string
		opts []sim.Option
	}{{"sim", nil}, {"sim-switchless", []sim.Option{sim.Switchless()}}} {
		b.Run(c.name+"/fresh", func(b *testing.B) {
			e := loadBench(b, c.opts...)
			defer destroy(b, e)
			call(b, e, "echo", make([]byte, 64))
			report(b, enclavePid(b, e))
		})
		b.Run(c.name+"/after1MiB", func(b *testing.B) {
			e := loadBench(b, c.opts...)
			defer destroy(b, e)
			for range 20 {
				call(b, e, "echo", make([]byte, mib))
			}
			report(b, enclavePid(b, e))
		})
	}
}

// TestIdleEnclaveRSS asserts target 5 (a memory bound, not a timing): a loaded, idle test
// enclave has a resident set below 15 MiB.
func TestIdleEnclaveRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("loads an enclave")
	}
	e, err := host.Load(context.Background(), host.LoadConfig{Path: testEnclave(t), Backend: sim.New(), Debug: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Destroy(context.Background(), nil)
	if _, err := e.Call(context.Background(), "echo", []byte("x")); err != nil {
		t.Fatal(err)
	}
	pid, _ := e.Process()
	time.Sleep(100 * time.Millisecond)
	rss, pss := memOf(t, pid)
	t.Logf("idle enclave: VmRSS %.1f MiB, Pss %.1f MiB", float64(rss)/mib, float64(pss)/mib)
	if rss >= 15*mib {
		t.Errorf("idle enclave VmRSS = %.1f MiB, want < 15 MiB", float64(rss)/mib)
	}
}

// TestIdleEnclaveCPU: once calls stop, neither the enclave nor the host's side of it keeps
// working (no ticking watchdog, no spinning, no read loop waking on a timer), on the socket and
// on shared memory. Measured over a second after a burst of calls and after a long call.
func TestIdleEnclaveCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("loads an enclave")
	}
	for _, tc := range []struct {
		name string
		opts []sim.Option
	}{{"sock", nil}, {"shm", []sim.Option{sim.Switchless()}}} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := host.Load(context.Background(), host.LoadConfig{Path: testEnclave(t), Backend: sim.New(tc.opts...), Debug: true, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Destroy(context.Background(), nil)
			pid, _ := e.Process()
			for range 2000 {
				if _, err := e.Call(context.Background(), "echo", []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			measure := func(what string) {
				time.Sleep(100 * time.Millisecond) // let spinning and ticking wind down
				m := cpuMeter{pid: pid}
				m.start()
				time.Sleep(time.Second)
				m.stop()
				t.Logf("%s: host %v, enclave %v in one second", what, m.host, m.peer)
				// A busy-polling or ticking side uses tens to hundreds of milliseconds; allow
				// for the Go runtime's own background work and a loaded machine.
				if m.host > 30*time.Millisecond || m.peer > 30*time.Millisecond {
					t.Errorf("%s: host %v, enclave %v of CPU in one second", what, m.host, m.peer)
				}
			}
			measure("idle after calls")
			done := make(chan error, 1)
			go func() {
				_, err := e.Call(context.Background(), "sleep", []byte("1500ms"))
				done <- err
			}()
			measure("through a long call")
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
