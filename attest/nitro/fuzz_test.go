package nitro

import (
	"bytes"
	"testing"
)

// checkDocumentInvariants fails if a document returned by Parse or Verify
// breaks a rule of §3.2.2.
func checkDocumentInvariants(t *testing.T, d *Document) {
	t.Helper()
	if d.ModuleID == "" || d.Digest != digestSHA384 || d.Timestamp.IsZero() {
		t.Fatalf("bad header fields: %q %q %v", d.ModuleID, d.Digest, d.Timestamp)
	}
	if len(d.PCRs) < 1 || len(d.PCRs) > maxPCRCount {
		t.Fatalf("%d PCRs", len(d.PCRs))
	}
	for i, p := range d.PCRs {
		if i > maxPCRIndex || (len(p) != 32 && len(p) != 48 && len(p) != 64) {
			t.Fatalf("PCR %d of %d bytes", i, len(p))
		}
	}
	if d.Certificate == nil || len(d.CABundle) == 0 {
		t.Fatal("missing certificates")
	}
	if len(d.PublicKey) > maxPublicKeySize || (d.PublicKey != nil && len(d.PublicKey) == 0) ||
		len(d.UserData) > maxUserDataSize || len(d.Nonce) > maxUserDataSize {
		t.Fatal("optional field out of range")
	}
}

func FuzzParse(f *testing.F) {
	real := realDoc(f)
	f.Add(real)
	f.Add(append([]byte{0xd2}, real...))
	ca := newTestCA(f, nil, nil)
	f.Add(ca.doc(f, nil))
	f.Add(ca.doc(f, func(p map[string]any) { delete(p, fieldNonce); p[fieldPCRs] = map[uint64][]byte{31: make([]byte, 64)} }))
	f.Fuzz(func(t *testing.T, doc []byte) {
		d, err := Parse(doc)
		if err != nil {
			if d != nil {
				t.Fatal("document returned with an error")
			}
			checkOneSentinel(t, err)
			return
		}
		checkDocumentInvariants(t, d)
	})
}

// FuzzVerify checks that no input other than the real document (up to
// envelope bytes outside the signature, such as the optional tag) verifies
// against the embedded AWS root at the document's time.
func FuzzVerify(f *testing.F) {
	real := realDoc(f)
	want, err := Parse(real)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(append([]byte{0xd2}, real...))
	f.Add(real[:len(real)/2])
	mid := bytes.Clone(real)
	mid[len(mid)/2] ^= 0x01
	f.Add(mid)
	f.Fuzz(func(t *testing.T, doc []byte) {
		d, err := Verify(doc, Options{CurrentTime: realTime})
		if err != nil {
			checkOneSentinel(t, err)
			return
		}
		checkDocumentInvariants(t, d)
		if d.ModuleID != want.ModuleID || !d.Timestamp.Equal(want.Timestamp) || !bytes.Equal(d.Nonce, want.Nonce) ||
			!bytes.Equal(d.UserData, want.UserData) || !d.Certificate.Equal(want.Certificate) {
			t.Fatalf("a document other than the real one verified: %+v", d)
		}
	})
}
