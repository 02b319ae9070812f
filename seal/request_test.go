package seal

import (
	"bytes"
	"errors"
	"testing"

	"github.com/asylo-go/asylo/identity"
)

func TestKeyRequestBinary(t *testing.T) {
	for _, r := range []KeyRequest{
		{Policy: PolicyMeasurement, Debug: true, Measurement: identity.Measurement{1, 2}, KeyID: KeyID{9}},
		{Policy: PolicySigner, SignerID: identity.SignerID{3}, ProductID: 7, SVN: 5, KeyID: KeyID{8}},
	} {
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var q KeyRequest
		if err := q.UnmarshalBinary(b); err != nil || q != r {
			t.Errorf("round trip %+v -> %+v (%v)", r, q, err)
		}
	}
	good, _ := KeyRequest{Policy: PolicySigner, KeyID: KeyID{1}}.MarshalBinary()
	for name, b := range map[string][]byte{
		"short":           good[:49],
		"long":            append(bytes.Clone(good), 0),
		"policy 0":        append([]byte{0}, good[1:]...),
		"unknown flag":    append([]byte{good[0], 2}, good[2:]...),
		"measurement+svn": func() []byte { m, _ := KeyRequest{Policy: PolicyMeasurement}.MarshalBinary(); m[41] = 1; return m }(),
	} {
		var q KeyRequest
		if err := q.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := (KeyRequest{}).MarshalBinary(); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero request marshalled: %v", err)
	}
}

func FuzzKeyRequest(f *testing.F) {
	b, _ := KeyRequest{Policy: PolicySigner, SVN: 3}.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var q KeyRequest
		if q.UnmarshalBinary(b) != nil {
			return
		}
		c, err := q.MarshalBinary()
		if err != nil || !bytes.Equal(b, c) {
			t.Fatalf("accepted request does not re-encode to itself: %x vs %x (%v)", b, c, err)
		}
	})
}
