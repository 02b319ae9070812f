// Package sandbox confines the "sim" back-end's enclave child process so that
// it can do no more than an enclave on the strictest hardware back-end: it can
// compute, use memory, and talk to the host only over the file descriptors the
// host handed it. It cannot open files, create sockets, start processes,
// signal or trace other processes, or change its own privileges.
//
// Two halves:
//
//   - [ProcAttr] is used by the HOST to start the child in fresh user, pid,
//     mount, network, IPC, UTS (and cgroup) namespaces, as uid/gid 65534 with
//     no capabilities and Pdeathsig SIGKILL.
//   - [Restrict] is called by the enclave runtime INSIDE the child, as early
//     as possible, and applies no_new_privs, non-dumpable, RLIMIT_CORE=0,
//     Landlock (no filesystem, no TCP, scoped abstract UNIX sockets and
//     signals) and a seccomp-BPF syscall allowlist synchronised to all threads.
//
// [Probe] reports what the machine supports (for `asylo doctor`).
//
// See docs/sandbox.md for the full threat model and the syscall allowlist.
package sandbox
