package instant

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/asylo-go/asylo/internal/wire"
)

func TestPipe(t *testing.T) {
	var got [][]byte
	p := New(func(f []byte) [][]byte {
		got = append(got, bytes.Clone(f))
		return [][]byte{Frame(wire.KindResult, 9, []byte{0, 0}, []byte("ok"))}
	}, Frame(wire.KindHello, 0, []byte("hi")))

	// The initial frame is there to read at once.
	h := make([]byte, wire.HeaderSize+2)
	if _, err := io.ReadFull(p, h); err != nil || !bytes.Equal(h, Frame(wire.KindHello, 0, []byte("hi"))) {
		t.Fatalf("initial frame %x, %v", h, err)
	}
	// A frame written in two pieces reaches the peer once, whole; its answer is queued.
	call := Frame(wire.KindCall, 9, []byte("request"))
	p.Write(call[:5])
	if len(got) != 0 {
		t.Fatal("peer saw a partial frame")
	}
	p.Write(call[5:])
	if len(got) != 1 || !bytes.Equal(got[0], call) {
		t.Fatalf("peer got %x", got)
	}
	want := Frame(wire.KindResult, 9, []byte{0, 0}, []byte("ok"))
	r := make([]byte, len(want))
	if _, err := io.ReadFull(p, r); err != nil || !bytes.Equal(r, want) {
		t.Fatalf("answer %x, %v", r, err)
	}
	// Nothing queued: a deadline ends the wait; Close ends reading.
	p.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := p.Read(r); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	p.SetReadDeadline(time.Time{})
	go p.Close()
	if _, err := p.Read(r); err != io.EOF {
		t.Fatalf("read after Close: %v", err)
	}
	if _, err := p.Write(call); err == nil {
		t.Fatal("write after Close succeeded")
	}
}
