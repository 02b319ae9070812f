package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/asylo-go/asylo/internal/enclavetest"
)

// testEnclavePkg is the enclave the scripts run. Its Run returns "run:<config>:<input>"; its
// Initialize fails for the config "fail-init" and exits with status 3 for "exit-init".
const testEnclavePkg = "./internal/testenclave/cmd/testenclave"

// TestMain lets the test binary act as the asylo command inside scripts (and for exec.Command
// in the Go tests, through $PATH).
func TestMain(m *testing.M) {
	testscript.Main(cleanupM{m}, map[string]func(){
		"asylo": func() { os.Exit(Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// cleanupM removes the enclaves enclavetest built once the tests have run.
type cleanupM struct{ m *testing.M }

func (c cleanupM) Run() int {
	defer enclavetest.Cleanup()
	return c.m.Run()
}

// TestScript runs testdata/script/*.txtar. Each script starts with a copy of the test enclave,
// unsigned, at $WORK/testenclave; $ENCLAVE is the original and $MODROOT the module root (for
// `asylo build`, which runs the go command with the caller's caches and no network).
func TestScript(t *testing.T) {
	enc := enclavetest.Build(t, testEnclavePkg)
	goEnv := goEnv(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("ENCLAVE", enc)
			env.Setenv("MODROOT", enclavetest.ModuleRoot())
			for k, v := range goEnv {
				env.Setenv(k, v)
			}
			env.Setenv("GOPROXY", "off")
			env.Setenv("GOTOOLCHAIN", "local")
			return copyFile(enc, filepath.Join(env.WorkDir, "testenclave"))
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":   cmdExits,
			"append":  cmdAppend,
			"replace": cmdReplace,
			"perm":    cmdPerm,
		},
	})
}

// cmdExits: exits CODE PROGRAM [ARGS...] -- runs PROGRAM like exec and checks its exit status.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var xe *exec.ExitError
		if !errors.As(err, &xe) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = xe.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// cmdPerm: perm FILE MODE -- checks FILE's permission bits (octal).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if got := fi.Mode().Perm(); got != os.FileMode(want) {
		ts.Fatalf("%s has mode %#o, want %#o", args[0], got, want)
	}
}

// cmdAppend: append FILE TEXT -- appends TEXT to FILE, creating it if needed (to tamper with a
// binary, or to write a file without a final newline).
func cmdAppend(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: append FILE TEXT")
	}
	f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	ts.Check(err)
	_, err = f.WriteString(args[1])
	ts.Check(err)
	ts.Check(f.Close())
}

// cmdReplace: replace FILE OLD NEW -- replaces the one occurrence of OLD in FILE by NEW.
func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: replace FILE OLD NEW")
	}
	data := ts.ReadFile(args[0])
	if strings.Count(data, args[1]) != 1 {
		ts.Fatalf("%s: %q occurs %d times, want once", args[0], args[1], strings.Count(data, args[1]))
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(strings.Replace(data, args[1], args[2], 1)), 0o666))
}

var (
	goEnvOnce sync.Once
	goEnvVars map[string]string
	goEnvErr  error
)

// goEnv returns the go command's caches, which scripts need: they run with HOME unset.
func goEnv(t *testing.T) map[string]string {
	t.Helper()
	goEnvOnce.Do(func() {
		out, err := exec.Command("go", "env", "-json", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
		if err != nil {
			goEnvErr = err
			return
		}
		goEnvErr = json.Unmarshal(out, &goEnvVars)
	})
	if goEnvErr != nil {
		t.Fatalf("go env: %v", goEnvErr)
	}
	return goEnvVars
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}
