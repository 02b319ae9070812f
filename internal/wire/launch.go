package wire

// The launch contract between a process-based back-end (sim) and the enclave runtime: which file
// descriptors the child inherits and which environment variables describe them. The values are
// set by the host, which is untrusted, so the runtime only uses them to find its own channel.
const (
	// EnvChannel marks a process started by a back-end; its value is the fd of the socket that
	// carries the protocol ("3").
	EnvChannel = "ASYLO_CHANNEL_FD"
	// EnvSharedMemory, when set, is the fd of a shared-memory region (internal/shm) that carries
	// the protocol instead of the socket (switchless mode).
	EnvSharedMemory = "ASYLO_SHM_FD"
	// EnvConnPass is the fd of a SOCK_SEQPACKET socket over which the host passes accepted
	// connections (SCM_RIGHTS), each message an 8-byte token matching an ACCEPT answer.
	EnvConnPass = "ASYLO_CONNPASS_FD"
	// EnvAttention is the fd of a SOCK_SEQPACKET socket on which the host notifies the runtime,
	// after it sends a frame while other calls are in flight, of how many frames it has sent: a
	// runtime whose reading goroutine is busy running a call then hands reading off
	// (docs/wire.md, "Attention").
	EnvAttention = "ASYLO_ATTENTION_FD"
	// EnvImage is the fd of the sealed memfd the enclave was executed from; the runtime closes it.
	EnvImage = "ASYLO_IMAGE_FD"
	// EnvSandbox asks the runtime to sandbox the process before any application code runs:
	// SandboxWhole, or SandboxLaunched for a process started by a prestarted one, which applied
	// part of the sandbox before it knew the enclave (internal/sandbox.PrepareLaunch).
	EnvSandbox = "ASYLO_SANDBOX"

	SandboxWhole    = "1"
	SandboxLaunched = "launched"
)
