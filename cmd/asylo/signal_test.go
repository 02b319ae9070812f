package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asylo-go/asylo/internal/enclavetest"
)

// TestRunSignal interrupts `asylo run` while the enclave is loaded and waiting for its input on
// standard input: the command destroys the enclave and exits with 128 + the signal number.
func TestRunSignal(t *testing.T) {
	enc := enclavetest.Build(t, testEnclavePkg)
	for _, tc := range []struct {
		sig  syscall.Signal
		name string
	}{
		{syscall.SIGINT, "SIGINT"},
		{syscall.SIGTERM, "SIGTERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("asylo", "run", "--debug", "--input", "-", enc)
			stdin, err := cmd.StdinPipe() // kept open: the command waits for its input
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()

			// The enclave logs "initialized" once loaded.
			lines := make(chan string)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			var rest []string
			timeout := time.After(time.Minute)
		wait:
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("asylo run ended before the enclave was initialized; stderr:\n%s", strings.Join(rest, "\n"))
					}
					rest = append(rest, l)
					if strings.Contains(l, "msg=initialized") {
						break wait
					}
				case <-timeout:
					t.Fatal("the enclave did not initialize within a minute")
				}
			}
			// The command's children: the enclave and the sim back-end's spawner, which started it.
			var children []int
			for _, pid := range childrenOf(cmd.Process.Pid) {
				if !isSpawner(pid) {
					children = append(children, pid)
				}
			}
			if len(children) != 1 {
				t.Fatalf("asylo run has children %v besides the spawner, want the enclave process only", children)
			}

			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			for l := range lines {
				rest = append(rest, l)
			}
			err = cmd.Wait()
			var xe *exec.ExitError
			if !errors.As(err, &xe) || xe.ExitCode() != 128+int(tc.sig) {
				t.Fatalf("asylo run: %v, want exit status %d", err, 128+int(tc.sig))
			}
			want := "asylo: run: interrupted by " + tc.name + "; the enclave was destroyed"
			if last := rest[len(rest)-1]; last != want {
				t.Errorf("last line of stderr: %q, want %q", last, want)
			}
			// The enclave process was killed and reaped by the command.
			if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(children[0]))); err == nil {
				t.Errorf("enclave process %d still exists after asylo run exited", children[0])
			}
		})
	}
}

// isSpawner reports whether pid is a sim back-end's spawner (its argv[0] says so).
func isSpawner(pid int) bool {
	cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.HasPrefix(string(cmdline), "asylo-sim-prestarted\x00")
}

// childrenOf returns the processes whose parent is pid.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces and parentheses.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			kids = append(kids, n)
		}
	}
	return kids
}
