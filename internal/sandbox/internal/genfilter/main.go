// Command genfilter writes internal/sandbox's zfilter_linux_<arch>.go from the policy in
// internal/sandbox/seccomppolicy. Run it with go generate in internal/sandbox.
package main

import (
	"fmt"
	"os"

	"github.com/asylo-go/asylo/internal/sandbox/seccomppolicy"
)

func main() {
	for _, goarch := range seccomppolicy.Arches {
		src, err := seccomppolicy.Generate(goarch)
		if err != nil {
			fmt.Fprintln(os.Stderr, "genfilter:", err)
			os.Exit(1)
		}
		if err := os.WriteFile("zfilter_linux_"+goarch+".go", src, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "genfilter:", err)
			os.Exit(1)
		}
	}
}
