package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"

	"github.com/asylo-go/asylo/backend/sim/platform"
)

var platformCmd = &command{
	name:    "platform",
	args:    "[--dir DIR] init|show|export-root",
	summary: "manage the sim back-end's software platform",
	doc: `
Platform manages the sim back-end's software platform: the keys that sign sim attestation
evidence and the secret sim sealing derives from, kept in a state directory
($XDG_STATE_HOME/asylo/sim-platform by default, or --dir).

  init         create the platform if the directory holds none, and show it
  show         show the platform: directory, key id, root certificate
  export-root  print the root certificate (PEM), for verifiers (asylo verify --sim-root)

The platform is software on this machine: whoever can read its directory, root included,
can forge its evidence. Verifiers accept sim evidence only for a root they are given.`,
	setup: func(fs *flag.FlagSet) runFunc {
		dir := fs.String("dir", "", "platform state directory (default $XDG_STATE_HOME/asylo/sim-platform)")
		return func(ctx context.Context, c *cli, args []string) error {
			sub, err := oneArg("platform", args, "init, show or export-root")
			if err != nil {
				return err
			}
			d, err := platformDir(*dir)
			if err != nil {
				return err
			}
			var p *platform.Platform
			switch sub {
			case "init":
				p, err = platform.Open(d)
			case "show", "export-root":
				p, err = platform.Load(d)
			default:
				return usagef("platform", "unknown subcommand %q: want init, show or export-root", sub)
			}
			if err != nil {
				return fmt.Errorf("platform: %w", err)
			}
			if sub == "export-root" {
				_, err := c.stdout.Write(p.RootPEM())
				return err
			}
			kid := p.KeyID()
			r := p.Root()
			fmt.Fprintf(c.stdout, "directory  %s\nkey id     %s\nroot       %s (valid %s to %s)\n",
				p.Dir(), hex.EncodeToString(kid[:]), r.Subject.CommonName,
				r.NotBefore.UTC().Format("2006-01-02"), r.NotAfter.UTC().Format("2006-01-02"))
			return nil
		}
	},
}

func platformDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return platform.DefaultDir()
}
