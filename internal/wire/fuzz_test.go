package wire

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"
	"time"
)

func heapInUse() int {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapInuse)
}

// FuzzReadFrame feeds arbitrary streams to the frame reader and every body decoder: they must
// return frames or errors, never panic, and never accept a body over the limit.
func FuzzReadFrame(f *testing.F) {
	f.Add(frameBytes(KindHello, 0, AppendHello(nil, Hello{Version: 1, MaxBody: 1 << 20})))
	f.Add(frameBytes(KindInit, 1, AppendInit(nil, InitParams{Name: "x", Config: []byte("c")})))
	f.Add(frameBytes(KindCall, 2, append(AppendRequestHeader(nil, KindCall, time.Second, "m"), 1, 2)))
	f.Add(frameBytes(KindResult, 2, AppendStatus(nil, StatusOK)))
	f.Add(frameBytes(KindHostCall, 3, AppendHostCallHeader(nil, OpUntrustedTime)))
	f.Add(frameBytes(KindLog, 0, AppendLog(nil, LogRecord{Message: "m", Attrs: []Attr{{"k", "v"}}})))
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := NewConn(rwc{Reader: bytes.NewReader(stream), Writer: io.Discard}, 1<<16)
		for {
			fr, err := c.ReadFrame()
			if err != nil {
				return
			}
			if len(fr.Body) > 1<<16 {
				t.Fatalf("accepted a %d-byte body over the limit", len(fr.Body))
			}
			switch fr.Kind {
			case KindHello:
				ParseHello(fr.Body)
			case KindInit:
				if p, err := ParseInit(fr.Body); err == nil {
					if len(p.Name) > MaxEnclaveName || len(p.Identity.Backend) > MaxBackendName {
						t.Fatalf("accepted oversized names %+v", p)
					}
					// A decoded INIT re-encodes to something that decodes the same.
					q, err := ParseInit(AppendInit(nil, p))
					if err != nil || q.Name != p.Name || q.Identity != p.Identity || !bytes.Equal(q.Config, p.Config) || q.Timeout != p.Timeout {
						t.Fatalf("INIT does not round-trip: %+v vs %+v (%v)", p, q, err)
					}
				}
			case KindRun, KindCall, KindFinalize:
				if r, err := ParseRequest(fr.Kind, fr.Body); err == nil && fr.Kind == KindCall && !ValidMethodName(string(r.Method)) {
					t.Fatalf("accepted method %q", r.Method)
				}
			case KindResult, KindHostResult:
				ParseResult(fr.Kind, fr.Body)
			case KindHostCall:
				ParseHostCall(fr.Body)
			case KindLog:
				ParseLog(fr.Body)
			}
		}
	})
}

// FuzzBodies runs each body decoder on arbitrary bytes.
func FuzzBodies(f *testing.F) {
	f.Add(uint8(KindInit), AppendInit(nil, InitParams{Name: "n", Identity: identityFixture}))
	f.Add(uint8(KindLog), AppendLog(nil, LogRecord{Message: "x"}))
	f.Add(uint8(KindCall), AppendRequestHeader(nil, KindCall, 0, "a.b"))
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		k := Kind(kind%10 + 1)
		ParseHello(body)
		ParseInit(body)
		ParseRequest(k, body)
		ParseResult(k, body)
		ParseHostCall(body)
		ParseLog(body)
	})
}

// FuzzFSRequest: storage host-call requests from an enclave are parsed strictly.
func FuzzFSRequest(f *testing.F) {
	f.Add(uint8(OpFSOpen), AppendFSRequest(nil, OpFSOpen, FSRequest{Name: "data", Create: true}))
	f.Add(uint8(OpFSWrite), AppendFSRequest(nil, OpFSWrite, FSRequest{Handle: 1, Offset: 4096, Data: []byte("x")}))
	f.Add(uint8(OpFSRename), AppendFSRequest(nil, OpFSRename, FSRequest{Name: "a", NewName: "b"}))
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		r, err := ParseFSRequest(Op(op), body)
		if err != nil {
			return
		}
		if len(r.Name) > MaxFileName || len(r.NewName) > MaxFileName || len(r.Data) > MaxFileIO || r.Length > MaxFileIO {
			t.Fatalf("accepted out-of-bounds request %+v", r)
		}
		// An accepted request re-encodes to the same bytes.
		if got := AppendFSRequest(nil, Op(op), r); !bytes.Equal(got, body) {
			t.Fatalf("op %d: %x re-encodes to %x", op, body, got)
		}
	})
}

// FuzzNetAddr: LISTEN and DIAL requests from an enclave.
func FuzzNetAddr(f *testing.F) {
	f.Add(AppendNetAddr(nil, "tcp", "127.0.0.1:0"))
	f.Add([]byte{200, 't'})
	f.Fuzz(func(t *testing.T, body []byte) {
		n, a, err := ParseNetAddr(body)
		if err != nil {
			return
		}
		if len(a) == 0 || len(a) > MaxAddress || !bytes.Equal(AppendNetAddr(nil, n, a), body) {
			t.Fatalf("accepted %q %q from %x", n, a, body)
		}
	})
}

