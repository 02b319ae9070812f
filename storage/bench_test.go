package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Benchmarks compare protected files with plain file I/O through the same
// UntrustedFS (DirFS) in the same run: impl=plain is the floor. (The same
// through an enclave's host calls: hostpath_bench_test.go.)
//
//	go test -run='^$' -bench='^Benchmark(Seq|Random)' -count 6 ./storage | benchstat -col /impl -

const benchSize = 64 << 20
const benchChunk = 1 << 20

// rw is what both implementations offer.
type rw interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	WriteAt(ctx context.Context, p []byte, off int64) (int, error)
}

func openBench(b *testing.B, dir, impl string, create bool) (rw, func() error) {
	ctx := context.Background()
	switch impl {
	case "plain":
		f, err := DirFS(dir).OpenFile(ctx, "plain", true)
		if err != nil {
			b.Fatal(err)
		}
		if create {
			f.Truncate(ctx, 0)
		}
		return f, func() error {
			if err := f.Sync(ctx); err != nil {
				return err
			}
			return f.Close()
		}
	default:
		var f *File
		var err error
		if create {
			f, err = Create(ctx, DirFS(dir), "protected", testKey, Options{Counter: &MemoryCounter{}})
		} else {
			f, err = Open(ctx, DirFS(dir), "protected", testKey, Options{InsecureNoRollbackProtection: true})
		}
		if err != nil {
			b.Fatal(err)
		}
		return f, func() error { return f.Close(ctx) }
	}
}

func writeAll(b *testing.B, f rw) {
	ctx := context.Background()
	p := make([]byte, benchChunk)
	for i := range p {
		p[i] = byte(i)
	}
	for off := int64(0); off < benchSize; off += benchChunk {
		if _, err := f.WriteAt(ctx, p, off); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeqWrite creates a 64 MiB file in 1 MiB writes and commits it.
func BenchmarkSeqWrite(b *testing.B) {
	for _, impl := range []string{"plain", "protected"} {
		b.Run("impl="+impl, func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(benchSize)
			for b.Loop() {
				f, done := openBench(b, dir, impl, true)
				writeAll(b, f)
				if err := done(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSeqRead reads a 64 MiB file in 1 MiB reads (opening it included).
func BenchmarkSeqRead(b *testing.B) {
	ctx := context.Background()
	for _, impl := range []string{"plain", "protected"} {
		b.Run("impl="+impl, func(b *testing.B) {
			dir := b.TempDir()
			f, done := openBench(b, dir, impl, true)
			writeAll(b, f)
			if err := done(); err != nil {
				b.Fatal(err)
			}
			p := make([]byte, benchChunk)
			b.SetBytes(benchSize)
			for b.Loop() {
				f, done := openBench(b, dir, impl, false)
				for off := int64(0); off < benchSize; off += benchChunk {
					if _, err := f.ReadAt(ctx, p, off); err != nil {
						b.Fatal(err)
					}
				}
				done()
			}
		})
	}
}

// BenchmarkRandom does random 4 KiB-aligned reads or writes in a 64 MiB file
// and reports the p50 and p99 latency of single calls. Writes are committed
// every 256 calls (the commit is part of the time per op, not of the
// percentiles).
func BenchmarkRandom(b *testing.B) {
	ctx := context.Background()
	for _, op := range []string{"read", "write"} {
		for _, impl := range []string{"plain", "protected"} {
			b.Run(fmt.Sprintf("op=%s/impl=%s", op, impl), func(b *testing.B) {
				dir := b.TempDir()
				f, done := openBench(b, dir, impl, true)
				writeAll(b, f)
				if err := done(); err != nil {
					b.Fatal(err)
				}
				f, done = openBench(b, dir, impl, false)
				rng := rand.New(rand.NewPCG(1, 2))
				p := make([]byte, NodeSize)
				var lat []time.Duration
				b.SetBytes(NodeSize)
				for b.Loop() {
					off := rng.Int64N(benchSize/NodeSize) * NodeSize
					t0 := time.Now()
					var err error
					if op == "read" {
						_, err = f.ReadAt(ctx, p, off)
					} else {
						_, err = f.WriteAt(ctx, p, off)
					}
					lat = append(lat, time.Since(t0))
					if err != nil {
						b.Fatal(err)
					}
					if op == "write" && len(lat)%256 == 0 {
						var err error
						switch f := f.(type) {
						case *File:
							err = f.Sync(ctx)
						case UntrustedFile:
							err = f.Sync(ctx)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := done(); err != nil {
					b.Fatal(err)
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			})
		}
	}
}
