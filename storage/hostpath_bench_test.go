package storage_test

// Benchmarks of protected files against plain file I/O through the path an enclave really has:
// a sim enclave (internal/testenclave, handler "bench-storage") reaching its storage directory
// through the storage host calls. impl=plain is the storage.UntrustedFS of enclave.Storage
// (WriteAt/ReadAt, Sync); impl=protected is a protected file (enclave.OpenFile). The ratio
// sub-benchmarks alternate the two in the same run and report x = protected throughput / plain
// throughput, so that machine noise hits both sides alike (docs/storage.md §9).
//
//	go test -run='^$' -bench='Enclave' -benchtime=5x -count 6 ./storage | benchstat -col /impl -
//
// These start enclaves and move 64 MiB per op: they run only with -bench. With
// ASYLO_STORAGE_BENCH_CPUPROFILE=dir, BenchmarkEnclaveSeq loads the enclave WITHOUT the sim
// sandbox (which forbids the profiling timer) and writes the enclave's CPU profile of each op to
// dir/<op>-<impl>-<n>.pprof (go tool pprof -top dir/read-protected-*.pprof).

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/asylo-go/asylo/backend/sim"
	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/host"
	"github.com/asylo-go/asylo/internal/enclavetest"
	"github.com/asylo-go/asylo/internal/testenclave"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enclavetest.Cleanup()
	os.Exit(code)
}

const (
	hpSize  = 64 << 20 // the file size
	hpChunk = 1 << 20  // bytes per WriteAt/ReadAt call
	hpIO    = 4096     // random I/O size
	// hpBlock is the number of random calls per enclave call (the file is opened once per
	// block); hpSyncEvery the random writes per commit, as in BenchmarkRandom.
	hpBlock     = 4096
	hpSyncEvery = 256
)

var hpImpls = []string{"plain", "protected"}

// loadStorageEnclave loads the test enclave on the sim back-end with a fresh storage directory
// and platform (for the monotonic counter) in b.TempDir().
func loadStorageEnclave(b *testing.B, opts ...sim.Option) *host.Enclave {
	b.Helper()
	dir := b.TempDir()
	p, err := platform.Open(filepath.Join(dir, "platform"))
	if err != nil {
		b.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	if err := os.Mkdir(store, 0o700); err != nil {
		b.Fatal(err)
	}
	e, err := host.Load(context.Background(), host.LoadConfig{
		Path:       enclavetest.Build(b, "./internal/testenclave/cmd/testenclave"),
		Backend:    sim.New(append(opts, sim.WithPlatform(p))...),
		Debug:      true,
		Logger:     slog.New(slog.DiscardHandler),
		StorageDir: store,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Destroy(ctx, nil); err != nil {
			b.Error(err)
		}
	})
	return e
}

// benchStorage runs one bench-storage request in e and returns the result and the time the
// call took as seen from the host.
func benchStorage(b *testing.B, e *host.Enclave, r testenclave.BenchStorageRequest) (testenclave.BenchStorageResult, time.Duration) {
	b.Helper()
	in, err := json.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	out, err := e.Call(context.Background(), "bench-storage", in)
	d := time.Since(t0)
	if err != nil {
		b.Fatalf("bench-storage %s %s: %v", r.Mode, r.Op, err)
	}
	var res testenclave.BenchStorageResult
	if err := json.Unmarshal(out, &res); err != nil {
		b.Fatal(err)
	}
	return res, d
}

func seqReq(impl, op string) testenclave.BenchStorageRequest {
	return testenclave.BenchStorageRequest{Mode: impl, Op: op, Name: impl, Size: hpSize, Chunk: hpChunk}
}

// BenchmarkEnclaveSeq writes (create, 1 MiB WriteAt calls, Sync or commit) or reads (open,
// 1 MiB ReadAt calls) a 64 MiB file from inside a sim enclave. One op is one file.
func BenchmarkEnclaveSeq(b *testing.B) {
	profDir := os.Getenv("ASYLO_STORAGE_BENCH_CPUPROFILE")
	var opts []sim.Option
	if profDir != "" {
		opts = append(opts, sim.InsecureNoSandbox())
	}
	for _, op := range []string{"write", "read"} {
		for _, impl := range hpImpls {
			b.Run(fmt.Sprintf("op=%s/impl=%s", op, impl), func(b *testing.B) {
				e := loadStorageEnclave(b, opts...)
				r := seqReq(impl, op)
				r.CPUProfile = profDir != ""
				benchStorage(b, e, seqReq(impl, "write")) // the file to read; warms up either way
				b.SetBytes(hpSize)
				n := 0
				for b.Loop() {
					res, _ := benchStorage(b, e, r)
					if r.CPUProfile {
						n++
						name := filepath.Join(profDir, fmt.Sprintf("%s-%s-%d.pprof", op, impl, n))
						if err := os.WriteFile(name, res.CPUProfile, 0o644); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// BenchmarkEnclaveSeqRatio runs the plain and protected ops of BenchmarkEnclaveSeq alternately
// in one enclave (one op = one plain file + one protected file, the order switching every op)
// and reports x = protected MB/s / plain MB/s: the goal is x ≥ 0.5.
func BenchmarkEnclaveSeqRatio(b *testing.B) {
	for _, op := range []string{"write", "read"} {
		b.Run("op="+op, func(b *testing.B) {
			e := loadStorageEnclave(b)
			for _, impl := range hpImpls {
				benchStorage(b, e, seqReq(impl, "write"))
			}
			var t [2]time.Duration
			i := 0
			for b.Loop() {
				for k := range 2 {
					w := (i + k) % 2 // alternate which goes first
					_, d := benchStorage(b, e, seqReq(hpImpls[w], op))
					t[w] += d
				}
				i++
			}
			n := float64(b.N)
			mbps := func(d time.Duration) float64 { return hpSize * n / d.Seconds() / 1e6 }
			b.ReportMetric(mbps(t[0]), "plain-MB/s")
			b.ReportMetric(mbps(t[1]), "protected-MB/s")
			b.ReportMetric(float64(t[0])/float64(t[1]), "x")
		})
	}
}

// BenchmarkEnclaveRandom does random 4 KiB-aligned 4 KiB reads or writes in a 64 MiB file from
// inside a sim enclave, hpBlock calls per enclave call, and reports the p50 and p99 of the
// single calls as timed inside the enclave. Writes are committed (plain: synced) every 256 calls;
// the commits are in the time per op, not in the percentiles.
func BenchmarkEnclaveRandom(b *testing.B) {
	for _, op := range []string{"read", "write"} {
		for _, impl := range hpImpls {
			b.Run(fmt.Sprintf("op=%s/impl=%s", op, impl), func(b *testing.B) {
				e := loadStorageEnclave(b)
				benchStorage(b, e, seqReq(impl, "write"))
				req := testenclave.BenchStorageRequest{Mode: impl, Op: "rand" + op, Name: impl, Size: hpSize, SyncEvery: hpSyncEvery}
				var lat []int64
				b.SetBytes(hpIO)
				b.ResetTimer()
				for i := 0; i < b.N; i += hpBlock {
					req.Count = min(hpBlock, b.N-i)
					req.Seed = uint64(i)
					res, _ := benchStorage(b, e, req)
					lat = append(lat, res.LatenciesNS...)
				}
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
				b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
			})
		}
	}
}
