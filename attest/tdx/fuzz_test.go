package tdx

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
)

func FuzzParse(f *testing.F) {
	real := realQuote(f)
	f.Add(real)
	f.Add(libraryQuote(f))
	f.Add(real[:len(real)/2])
	short := bytes.Clone(real)
	binary.LittleEndian.PutUint32(short[0x278:], 0x81)
	f.Add(short)
	f.Add(newFakeIntel(f).quote(f, nil))
	f.Fuzz(func(t *testing.T, quote []byte) {
		q, err := Parse(quote)
		if err != nil {
			if q != nil {
				t.Fatal("quote returned with an error")
			}
			checkOneSentinel(t, err)
			return
		}
		if !bytes.Equal(q.Raw, quote) || q.Version != 4 || q.AttestationKeyType != 2 || q.TEEType != 0x81 || q.PCK == nil || q.Claims() != nil {
			t.Fatalf("accepted quote breaks an invariant: %d %d %#x", q.Version, q.AttestationKeyType, q.TEEType)
		}
	})
}

// FuzzVerify checks that no quote other than the real one verifies against
// the embedded Intel root at realTime, up to the PEM encoding of the
// (unsigned) certificate chain, and that no input panics.
func FuzzVerify(f *testing.F) {
	real := realQuote(f)
	want, err := Parse(real)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	mid := bytes.Clone(real)
	mid[0x200] ^= 1
	f.Add(mid)
	f.Add(real[:len(real)-100])
	f.Fuzz(func(t *testing.T, quote []byte) {
		q, err := Verify(context.Background(), quote, Options{CurrentTime: realTime, AllowDebug: true})
		if err != nil {
			checkOneSentinel(t, err)
			return
		}
		// Header, body, signature, attestation key, QE report and its
		// signature: every signed byte is the real quote's.
		if !bytes.Equal(quote[:0x27c+0x80+6+0x1c0], real[:0x27c+0x80+6+0x1c0]) || !q.PCK.Equal(want.PCK) ||
			!q.PCKIntermediate.Equal(want.PCKIntermediate) || !q.PCKRoot.Equal(want.PCKRoot) || q.Claims() == nil {
			t.Fatalf("a quote other than the real one verified")
		}
	})
}
