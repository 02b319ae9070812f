// Command asylo builds, signs, inspects and runs asylo enclaves.
//
//	asylo build -o hello.enclave ./cmd/hello
//	asylo keygen -o signer.pem
//	asylo sign --key signer.pem --product-id 1 --svn 1 hello.enclave
//	asylo measure hello.enclave
//	asylo run --input request.bin hello.enclave
//	asylo doctor
//
// Every command is a thin layer over the library (packages build, identity, backend/sim and
// host); docs/cli.md describes the commands, their flags and exit codes.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
