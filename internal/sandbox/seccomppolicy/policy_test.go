//go:build linux

package seccomppolicy

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// run evaluates a program on one system call the way the kernel does: seccomp_data is the
// call's number, the audit architecture, the instruction pointer and six arguments in the
// machine's (little-endian) layout. x/net/bpf's VM loads words big-endian, so each 32-bit word is
// stored big-endian at the offset where the kernel would have it.
func run(t *testing.T, vm *bpf.VM, auditArch uint32, nr int, args [6]uint64) uint32 {
	t.Helper()
	var data [64]byte
	binary.BigEndian.PutUint32(data[0:], uint32(nr))
	binary.BigEndian.PutUint32(data[4:], auditArch)
	for i, a := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(data[20+8*i:], uint32(a>>32))
	}
	r, err := vm.Run(data[:])
	if err != nil {
		t.Fatal(err)
	}
	return uint32(r)
}

// newVM assembles a stage for goarch and pid and loads it into x/net/bpf's interpreter.
func newVM(t *testing.T, goarch string, stage Stage, pid uint32) *bpf.VM {
	t.Helper()
	raw, _, err := ProgramStage(goarch, stage, pid)
	if err != nil {
		t.Fatal(err)
	}
	insts, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("%s %v: program does not disassemble", goarch, stage)
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// stricter is the kernel's choice between two filters' answers: the lower action, compared as a
// signed 32-bit number (SECCOMP_RET_ACTION_FULL); on a tie the most recently installed filter's.
func stricter(older, newer uint32) uint32 {
	if int32(older&0xffff0000) < int32(newer&0xffff0000) {
		return older
	}
	return newer
}

// TestStagesComposeToWhole: a process under Launch and then Finish gets, for every system call
// and every argument vector tried, exactly the answer Whole gives.
func TestStagesComposeToWhole(t *testing.T) {
	const pid = 1
	// Values the policies test, and their neighbours.
	specials := []uint64{0, 1, 2, 9, 15, pid, pid + 1, 4194304,
		unix.CLONE_THREAD | unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_SYSVSEM,
		unix.CLONE_THREAD | unix.CLONE_NEWUSER, uint64(unix.SIGCHLD), unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD),
		SpawnCloneFlags, SpawnCloneFlags | unix.CLONE_NEWPID, SpawnCloneFlags | unix.CLONE_THREAD,
		SpawnCloneFlags | SpawnNamespaceFlags, SpawnCloneFlags | SpawnNamespaceFlags | unix.CLONE_NEWUSER,
		SpawnCloneFlags | SpawnNamespaceFlags | unix.CLONE_NEWNET, SpawnNamespaceFlags | unix.CLONE_VM | uint64(unix.SIGCHLD),
		unix.PROT_READ | unix.PROT_WRITE, unix.PROT_READ | unix.PROT_EXEC,
		unix.PR_SET_DUMPABLE, unix.PR_GET_DUMPABLE, unix.PR_SET_PDEATHSIG, unix.PR_SET_NO_NEW_PRIVS, unix.PR_GET_SECCOMP,
		unix.F_GETFD, unix.F_SETFD, unix.F_SETOWN, unix.F_ADD_SEALS, unix.F_GET_SEALS,
		unix.SECCOMP_SET_MODE_STRICT, unix.SECCOMP_SET_MODE_FILTER, archSetFS, archSetFS + 1, 1 << 32, 1<<32 | unix.CLONE_THREAD}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, goarch := range Arches {
		info, err := arch.GetInfo(goarch)
		if err != nil {
			t.Fatal(err)
		}
		whole, launch, finish := newVM(t, goarch, Whole, pid), newVM(t, goarch, Launch, pid), newVM(t, goarch, Finish, pid)
		// The syscalls some stage tests arguments of, whose numbers are also interesting
		// argument values (go-seccomp-bpf v1.6.0 mistook an argument for a syscall number).
		conditional := map[int]bool{}
		vals := slices.Clone(specials)
		for _, n := range []string{"clone", "tgkill", "mmap", "mprotect", "prctl", "prlimit64", "fcntl", "seccomp", "execve", "landlock_create_ruleset", "arch_prctl"} {
			if nr, ok := info.SyscallNames[n]; ok {
				conditional[nr] = true
				vals = append(vals, uint64(nr))
			}
		}
		// Every syscall with each value in each of the first three arguments; the conditional
		// ones also with every pair of values and with random vectors.
		single := [][6]uint64{{}}
		for _, a := range vals {
			single = append(single, [6]uint64{a}, [6]uint64{0, a}, [6]uint64{0, 0, a})
		}
		full := slices.Clone(single)
		for _, a := range vals {
			for _, b := range vals {
				full = append(full, [6]uint64{a, b}, [6]uint64{a, 0, b})
			}
		}
		for range 500 {
			var v [6]uint64
			for i := range v {
				v[i] = vals[rng.IntN(len(vals))]
			}
			full = append(full, v)
		}
		// The programs are for this architecture (a program that refuses everything would make
		// the comparison vacuous).
		if r := run(t, whole, uint32(info.ID), info.SyscallNames["read"], [6]uint64{}); r != 0x7fff0000 {
			t.Fatalf("%s: whole answers read with %#x", goarch, r)
		}
		checked := 0
		// Every number, and on amd64 the x32 ABI's numbers too (bit 30), which all stages must
		// refuse alike.
		nrs := make([]int, 0, 1024)
		for nr := range 512 {
			nrs = append(nrs, nr)
			if goarch == "amd64" {
				nrs = append(nrs, nr|0x40000000)
			}
		}
		for _, nr := range nrs {
			vectors := single
			if conditional[nr] {
				vectors = full
			}
			for _, args := range vectors {
				w := run(t, whole, uint32(info.ID), nr, args)
				l := run(t, launch, uint32(info.ID), nr, args)
				f := run(t, finish, uint32(info.ID), nr, args)
				if got := stricter(l, f); got != w {
					t.Fatalf("%s: %s(%#x): launch %#x then finish %#x gives %#x, whole gives %#x",
						goarch, info.SyscallNumbers[nr], args, l, f, got, w)
				}
				checked++
			}
		}
		// A process of another architecture (the arch check comes first) is refused by all.
		if w, l := run(t, whole, 0, 0, [6]uint64{}), run(t, launch, 0, 0, [6]uint64{}); w != l {
			t.Errorf("%s: foreign architecture: whole %#x, launch %#x", goarch, w, l)
		}
		t.Logf("%s: %d calls checked", goarch, checked)
	}
}

