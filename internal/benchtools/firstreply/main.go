// Command firstreply is the "exec to first reply" floor for the sim back-end's load benchmark
// (backend/sim/bench_test.go): a trivial static Go program, built like an enclave, that writes
// one byte to the descriptor it inherited as fd 3 and exits.
package main

import "os"

func main() {
	f := os.NewFile(3, "reply")
	if _, err := f.Write([]byte{1}); err != nil {
		os.Exit(2)
	}
	os.Exit(0)
}
