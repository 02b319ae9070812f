package enclave_test

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/asylo-go/asylo/enclave"
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
	answer := func(st wire.Status, body []byte) []byte {
		return append(binary.LittleEndian.AppendUint16([]byte{byte(st)}, uint16(len(body))), body...)
	}
	f.Add(uint8(0), answer(wire.StatusOK, binary.LittleEndian.AppendUint64(nil, 1e18)))
	f.Add(uint8(0), answer(wire.StatusOK, []byte{1, 2, 3}))
	f.Add(uint8(1), append(answer(wire.StatusOK, []byte{7, 0, 0, 0}), answer(wire.StatusOK, make([]byte, 40))...))
	f.Add(uint8(2), answer(wire.StatusOK, []byte{1, 0, 0, 0, 0, 0, 0, 0x80}))
	f.Add(uint8(3), answer(wire.StatusOK, make([]byte, 32)))
	f.Add(uint8(4), answer(wire.StatusApplication, []byte("no platform")))
	f.Fuzz(func(t *testing.T, which uint8, answers []byte) {
		h := startServe(t, hostCallerOptions()...)
		h.send(wire.KindInit, 1, wire.AppendInit(nil, wire.InitParams{Name: "fuzz"}))
		if st, _ := h.result(1); st != wire.StatusOK {
			t.Fatalf("INIT: %v", st)
		}
		method := hostCallers[int(which)%len(hostCallers)]
		h.send(wire.KindCall, 2, append(wire.AppendRequestHeader(nil, wire.KindCall, 0, method), "in"...))
		h.raw.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			fr, err := h.c.ReadFrame()
			if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				t.Fatalf("%s: no RESULT and no end within 20 s", method)
			}
			if err != nil {
				return // the runtime ended the connection
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
				if err := h.c.WriteResult(wire.KindHostResult, fr.ID, st, body); err != nil {
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