// TestLaunchAllowsSpawning: the calls the prestarted process and the enclave's runtime need
// between the two stages are allowed by Launch and refused once Finish is in.
func TestLaunchAllowsSpawning(t *testing.T) {
	for _, goarch := range Arches {
		info, _ := arch.GetInfo(goarch)
		launch, finish := newVM(t, goarch, Launch, 1), newVM(t, goarch, Finish, 1)
		for _, c := range []struct {
			name string
			args [6]uint64
		}{
			{"execve", [6]uint64{}},
			{"clone", [6]uint64{SpawnCloneFlags | SpawnNamespaceFlags}},
			{"prctl", [6]uint64{unix.PR_SET_PDEATHSIG, uint64(unix.SIGKILL)}},
			{"tgkill", [6]uint64{2, 3}},
			{"prctl", [6]uint64{unix.PR_SET_DUMPABLE, 0}},
			{"landlock_create_ruleset", [6]uint64{}},
			{"landlock_restrict_self", [6]uint64{}},
			{"seccomp", [6]uint64{unix.SECCOMP_SET_MODE_FILTER, 1}},
		} {
			nr, ok := info.SyscallNames[c.name]
			if !ok {
				t.Fatalf("%s: no %s", goarch, c.name)
			}
			if r := run(t, launch, uint32(info.ID), nr, c.args); r != 0x7fff0000 {
				t.Errorf("%s: launch answers %s(%#x) with %#x, want allow", goarch, c.name, c.args, r)
			}
			if r := run(t, finish, uint32(info.ID), nr, c.args); r != 0x00050000|1 {
				t.Errorf("%s: finish answers %s(%#x) with %#x, want EPERM", goarch, c.name, c.args, r)
			}
		}
	}
}

// TestLaunchCloneRule: besides new threads, Launch allows clone with exactly the spawner's
// flags: no fork of the spawner itself, no new user or network namespace, nothing outside
// CLONE_PARENT.
func TestLaunchCloneRule(t *testing.T) {
	spawn := SpawnCloneFlags | SpawnNamespaceFlags
	for _, goarch := range Arches {
		info, _ := arch.GetInfo(goarch)
		vm := newVM(t, goarch, Launch, 1)
		flags := []uint64{spawn, SpawnCloneFlags, spawn | unix.CLONE_NEWUSER, spawn | unix.CLONE_NEWNET,
			spawn &^ unix.CLONE_PARENT, spawn &^ unix.CLONE_NEWPID, spawn | unix.CLONE_FILES, 1<<32 | spawn,
			uint64(unix.SIGCHLD), unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD) | SpawnNamespaceFlags}
		for _, f := range flags {
			want := uint32(0x00050001)
			if f == spawn {
				want = 0x7fff0000
			}
			if got := run(t, vm, uint32(info.ID), info.SyscallNames["clone"], [6]uint64{f}); got != want {
				t.Errorf("%s: launch answers clone(%#x) with %#x, want %#x", goarch, f, got, want)
			}
		}
	}
}

// TestCloneRule: Whole allows clone exactly when it creates a thread in the same namespaces,
// whatever else the flags word holds (in particular when it equals another syscall's number,
// which go-seccomp-bpf v1.6.0 mistook for that syscall).
func TestCloneRule(t *testing.T) {
	for _, goarch := range Arches {
		info, _ := arch.GetInfo(goarch)
		vm := newVM(t, goarch, Whole, 1)
		var flags []uint64
		for v := range uint64(1024) {
			flags = append(flags, v, v|unix.CLONE_THREAD, v|unix.CLONE_THREAD|unix.CLONE_NEWNET)
		}
		for _, f := range flags {
			want := uint32(0x00050001)
			if f&unix.CLONE_THREAD != 0 && f&nsCloneFlags == 0 {
				want = 0x7fff0000
			}
			if got := run(t, vm, uint32(info.ID), info.SyscallNames["clone"], [6]uint64{f}); got != want {
				t.Fatalf("%s: clone(%#x) answered %#x, want %#x", goarch, f, got, want)
			}
		}
	}
}
