package storage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The crash test runs a child process (this test binary, re-executed) that
// commits a deterministic sequence of states through DirFS, kills it with
// SIGKILL at a random moment, and checks that the file opens at the last
// state the child reported committed or the one after it (docs/storage.md
// §5). STORAGE_CRASH_ITERATIONS sets the number of kills (default 200).

const crashName = "crash.db"

// crashState returns the contents of state k given state k-1.
func crashState(seed uint64, k int, prev []byte) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(k)))
	b := bytes.Clone(prev)
	for range 1 + rng.IntN(4) {
		if rng.IntN(8) == 0 {
			sz := rng.IntN(300 << 10)
			if sz < len(b) {
				b = b[:sz]
			} else {
				b = append(b, make([]byte, sz-len(b))...)
			}
			continue
		}
		off := rng.IntN(300 << 10)
		n := 1 + rng.IntN(40<<10)
		if rng.IntN(4) == 0 { // whole nodes, for the bulk path
			off = rng.IntN(75) * NodeSize
			n = (minThrough + rng.IntN(100)) * NodeSize
		}
		if off+n > len(b) {
			b = append(b, make([]byte, off+n-len(b))...)
		}
		for i := range n {
			b[off+i] = byte(k) ^ byte(i*31)
		}
	}
	return b
}

// crashApply writes the difference between prev and next into f, in one
// WriteAt per changed range (ranges less than a node apart are merged).
func crashApply(ctx context.Context, f *File, prev, next []byte) error {
	if len(next) < len(prev) {
		if err := f.Truncate(ctx, int64(len(next))); err != nil {
			return err
		}
		prev = prev[:len(next)]
	}
	for i := 0; i < len(next); {
		if i < len(prev) && prev[i] == next[i] {
			i++
			continue
		}
		j, same := i, 0
		for j < len(next) && same < NodeSize {
			if j < len(prev) && prev[j] == next[j] {
				same++
			} else {
				same = 0
			}
			j++
		}
		j -= same
		if _, err := f.WriteAt(ctx, next[i:j], int64(i)); err != nil {
			return err
		}
		i = j
	}
	return nil
}

func crashOpts(dir string) Options {
	return Options{Counter: NewFileCounter(filepath.Join(dir, "ctr")), CacheNodes: 16}
}

// TestCrashChild is the child process; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("STORAGE_CRASH_DIR")
	if dir == "" {
		t.Skip("only run as the child of TestCrash")
	}
	ctx := context.Background()
	seed, _ := strconv.ParseUint(os.Getenv("STORAGE_CRASH_SEED"), 10, 64)
	start, _ := strconv.Atoi(os.Getenv("STORAGE_CRASH_START"))
	var cur []byte
	for k := 1; k <= start; k++ {
		cur = crashState(seed, k, cur)
	}
	f, err := Open(ctx, DirFS(filepath.Join(dir, "data")), crashName, testKey, crashOpts(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	got := make([]byte, f.Size())
	f.ReadAt(ctx, got, 0)
	if !bytes.Equal(got, cur) {
		fmt.Fprintln(os.Stderr, "child: file is not at state", start)
		os.Exit(3)
	}
	for k := start + 1; ; k++ {
		next := crashState(seed, k, cur)
		if err := crashApply(ctx, f, cur, next); err != nil {
			fmt.Fprintln(os.Stderr, "child write:", err)
			os.Exit(3)
		}
		if err := f.Sync(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "child sync:", err)
			os.Exit(3)
		}
		fmt.Println(k)
		cur = next
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	iters := 200
	if s := os.Getenv("STORAGE_CRASH_ITERATIONS"); s != "" {
		iters, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "data"), 0o700))
	must(t, os.MkdirAll(filepath.Join(dir, "ctr"), 0o700))
	f, err := Create(ctx, DirFS(filepath.Join(dir, "data")), crashName, testKey, crashOpts(dir))
	must(t, err)
	must(t, f.Close(ctx))

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	states := [][]byte{nil} // states[k], computed on demand
	state := func(k int) []byte {
		for len(states) <= k {
			states = append(states, crashState(seed, len(states), states[len(states)-1]))
		}
		return states[k]
	}
	cur, same := 0, 0
	for it := range iters {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			"STORAGE_CRASH_DIR="+dir,
			"STORAGE_CRASH_SEED="+strconv.FormatUint(seed, 10),
			"STORAGE_CRASH_START="+strconv.Itoa(cur))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		must(t, err)
		must(t, cmd.Start())
		lines := make(chan int, 1)
		go func() {
			last := cur
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if k, err := strconv.Atoi(sc.Text()); err == nil {
					last = k
				}
			}
			lines <- last
		}()
		time.Sleep(time.Duration(5+rng.IntN(150)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		last := <-lines
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("iteration %d: child was not killed: %v\n%s", it, err, stderr.String())
		}
		// Open a copy, so the next child recovers the original itself.
		scratch := t.TempDir()
		copyTree(t, dir, scratch)
		f, err := Open(ctx, DirFS(filepath.Join(scratch, "data")), crashName, testKey, crashOpts(scratch))
		if err != nil {
			t.Fatalf("iteration %d (last committed state %d): open after kill: %v", it, last, err)
		}
		got := make([]byte, f.Size())
		if _, err := f.ReadAt(ctx, got, 0); err != nil && len(got) > 0 {
			t.Fatalf("iteration %d: read after kill: %v", it, err)
		}
		f.Close(ctx)
		switch {
		case bytes.Equal(got, state(last)):
			cur = last
			same++
		case bytes.Equal(got, state(last+1)):
			cur = last + 1
		default:
			t.Fatalf("iteration %d: file is neither state %d nor %d", it, last, last+1)
		}
		os.RemoveAll(scratch)
	}
	t.Logf("%d kills, %d commits survived; %d times at the last reported state, %d one past it", iters, cur, same, iters-same)
}
