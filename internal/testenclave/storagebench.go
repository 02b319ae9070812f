package testenclave

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"runtime/pprof"
	"time"

	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/storage"
)

// BenchStorageRequest is the input of the "bench-storage" handler, which moves data through the
// enclave's storage host calls for the benchmarks of docs/storage.md §9:
//
//   - Mode "plain": the storage.UntrustedFS that enclave.Storage returns (the host sees the bytes).
//   - Mode "protected": a protected file (enclave.OpenFile).
//
// Ops on the file Name in the enclave's storage directory:
//
//   - "write": remove the file, create it, write Size bytes in WriteAt calls of Chunk bytes,
//     then Sync (plain) or commit by Close (protected).
//   - "read": open the file and read Size bytes in ReadAt calls of Chunk bytes.
//   - "randread" / "randwrite": open the file (of at least Size bytes) and do Count reads or
//     writes of 4096 bytes at random 4096-aligned offsets below Size (PCG seeded with Seed),
//     timing each call; writes are synced (committed) every SyncEvery calls and at the end,
//     outside the per-call times.
type BenchStorageRequest struct {
	Mode      string `json:"mode"`
	Op        string `json:"op"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	Chunk     int    `json:"chunk"`
	Count     int    `json:"count"`
	SyncEvery int    `json:"sync_every"`
	Seed      uint64 `json:"seed"`
	// CPUProfile asks for a CPU profile of the operation (runtime/pprof), returned in the
	// result. The sim sandbox forbids the profiling timer: load the enclave with
	// sim.InsecureNoSandbox to use it.
	CPUProfile bool `json:"cpu_profile,omitempty"`
}

// BenchStorageResult is the output of "bench-storage": the time the operation took inside the
// enclave (open to close), and for the random ops the duration of each ReadAt or WriteAt call.
type BenchStorageResult struct {
	ElapsedNS   int64   `json:"elapsed_ns"`
	LatenciesNS []int64 `json:"latencies_ns,omitempty"`
	CPUProfile  []byte  `json:"cpu_profile,omitempty"` // pprof format, if asked for
}

// Bounds of a bench-storage request, so that a bad request fails instead of exhausting memory.
const (
	benchMaxSize  = 1 << 30
	benchMaxChunk = 16 << 20
	benchMaxCount = 1 << 20
	benchIO       = 4096
)

// benchFile is what both modes offer.
type benchFile interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	WriteAt(ctx context.Context, p []byte, off int64) (int, error)
	Sync(ctx context.Context) error
}

// BenchStorage is the "bench-storage" handler.
func BenchStorage(ctx context.Context, in []byte) ([]byte, error) {
	var r BenchStorageRequest
	if err := json.Unmarshal(in, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", enclave.ErrInvalidArgument, err)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("%w: bench-storage: %v", enclave.ErrInvalidArgument, err)
	}
	fsys, _, err := enclave.Storage(ctx)
	if err != nil {
		return nil, err
	}
	var prof bytes.Buffer
	if r.CPUProfile {
		if err := pprof.StartCPUProfile(&prof); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	var lat []int64
	switch r.Op {
	case "write":
		err = benchWrite(ctx, fsys, &r)
	case "read":
		err = benchRead(ctx, fsys, &r)
	default:
		lat, err = benchRandom(ctx, fsys, &r)
	}
	elapsed := time.Since(t0).Nanoseconds()
	if r.CPUProfile {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(BenchStorageResult{ElapsedNS: elapsed, LatenciesNS: lat, CPUProfile: prof.Bytes()})
}

func (r *BenchStorageRequest) check() error {
	switch r.Mode {
	case "plain", "protected":
	default:
		return fmt.Errorf("mode %q, want plain or protected", r.Mode)
	}
	if r.Name == "" || r.Size <= 0 || r.Size > benchMaxSize {
		return errors.New("want a name and a size of 1 byte to 1 GiB")
	}
	switch r.Op {
	case "write", "read":
		if r.Chunk <= 0 || r.Chunk > benchMaxChunk {
			return errors.New("chunk must be 1 byte to 16 MiB")
		}
	case "randread", "randwrite":
		if r.Count <= 0 || r.Count > benchMaxCount || r.Size < benchIO || r.SyncEvery < 0 {
			return errors.New("want 1 to 2^20 calls in a file of at least 4096 bytes")
		}
	default:
		return fmt.Errorf("op %q, want write, read, randread or randwrite", r.Op)
	}
	return nil
}

// open opens the benchmark file in r.Mode and returns it with the function that closes it
// (committing a protected file).
func (r *BenchStorageRequest) open(ctx context.Context, fsys storage.UntrustedFS, create bool) (benchFile, func() error, error) {
	if r.Mode == "plain" {
		f, err := fsys.OpenFile(ctx, r.Name, create)
		if err != nil {
			return nil, nil, err
		}
		return f, f.Close, nil
	}
	f, err := enclave.OpenFile(ctx, r.Name, create)
	if err != nil {
		return nil, nil, err
	}
	return f, func() error { return f.Close(ctx) }, nil
}

func benchWrite(ctx context.Context, fsys storage.UntrustedFS, r *BenchStorageRequest) error {
	// A new file each time: the protected one is then written by storage.Create's path, where
	// nodes past the committed end go straight to the backing file (docs/storage.md §5).
	for _, s := range []string{"", "~journal", "~pending"} {
		if err := fsys.Remove(ctx, r.Name+s); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	f, closeFile, err := r.open(ctx, fsys, true)
	if err != nil {
		return err
	}
	p := make([]byte, r.Chunk)
	for i := range p {
		p[i] = byte(i)
	}
	for off := int64(0); off < r.Size; off += int64(r.Chunk) {
		q := p[:min(int64(len(p)), r.Size-off)]
		if _, err := f.WriteAt(ctx, q, off); err != nil {
			closeFile()
			return err
		}
	}
	if r.Mode == "plain" {
		if err := f.Sync(ctx); err != nil {
			closeFile()
			return err
		}
	}
	return closeFile()
}

func benchRead(ctx context.Context, fsys storage.UntrustedFS, r *BenchStorageRequest) error {
	f, closeFile, err := r.open(ctx, fsys, false)
	if err != nil {
		return err
	}
	p := make([]byte, r.Chunk)
	for off := int64(0); off < r.Size; off += int64(r.Chunk) {
		q := p[:min(int64(len(p)), r.Size-off)]
		if n, err := f.ReadAt(ctx, q, off); n != len(q) {
			closeFile()
			return fmt.Errorf("read %d of %d bytes at %d: %v", n, len(q), off, err)
		}
	}
	return closeFile()
}

func benchRandom(ctx context.Context, fsys storage.UntrustedFS, r *BenchStorageRequest) ([]int64, error) {
	f, closeFile, err := r.open(ctx, fsys, false)
	if err != nil {
		return nil, err
	}
	write := r.Op == "randwrite"
	rng := rand.New(rand.NewPCG(r.Seed, 2))
	p := make([]byte, benchIO)
	lat := make([]int64, 0, r.Count)
	for i := range r.Count {
		off := rng.Int64N(r.Size/benchIO) * benchIO
		if write {
			p[0] = byte(i)
		}
		t0 := time.Now()
		var n int
		if write {
			n, err = f.WriteAt(ctx, p, off)
		} else {
			n, err = f.ReadAt(ctx, p, off)
		}
		lat = append(lat, time.Since(t0).Nanoseconds())
		if n != len(p) {
			closeFile()
			return nil, fmt.Errorf("%s of %d bytes at %d did %d: %v", r.Op, len(p), off, n, err)
		}
		if write && r.SyncEvery > 0 && (i+1)%r.SyncEvery == 0 {
			if err := f.Sync(ctx); err != nil {
				closeFile()
				return nil, err
			}
		}
	}
	if write && r.Mode == "plain" {
		if err := f.Sync(ctx); err != nil {
			closeFile()
			return nil, err
		}
	}
	return lat, closeFile()
}
