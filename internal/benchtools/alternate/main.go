// Command alternate compares the benchmarks of two builds of this module by running them in
// alternation, which is how every before/after figure in docs/benchmarks.md was measured: on
// these noisy machines two runs of one build differ by 10-30 %, so runs of the two builds are
// interleaved and the medians compared.
//
//	go run ./internal/benchtools/alternate -base HEAD~3 -bench 'Call64/ratio$' -n 8 ./backend/sim
//
// The base revision is checked out into a temporary git worktree. Each build's test binary runs
// in its own source tree, because the sim benchmarks build their enclaves from the tree they were
// compiled in. For each benchmark and metric it prints the median of each build and their ratio,
// and the raw lines with -v.
//
// With -pair A,B it compares two benchmarks of the working tree's build instead, each run in a
// process of its own, in alternation:
//
//	go run ./internal/benchtools/alternate -pair 'Call64/sim$,Call64/floor-blocking$' -benchtime 100000x -n 12 ./backend/sim
//
// A ratio benchmark that alternates the two in one process (blocks of calls) lets each disturb
// the other through the process they share; this does not (docs/benchmarks.md, session 10).
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// ctx ends at an interrupt: every build and run is made with it.
var ctx = context.Background()

func main() {
	base := flag.String("base", "HEAD", "git revision to compare the working tree with")
	bench := flag.String("bench", "", "benchmark regexp (-test.bench)")
	benchtime := flag.String("benchtime", "", "-test.benchtime for every run (default: go test's)")
	n := flag.Int("n", 6, "runs of each build")
	verbose := flag.Bool("v", false, "print every result line")
	pair := flag.String("pair", "", "A,B: compare benchmarks A and B of the working tree (regexps) instead of two builds")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: alternate (-bench REGEXP [-base REV] | -pair A,B) [-n RUNS] [-benchtime T] [-v] PACKAGE")
		flag.PrintDefaults()
	}
	flag.Parse()
	a, b, isPair := strings.Cut(*pair, ",")
	if flag.NArg() != 1 || (*bench == "") == (*pair == "") || (*pair != "" && (!isPair || a == "" || b == "")) || *n < 1 {
		flag.Usage()
		os.Exit(2)
	}
	// An interrupt ends the running benchmark and returns through the deferred clean-ups, so
	// that no temporary worktree is left registered in the repository.
	var stop context.CancelFunc
	ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *pair != "" {
		err = runPair(flag.Arg(0), a, b, *benchtime, *n, *verbose)
	} else {
		err = run(*base, flag.Arg(0), *bench, *benchtime, *n, *verbose)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "alternate:", err)
		os.Exit(1)
	}
}

// workspace returns the module's root and a new temporary directory.
func workspace() (root, tmp string, err error) {
	if root, err = output("git", "rev-parse", "--show-toplevel"); err != nil {
		return "", "", err
	}
	tmp, err = os.MkdirTemp("", "alternate-")
	return root, tmp, err
}

// buildTest builds package pkg's test binary of the tree at dir into bin.
func buildTest(dir, pkg, bin string) error {
	cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, pkg)
	cmd.Dir, cmd.Stderr = dir, os.Stderr
	return cmd.Run()
}

