package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

var versionCmd = &command{
	name:    "version",
	args:    "",
	summary: "print the asylo version",
	doc: `
Version prints the version of the asylo module this command was built from ("devel" for a
build from a source tree) and the Go version that built it.`,
	setup: func(fs *flag.FlagSet) runFunc {
		return func(ctx context.Context, c *cli, args []string) error {
			if len(args) != 0 {
				return usagef("version", "takes no arguments, got %q", args)
			}
			fmt.Fprintf(c.stdout, "asylo %s %s\n", moduleVersion(), runtime.Version())
			return nil
		}
	},
}

// moduleVersion returns the version of the main module, or "devel".
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" || bi.Main.Version == "(devel)" {
		return "devel"
	}
	return bi.Main.Version
}
