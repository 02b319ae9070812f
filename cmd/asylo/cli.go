package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // the command line is wrong
)

// cli is one invocation of the command: its standard streams.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// runFunc runs a command with the arguments left after its flags.
type runFunc func(ctx context.Context, c *cli, args []string) error

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis after "asylo name"
	summary string // one line, for `asylo help`
	doc     string // paragraphs, for `asylo help name`
	// setup defines the command's flags on fs and returns the function that runs it once fs is
	// parsed. It is also called without running, to print the flags in the usage.
	setup func(fs *flag.FlagSet) runFunc
}

// commands returns the subcommands in the order `asylo help` lists them.
func commands() []*command {
	return []*command{buildCmd, keygenCmd, signCmd, measureCmd, runCmd, platformCmd, attestCmd, verifyCmd, verifyPeerCmd, inspectCmd, doctorCmd, versionCmd}
}

func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Main runs the asylo command with args (without the program name) and returns its exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	return c.report(c.dispatch(ctx, args))
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		printUsage(c.stderr)
		return errQuietUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return c.help(args[1:])
	}
	cmd := lookup(args[0])
	if cmd == nil {
		return &usageError{err: fmt.Errorf("unknown command %q", args[0])}
	}
	fs := newFlagSet(cmd)
	run := cmd.setup(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cmd.printUsage(c.stdout)
			return nil
		}
		return &usageError{cmd: cmd.name, err: err}
	}
	return run(ctx, c, fs.Args())
}

func newFlagSet(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet("asylo "+cmd.name, flag.ContinueOnError)
	// Errors are reported by report, in one line; usage is printed only on request.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// help implements `asylo help [command]`.
func (c *cli) help(args []string) error {
	switch len(args) {
	case 0:
		printUsage(c.stdout)
		return nil
	case 1:
		cmd := lookup(args[0])
		if cmd == nil {
			return &usageError{cmd: "help", err: fmt.Errorf("unknown command %q", args[0])}
		}
		cmd.printUsage(c.stdout)
		return nil
	}
	return &usageError{cmd: "help", err: errors.New("takes at most one command name")}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, "asylo builds, signs, inspects and runs enclaves.\n\nUsage:\n\n\tasylo <command> [flags] [arguments]\n\nCommands:\n\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "\t%-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun 'asylo help <command>' (or 'asylo <command> -h') for a command's flags.\n")
}

func (cmd *command) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: asylo %s %s\n\n%s\n", cmd.name, cmd.args, strings.TrimSpace(cmd.doc))
	fs := newFlagSet(cmd)
	cmd.setup(fs)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// usageError is a wrong command line: exit status 2.
type usageError struct {
	cmd string // "" for the top level
	err error
}

func (e *usageError) Error() string {
	if e.cmd == "" {
		return e.err.Error() + "; run 'asylo help' for the list of commands"
	}
	return fmt.Sprintf("%s: %v; run 'asylo help %s' for usage", e.cmd, e.err, e.cmd)
}

func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usage error of command cmd.
func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// errQuietUsage: the usage was already printed; exit 2 without another message.
var errQuietUsage = &usageError{err: errors.New("no command")}

// exitError makes the command exit with a given status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// report prints err, if any, as one line starting with "asylo: " and returns the exit status.
func (c *cli) report(err error) int {
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ue *usageError
	var xe *exitError
	switch {
	case errors.As(err, &xe):
		code = xe.code
	case errors.As(err, &ue):
		code = exitUsage
	}
	if err != errQuietUsage {
		fmt.Fprintf(c.stderr, "asylo: %v\n", err)
	}
	return code
}

// oneArg checks that args holds exactly one argument, named what in the error.
func oneArg(cmd string, args []string, what string) (string, error) {
	switch len(args) {
	case 0:
		return "", usagef(cmd, "missing %s", what)
	case 1:
		return args[0], nil
	}
	return "", usagef(cmd, "too many arguments after %s: %q", what, args[1:])
}
