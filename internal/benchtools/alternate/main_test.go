package main

import "testing"

func TestParse(t *testing.T) {
	name, m, ok := parse("BenchmarkCall64/ratio-2   \t  20000\t     46608 ns/op\t     23086 floor-cpu-ns/op\t  1.375 x")
	if !ok || name != "BenchmarkCall64/ratio-2" || m["ns/op"] != 46608 || m["floor-cpu-ns/op"] != 23086 || m["x"] != 1.375 {
		t.Fatalf("parse = %q %v %v", name, m, ok)
	}
	for _, line := range []string{"PASS", "ok  \tpkg\t1.2s", "BenchmarkX-2 \tFAIL", "BenchmarkX-2 10 abc ns/op", "goos: linux"} {
		if _, _, ok := parse(line); ok {
			t.Errorf("parse(%q) accepted", line)
		}
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
}
