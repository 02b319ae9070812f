package seal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"
)

var benchSizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}}

// benchGCM is the floor: standard-library AES-256-GCM with a reused key,
// nonce and buffers, so no key schedule, derivation or allocation per op.
func benchGCM(b *testing.B) cipher.AEAD {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return aead
}

// BenchmarkSeal measures SealToMeasurement against the AES-256-GCM floor in
// the same run: compare impl=floor with impl=SealToMeasurement per size.
func BenchmarkSeal(b *testing.B) {
	s := newTestSealer(b, vecSecret, vecID)
	aead := benchGCM(b)
	ad := []byte("additional data")
	for _, sz := range benchSizes {
		pt := make([]byte, sz.n)
		b.Run(fmt.Sprintf("size=%s/impl=floor", sz.name), func(b *testing.B) {
			dst := make([]byte, 0, sz.n+TagSize)
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				dst = aead.Seal(dst[:0], zeroNonce[:], pt, ad)
			}
		})
		b.Run(fmt.Sprintf("size=%s/impl=SealToMeasurement", sz.name), func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := s.SealToMeasurement(pt, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("size=%s/impl=AppendSealToMeasurement", sz.name), func(b *testing.B) {
			dst := make([]byte, 0, sz.n+Overhead)
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				var err error
				if dst, err = s.AppendSealToMeasurement(dst[:0], pt, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnseal measures Unseal against the AES-256-GCM Open floor.
func BenchmarkUnseal(b *testing.B) {
	ctx := context.Background()
	s := newTestSealer(b, vecSecret, vecID)
	aead := benchGCM(b)
	ad := []byte("additional data")
	for _, sz := range benchSizes {
		pt := make([]byte, sz.n)
		b.Run(fmt.Sprintf("size=%s/impl=floor", sz.name), func(b *testing.B) {
			ct := aead.Seal(nil, zeroNonce[:], pt, ad)
			dst := make([]byte, 0, sz.n)
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				var err error
				if dst, err = aead.Open(dst[:0], zeroNonce[:], ct, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("size=%s/impl=Unseal", sz.name), func(b *testing.B) {
			blob, err := s.SealToMeasurement(pt, ad)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := s.Unseal(ctx, blob, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("size=%s/impl=AppendUnseal", sz.name), func(b *testing.B) {
			blob, err := s.SealToMeasurement(pt, ad)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, 0, sz.n+TagSize)
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if dst, err = s.AppendUnseal(ctx, dst[:0], blob, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
