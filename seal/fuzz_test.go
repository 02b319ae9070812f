package seal

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	f.Add(mustHex(vecBlob1Header))
	f.Add(mustHex(vecBlob2Header + vecBlob2Body))
	f.Add([]byte("ASLD"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if h != nil || !(errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnsupportedVersion)) {
				t.Fatalf("ParseHeader: %v, %v", h, err)
			}
			return
		}
		// A parsed header re-encodes to the bytes it came from, and parses again.
		enc := h.appendTo(nil)
		if !bytes.Equal(enc, b[:HeaderSize]) {
			t.Fatalf("re-encoded header differs:\n%x\n%x", enc, b[:HeaderSize])
		}
		if _, err := ParseHeader(enc); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

func FuzzUnseal(f *testing.F) {
	s := newTestSealer(f, vecSecret, vecID)
	f.Add(mustHex(vecBlob1Header+vecBlob1Body), vecAD)
	f.Add(mustHex(vecBlob2Header+vecBlob2Body), vecAD)
	f.Add(mustHex(vecBlob2Header), []byte(nil))
	f.Fuzz(func(t *testing.T, blob, ad []byte) {
		pt, err := s.Unseal(context.Background(), blob, ad)
		if err != nil {
			if pt != nil || !isDocumented(err) {
				t.Fatalf("Unseal: %v, %v", pt, err)
			}
			return
		}
		// Only the two vector blobs (with their ad) can authenticate.
		if !bytes.Equal(pt, vecPlaintext) {
			t.Fatalf("Unseal authenticated an unexpected blob: %x", blob)
		}
	})
}
