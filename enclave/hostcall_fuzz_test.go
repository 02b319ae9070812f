package enclave_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/asylo-go/asylo/enclave"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/wire"
)

// hostCallers are handlers that decode what the host answers to their host calls: the untrusted
// time, storage (file handles, reads, sizes, counters, and the storage key's sealing), sealing
// (the key id and derived keys) and attestation.
var hostCallers = []string{"time", "file", "counter", "seal", "attest"}

func hostCallerOptions() []enclave.Option {
	return []enclave.Option{
		enclave.Handle("time", func(ctx context.Context, _ []byte) ([]byte, error) {
			t, err := enclave.UntrustedTime(ctx)
			return []byte(t.String()), err
		}),
		enclave.Handle("file", func(ctx context.Context, _ []byte) ([]byte, error) {
			f, err := enclave.OpenFile(ctx, "f", true)
			if err != nil {
				return nil, err
			}
			defer f.Close(ctx)
			if _, err := f.WriteAt(ctx, []byte("data"), 0); err != nil {
				return nil, err
			}
			b := make([]byte, 16)
			n, err := f.ReadAt(ctx, b, 0)
			return b[:n], err
		}),
		enclave.Handle("counter", func(ctx context.Context, _ []byte) ([]byte, error) {
			_, c, err := enclave.Storage(ctx)
			if err != nil {
				return nil, err
			}
			v, err := c.Increment(ctx, "c")
			return binary.LittleEndian.AppendUint64(nil, v), err
		}),
		enclave.Handle("seal", func(ctx context.Context, in []byte) ([]byte, error) {
			return enclave.SealToMeasurement(ctx, in, nil)
		}),
		enclave.Handle("attest", enclave.Attest),
	}
}

// FuzzHostCallAnswers plays a host that answers every host call of one enclave call with the
// next answer from the input (a status byte, a length and that many bytes; once the input runs
// out, an error). Whatever the answers, the call must end with a RESULT or the runtime must end
// the connection for a protocol error: no panic, no hang.
func FuzzHostCallAnswers(f *testing.F) {
	seq := func(as ...[]byte) []byte { return bytes.Join(as, nil) }
	answer := func(st wire.Status, body []byte) []byte {
		return append(binary.LittleEndian.AppendUint16([]byte{byte(st)}, uint16(len(body))), body...)
	}
	ok := func(body []byte) []byte { return answer(wire.StatusOK, body) }
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	keyID, key := ok(make([]byte, 8)), ok(bytes.Repeat([]byte{7}, 32))
	sealer := seq(keyID, key) // the sealing root's key id, and the key seal.New derives
	notFound := answer(wire.StatusNotFound, []byte("no such file"))
	f.Add(uint8(0), ok(u64(1e18)))
	f.Add(uint8(0), ok([]byte{1, 2, 3}))
	// file: a storage key file that exists (open, size, read; its blob then fails to unseal)...
	f.Add(uint8(1), seq(sealer, ok(u32(7)), ok(u64(16)), ok(make([]byte, 16)), ok(nil)))
	// ... one that does not (the key is made, sealed, written and renamed into place; then the
	// file itself is created), and one whose write answer lies...
	f.Add(uint8(1), seq(sealer, notFound, ok(u32(8)), ok(nil), ok(u32(136)) /* the sealed key */, ok(nil), ok(nil), ok(nil), notFound, ok(u32(9))))
	f.Add(uint8(1), seq(sealer, notFound, ok(u32(8)), ok(nil), ok(u32(3))))
	// ... and answers that lie (a handle of 3 bytes, a size past the limit).
	f.Add(uint8(1), seq(sealer, ok([]byte{1, 2, 3})))
	f.Add(uint8(1), seq(sealer, ok(u32(7)), ok(u64(1<<63))))
	f.Add(uint8(2), ok([]byte{1, 0, 0, 0, 0, 0, 0, 0x80}))
	f.Add(uint8(2), ok(u64(5)))
	f.Add(uint8(3), seq(sealer, key))
	f.Add(uint8(3), seq(ok(make([]byte, 32)), key))
	f.Add(uint8(3), seq(sealer, ok(make([]byte, 31))))
	f.Add(uint8(4), answer(wire.StatusApplication, []byte("no platform")))
	f.Add(uint8(4), ok([]byte("not evidence")))
	f.Fuzz(func(t *testing.T, which uint8, answers []byte) {
		h := startServe(t, hostCallerOptions()...)
		// A measured identity, as sealing needs one.
		id := identity.Identity{Backend: "sim", Measurement: identity.Measurement{1}, Debug: true}
		h.send(wire.KindInit, 1, wire.AppendInit(nil, wire.InitParams{Name: "fuzz", Identity: id}))
		if st, _ := h.result(1); st != wire.StatusOK {
			t.Fatalf("INIT: %v", st)
		}
		method := hostCallers[int(which)%len(hostCallers)]
		h.send(wire.KindCall, 2, append(wire.AppendRequestHeader(nil, wire.KindCall, 0, method), "in"...))
		limit := time.Now().Add(20 * time.Second)
		h.raw.SetDeadline(limit)
		for {
			fr, err := h.c.ReadFrame()
			if isTimeout(err) {
				t.Fatalf("%s: no RESULT and no end within 20 s", method)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
				return // the runtime ended the connection
			}
			if err != nil {
				t.Fatalf("%s: the runtime sent a malformed frame: %v", method, err)
			}
			switch fr.Kind {
			case wire.KindResult:
				if fr.ID != 2 {
					t.Fatalf("RESULT for call %d", fr.ID)
				}
				if _, _, err := wire.ParseResult(fr.Kind, fr.Body); err != nil {
					t.Fatalf("the runtime sent a malformed RESULT: %v", err)
				}
				return
			case wire.KindHostCall:
				st, body := wire.StatusApplication, []byte("no more answers")
				if len(answers) >= 3 {
					n := int(binary.LittleEndian.Uint16(answers[1:3]))
					st, body = wire.Status(answers[0]), answers[3:min(len(answers), 3+n)]
					answers = answers[min(len(answers), 3+n):]
				}
				if err := h.c.WriteResult(wire.KindHostResult, fr.ID, st, body); isTimeout(err) {
					t.Fatalf("%s: the runtime stopped reading", method)
				} else if err != nil {
					return // the runtime ended the connection meanwhile
				}
			}
		}
	})
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