// FuzzReadFrameInto: reading into a caller's reused buffer accepts exactly the frames ReadFrame
// accepts, with the same bodies, and never writes past the body it announced.
func FuzzReadFrameInto(f *testing.F) {
	f.Add(frameBytes(KindCall, 2, append(AppendRequestHeader(nil, KindCall, time.Second, "m"), 1, 2)), uint16(8))
	f.Add(frameBytes(KindResult, 2, AppendStatus(nil, StatusOK)), uint16(0))
	f.Fuzz(func(t *testing.T, stream []byte, capacity uint16) {
		plain := NewConn(rwc{Reader: bytes.NewReader(stream), Writer: io.Discard}, 1<<16)
		into := NewConn(rwc{Reader: bytes.NewReader(stream), Writer: io.Discard}, 1<<16)
		reused := make([]byte, 0, int(capacity)+8)
		for {
			want, werr := plain.ReadFrame()
			sentinel := reused[:cap(reused)]
			for i := range sentinel {
				sentinel[i] = 0xA5
			}
			got, gerr := into.ReadFrameInto(func(f Frame, n int) []byte { return reused[:0:int(capacity)] })
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("ReadFrame: %v, ReadFrameInto: %v", werr, gerr)
			}
			if werr != nil {
				return
			}
			if got.Kind != want.Kind || got.ID != want.ID || !bytes.Equal(got.Body, want.Body) {
				t.Fatalf("frames differ: %v %d %x vs %v %d %x", got.Kind, got.ID, got.Body, want.Kind, want.ID, want.Body)
			}
			for i := int(capacity); i < cap(reused); i++ {
				if sentinel[i] != 0xA5 {
					t.Fatalf("wrote past the capacity it was given, at %d", i)
				}
			}
		}
	})
}

// stutterReader returns at most a few bytes per Read and, as the pattern says, fails some
// Reads with a deadline error before reading anything: a reader that is interrupted anywhere.
type stutterReader struct {
	r       io.Reader
	pattern []byte
	i       int
	cut     bool // the last Read was interrupted: the next one is not
}

func (s *stutterReader) Read(p []byte) (int, error) {
	b := byte(0x35)
	if len(s.pattern) > 0 {
		b = s.pattern[s.i%len(s.pattern)]
	}
	s.i++
	if b&1 == 1 && !s.cut {
		s.cut = true
		return 0, os.ErrDeadlineExceeded
	}
	s.cut = false
	n := min(len(p), int(b>>1)+1)
	if b&0x80 != 0 {
		n = len(p) // sometimes whole buffers
	}
	return s.r.Read(p[:n])
}

// FuzzReadFrameInterrupted: a frame reader interrupted anywhere (a read deadline) and called
// again yields exactly the frames and errors of one that never was, into reused buffers or not.
func FuzzReadFrameInterrupted(f *testing.F) {
	f.Add(frameBytes(KindCall, 2, append(AppendRequestHeader(nil, KindCall, time.Second, "m"), 1, 2)), []byte{1, 4, 3, 8}, uint16(8))
	f.Add(append(frameBytes(KindResult, 2, bytes.Repeat([]byte{7}, 300)), frameBytes(KindLog, 0, AppendLog(nil, LogRecord{Message: "m"}))...), []byte{0x81, 3, 2}, uint16(400))
	f.Fuzz(func(t *testing.T, stream, pattern []byte, capacity uint16) {
		plain := NewConn(rwc{Reader: bytes.NewReader(stream), Writer: io.Discard}, 1<<16)
		cut := NewConn(rwc{Reader: &stutterReader{r: bytes.NewReader(stream), pattern: pattern}, Writer: io.Discard}, 1<<16)
		reused := make([]byte, 0, int(capacity))
		hook := func(f Frame, n int) []byte { return reused[:0] }
		if capacity%2 == 1 {
			hook = nil
		}
		for {
			want, werr := plain.ReadFrame()
			var got Frame
			var gerr error
			for tries := 0; ; tries++ {
				got, gerr = cut.ReadFrameInto(hook)
				if !errors.Is(gerr, os.ErrDeadlineExceeded) {
					break
				}
				if tries > 4*len(stream)+64 {
					t.Fatal("no progress across interrupted reads")
				}
			}
			if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
				t.Fatalf("uninterrupted: %v, interrupted: %v", werr, gerr)
			}
			if werr != nil {
				return
			}
			if got.Kind != want.Kind || got.ID != want.ID || !bytes.Equal(got.Body, want.Body) {
				t.Fatalf("frames differ: %v %d %x vs %v %d %x", got.Kind, got.ID, got.Body, want.Kind, want.ID, want.Body)
			}
		}
	})
}
