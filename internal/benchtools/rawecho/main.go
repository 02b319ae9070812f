// Command rawecho is the raw floor for the sim back-end's benchmarks (backend/sim/bench_test.go):
// a static Go child, built like an enclave, that answers 16-byte-header messages over the same
// mechanisms the protocol uses, with none of the protocol's logic.
//
// Transport (RAWECHO_MODE): "sock" (default) uses fd 3, a SOCK_STREAM socket, through
// net.FileConn (Go's network poller); "sockblock" uses the same socket with blocking read and
// write system calls, as the enclave runtime does (internal/blocksock); "shm" opens fd 3 as an
// internal/shm region (default options, as the enclave runtime does). With RAWECHO_SANDBOX=1 it
// first applies the sim sandbox (seccomp, landlock) like an enclave, so the cost of the sandbox
// can be told apart.
//
// Messages: a 16-byte header (u32 little-endian body length at offset 0, op at offset 4,
// u64 argument at offset 8), then the body. Ops:
//
//	1 echo:   the header and the body are sent back unchanged (one write)
//	2 sink:   the body is read and dropped; the header comes back with length 0
//	3 source: the header comes back with length = argument, followed by that many zero bytes
//
// Bodies larger than 64 MiB end the program. It exits 0 at end of input.
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/asylo-go/asylo/internal/blocksock"
	"github.com/asylo-go/asylo/internal/sandbox"
	"github.com/asylo-go/asylo/internal/shm"
)

const maxBody = 64 << 20

func main() {
	if os.Getenv("RAWECHO_SANDBOX") == "1" {
		if _, err := sandbox.Restrict(sandbox.Options{}); err != nil {
			fail("sandbox: %v", err)
		}
	}
	mode := os.Getenv("RAWECHO_MODE")
	var rw io.ReadWriter
	switch mode {
	case "", "sock":
		f := os.NewFile(3, "rawecho")
		c, err := net.FileConn(f)
		if err != nil {
			fail("FileConn: %v", err)
		}
		f.Close()
		rw = c
	case "sockblock":
		c, err := blocksock.New(3)
		if err != nil {
			fail("blocksock: %v", err)
		}
		rw = c
	case "shm":
		f := os.NewFile(3, "rawecho")
		c, err := shm.Open(f, shm.Options{})
		if err != nil {
			fail("shm.Open: %v", err)
		}
		f.Close()
		rw = c
	default:
		fail("bad RAWECHO_MODE")
	}

	// On a socket, reads go through a buffer as the enclave runtime's do (internal/wire): a
	// message that has arrived whole is then one read(2), not one for the header and one for
	// the body. A ring read is no system call; it is read directly.
	var r io.Reader = rw
	if mode != "shm" {
		r = bufio.NewReaderSize(rw, 64<<10)
	}
	buf := make([]byte, 16+64)
	for {
		if _, err := io.ReadFull(r, buf[:16]); err != nil {
			if err == io.EOF {
				os.Exit(0)
			}
			fail("read header: %v", err)
		}
		n := int(binary.LittleEndian.Uint32(buf[0:4]))
		op := buf[4]
		arg := binary.LittleEndian.Uint64(buf[8:16])
		if n > maxBody || arg > maxBody {
			fail("message too large")
		}
		if 16+n > cap(buf) {
			nb := make([]byte, 16+n)
			copy(nb, buf[:16])
			buf = nb
		}
		buf = buf[:cap(buf)]
		if _, err := io.ReadFull(r, buf[16:16+n]); err != nil {
			fail("read body: %v", err)
		}
		var out []byte
		switch op {
		case 1:
			out = buf[:16+n]
		case 2:
			binary.LittleEndian.PutUint32(buf[0:4], 0)
			out = buf[:16]
		case 3:
			m := int(arg)
			if 16+m > cap(buf) {
				nb := make([]byte, 16+m)
				copy(nb, buf[:16])
				buf = nb
			}
			clear(buf[16 : 16+m])
			binary.LittleEndian.PutUint32(buf[0:4], uint32(m))
			out = buf[:16+m]
		default:
			fail("bad op %d", op)
		}
		if _, err := rw.Write(out); err != nil {
			fail("write: %v", err)
		}
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "rawecho: "+format+"\n", args...)
	os.Exit(2)
}
