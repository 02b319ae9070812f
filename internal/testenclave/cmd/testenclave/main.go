// Command testenclave is the conformance suite's enclave binary.
package main

import (
	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/internal/testenclave"
)

func main() {
	app, opts := testenclave.New()
	enclave.Run(app, opts...)
}
