package enclave

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/internal/wire"
)

type serverKey struct{}

func serverFrom(ctx context.Context) *server {
	s, _ := ctx.Value(serverKey{}).(*server)
	return s
}

// Logger returns a logger whose records go to the host's log/slog logger, tagged with the
// enclave's name, at the level the host configured. Log records leave the enclave in the clear:
// never log secrets. Outside an enclave context it returns slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	s := serverFrom(ctx)
	if s == nil {
		return slog.Default()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logger
}

// UntrustedTime asks the host for its wall-clock time. The host controls the answer: use it for
// display and logging, never for security decisions such as certificate validity.
func UntrustedTime(ctx context.Context) (time.Time, error) {
	s := serverFrom(ctx)
	if s == nil {
		return time.Time{}, fmt.Errorf("enclave: UntrustedTime called outside an enclave call")
	}
	b, err := s.hostCall(ctx, wire.OpUntrustedTime, nil)
	if err != nil {
		return time.Time{}, err
	}
	if len(b) != 8 {
		return time.Time{}, fmt.Errorf("enclave: %w: untrusted time reply of %d bytes, want 8", wire.ErrProtocol, len(b))
	}
	return time.Unix(0, int64(binary.LittleEndian.Uint64(b))), nil
}

// Self returns the identity the loader reported for this enclave (its measurement, signer, SVN
// and debug flag). It is what the host claims, for logging and display; remote parties must rely
// on attestation evidence instead.
func Self(ctx context.Context) (identity.Identity, bool) {
	s := serverFrom(ctx)
	if s == nil {
		return identity.Identity{}, false
	}
	return s.identity(), true
}

// Name returns the enclave's name as the host configured it.
func Name(ctx context.Context) string {
	s := serverFrom(ctx)
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.params.Name
}

// logHandler sends records to the host as LOG frames.
type logHandler struct {
	s      *server
	level  slog.Level
	attrs  []wire.Attr
	prefix string
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	rec := wire.LogRecord{Level: int32(r.Level), Message: r.Message, Attrs: slices.Clone(h.attrs)}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs = appendAttr(rec.Attrs, h.prefix, a)
		return true
	})
	return h.s.conn.WriteFrame(wire.KindLog, 0, wire.AppendLog(nil, rec))
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = slices.Clone(h.attrs)
	for _, a := range as {
		h2.attrs = appendAttr(h2.attrs, h.prefix, a)
	}
	return &h2
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

func appendAttr(dst []wire.Attr, prefix string, a slog.Attr) []wire.Attr {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return dst
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			dst = appendAttr(dst, p, g)
		}
		return dst
	}
	return append(dst, wire.Attr{Key: prefix + a.Key, Value: a.Value.String()})
}

// MaxUserData is the most user data Attest can bind.
const MaxUserData = 64

// maxEvidence bounds the evidence the host may return (attest.MaxEvidenceSize).
const maxEvidence = 256 << 10

// Attest returns attestation evidence for this enclave that binds userData (at most 64 bytes: a
// verifier's nonce, or the hash of a key this enclave holds). The evidence is produced by the
// platform (on sim, the software platform of docs/evidence-sim.md; on hardware, the CPU or the
// Nitro Secure Module) and is meant for a remote verifier; the enclave itself gains nothing by
// checking it, since the host delivers it. It returns an error wrapping ErrUnsupported on
// back-ends that cannot attest (inprocess).
func Attest(ctx context.Context, userData []byte) ([]byte, error) {
	if len(userData) > MaxUserData {
		return nil, fmt.Errorf("enclave: Attest: %d bytes of user data, at most %d", len(userData), MaxUserData)
	}
	s := serverFrom(ctx)
	if s == nil {
		return nil, fmt.Errorf("enclave: Attest called outside an enclave call")
	}
	ev, err := s.hostCall(ctx, wire.OpAttest, userData)
	if err != nil {
		return nil, err
	}
	if len(ev) == 0 || len(ev) > maxEvidence {
		return nil, fmt.Errorf("enclave: %w: evidence of %d bytes", wire.ErrProtocol, len(ev))
	}
	return ev, nil
}
