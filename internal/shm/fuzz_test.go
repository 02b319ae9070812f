//go:build linux

package shm

import (
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"unsafe"
)

// fuzzRegion returns a zeroed 8-byte-aligned heap buffer standing in for the
// shared mapping, with a valid header for ring size MinSize.
func fuzzRegion() []byte {
	const n = headerSize + 2*MinSize
	words := make([]uint64, n/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
	binary.LittleEndian.PutUint64(mem[offMagic:], magic)
	binary.LittleEndian.PutUint32(mem[offVersion:], version)
	binary.LittleEndian.PutUint32(mem[offHdrSize:], headerSize)
	binary.LittleEndian.PutUint64(mem[offRingSize:], MinSize)
	return mem
}

// FuzzPeerState feeds arbitrary bytes as the shared state the peer controls:
// either a raw header (mode byte even) or a sequence of writes to the
// control words interleaved with non-blocking read and write steps.
func FuzzPeerState(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{1, 0, 16, 0, 0, 0, 0, 0, 0, 0, 2})
	f.Add([]byte{1, 0, 0, 16, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 3})
	f.Add([]byte{1, 10, 1, 0, 0, 0, 0, 0, 0, 0, 2})
	f.Add([]byte{3, 1, 255, 255, 255, 255, 255, 255, 255, 255, 2, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		mem := fuzzRegion()
		mode, data := data[0], data[1:]
		if mode&1 == 0 {
			copy(mem[:headerSize], data) // arbitrary header
		}
		c, err := newConn(mem, mode&2 == 0, Options{Spin: -1})
		if err != nil {
			if mode&1 != 0 || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("newConn: %v", err)
			}
			return
		}
		// Addresses of every peer-controlled control word.
		words := []unsafe.Pointer{
			unsafe.Pointer(c.in.tail), unsafe.Pointer(c.in.head), unsafe.Pointer(c.in.rwait), unsafe.Pointer(c.in.wwait),
			unsafe.Pointer(c.out.tail), unsafe.Pointer(c.out.head), unsafe.Pointer(c.out.rwait), unsafe.Pointer(c.out.wwait),
		}
		words32 := []*uint32{c.in.dataSeq, c.in.spaceSeq, c.out.dataSeq, c.out.spaceSeq, c.peerClosed, c.myClosed}
		buf := make([]byte, 3*MinSize)
		wasCorrupt := false
		var readTotal, wroteTotal uint64
		for len(data) > 0 {
			op := data[0]
			data = data[1:]
			var v uint64
			if len(data) >= 8 {
				v = binary.LittleEndian.Uint64(data)
			}
			switch op % 4 {
			case 0: // store a 64-bit control word
				atomic.StoreUint64((*uint64)(words[int(op/4)%len(words)]), v)
				data = data[min(8, len(data)):]
			case 1: // store a 32-bit word
				atomic.StoreUint32(words32[int(op/4)%len(words32)], uint32(v))
				data = data[min(4, len(data)):]
			case 2: // read step
				p := buf[:1+int(op/4)*64%len(buf)]
				n, err := c.tryRead(p)
				if n < 0 || n > len(p) {
					t.Fatalf("tryRead returned %d for len %d", n, len(p))
				}
				readTotal += uint64(n)
				if c.rhead != readTotal {
					t.Fatalf("rhead %d != consumed %d", c.rhead, readTotal)
				}
				checkErr(t, err, &wasCorrupt)
			case 3: // write step
				p := buf[:1+int(op/4)*64%len(buf)]
				n, err := c.tryWrite(p)
				if n < 0 || n > len(p) {
					t.Fatalf("tryWrite returned %d for len %d", n, len(p))
				}
				wroteTotal += uint64(n)
				if c.wtail != wroteTotal || c.wtail-c.whead > c.size {
					t.Fatalf("wtail %d whead %d wrote %d", c.wtail, c.whead, wroteTotal)
				}
				checkErr(t, err, &wasCorrupt)
			}
		}
	})
}

func checkErr(t *testing.T, err error, wasCorrupt *bool) {
	t.Helper()
	switch {
	case err == nil, err == errWouldBlock, err == io.EOF, errors.Is(err, io.ErrClosedPipe):
		if *wasCorrupt && err != nil || *wasCorrupt && err == nil {
			t.Fatalf("after ErrCorrupt got %v", err)
		}
	case errors.Is(err, ErrCorrupt):
		*wasCorrupt = true
	default:
		t.Fatalf("unexpected error %v", err)
	}
}