func run(base, pkg, bench, benchtime string, n int, verbose bool) error {
	root, tmp, err := workspace()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	wt := filepath.Join(tmp, "base")
	if _, err := output("git", "-C", root, "worktree", "add", "--detach", wt, base); err != nil {
		return err
	}
	defer exec.Command("git", "-C", root, "worktree", "remove", "--force", wt).Run()

	trees := []struct{ name, dir, bin string }{
		{"base", wt, filepath.Join(tmp, "base.test")},
		{"new", root, filepath.Join(tmp, "new.test")},
	}
	for _, t := range trees {
		if err := buildTest(t.dir, pkg, t.bin); err != nil {
			return fmt.Errorf("building %s's test binary: %w", t.name, err)
		}
	}
	args := []string{"-test.run", "^$", "-test.bench", bench}
	if benchtime != "" {
		args = append(args, "-test.benchtime", benchtime)
	}
	// results[benchmark][metric][build] = values
	results := map[string]map[string][2][]float64{}
	var order []string
	for i := range n {
		for b, t := range trees {
			cmd := exec.CommandContext(ctx, t.bin, args...)
			cmd.Dir = filepath.Join(t.dir, pkg)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("run %d of %s: %w", i+1, t.name, err)
			}
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				line := sc.Text()
				name, metrics, ok := parse(line)
				if !ok {
					continue
				}
				if verbose {
					fmt.Printf("%-4s %s\n", t.name, line)
				}
				if results[name] == nil {
					results[name] = map[string][2][]float64{}
					order = append(order, name)
				}
				for unit, v := range metrics {
					r := results[name][unit]
					r[b] = append(r[b], v)
					results[name][unit] = r
				}
			}
		}
	}
	fmt.Printf("%d alternating runs of each build; medians (range)\n", n)
	for _, name := range order {
		fmt.Println(name)
		units := make([]string, 0, len(results[name]))
		for u := range results[name] {
			units = append(units, u)
		}
		sort.Strings(units)
		for _, u := range units {
			r := results[name][u]
			if len(r[0]) == 0 || len(r[1]) == 0 {
				continue
			}
			mb, mn := median(r[0]), median(r[1])
			fmt.Printf("  %-18s base %12.4g (%.4g-%.4g)  new %12.4g (%.4g-%.4g)  new/base %.3f\n",
				u, mb, slices.Min(r[0]), slices.Max(r[0]), mn, slices.Min(r[1]), slices.Max(r[1]), mn/mb)
		}
	}
	return nil
}

// runPair runs benchmarks a and b of the working tree's build alternately, each in its own
// process, and prints each metric's medians and their ratio a/b.
func runPair(pkg, a, b, benchtime string, n int, verbose bool) error {
	root, tmp, err := workspace()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "pkg.test")
	if err := buildTest(root, pkg, bin); err != nil {
		return fmt.Errorf("building the test binary: %w", err)
	}
	// results[metric][side] = values; names[side] = the benchmark each matched
	results := map[string][2][]float64{}
	var names [2]string
	var perRound []float64 // a/b of ns/op, round by round
	for i := range n {
		var ns [2]float64
		for side, re := range []string{a, b} {
			args := []string{"-test.run", "^$", "-test.bench", re}
			if benchtime != "" {
				args = append(args, "-test.benchtime", benchtime)
			}
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Dir = filepath.Join(root, pkg)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("run %d of %s: %w", i+1, re, err)
			}
			found := 0
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				name, metrics, ok := parse(sc.Text())
				if !ok {
					continue
				}
				if found++; found > 1 || (names[side] != "" && names[side] != name) {
					return fmt.Errorf("%q matches more than one benchmark (%s, %s)", re, names[side], name)
				}
				names[side] = name
				if verbose {
					fmt.Println(sc.Text())
				}
				for unit, v := range metrics {
					r := results[unit]
					r[side] = append(r[side], v)
					results[unit] = r
				}
				ns[side] = metrics["ns/op"]
			}
			if found == 0 {
				return fmt.Errorf("%q matches no benchmark", re)
			}
		}
		if ns[1] > 0 {
			perRound = append(perRound, ns[0]/ns[1])
		}
	}
	fmt.Printf("%d alternating runs, each in its own process; medians (range)\n", n)
	fmt.Printf("a: %s\nb: %s\n", names[0], names[1])
	units := make([]string, 0, len(results))
	for u := range results {
		units = append(units, u)
	}
	sort.Strings(units)
	for _, u := range units {
		r := results[u]
		if len(r[0]) == 0 || len(r[1]) == 0 {
			continue
		}
		ma, mb := median(r[0]), median(r[1])
		fmt.Printf("  %-18s a %12.4g (%.4g-%.4g)  b %12.4g (%.4g-%.4g)  a/b %.3f\n",
			u, ma, slices.Min(r[0]), slices.Max(r[0]), mb, slices.Min(r[1]), slices.Max(r[1]), ma/mb)
	}
	if len(perRound) > 0 {
		fmt.Printf("  ns/op a/b round by round: median %.3f (%.3f-%.3f)\n", median(perRound), slices.Min(perRound), slices.Max(perRound))
	}
	return nil
}

// parse reads a benchmark result line: name, iterations, then value-unit pairs.
func parse(line string) (string, map[string]float64, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return "", nil, false
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return "", nil, false
	}
	m := map[string]float64{}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		m[f[i+1]] = v
	}
	return f[0], m, true
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func output(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(ee.Stderr))
		}
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}
