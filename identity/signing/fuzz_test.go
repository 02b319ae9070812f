package signing

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseManifest(f *testing.F) {
	for _, v := range vectors {
		good := readFile(f, v.sigFile)
		f.Add(good)
		f.Add(bytes.Join(bytes.Fields(good), nil))
	}
	f.Add([]byte(`{"format":"asylo-signature-manifest/v1"}`))
	f.Add([]byte(`{"debug":true,"debug":false}`))
	f.Add([]byte(`{"product_id":1e3}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	m := vectorMeasurement(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		mf, err := ParseManifest(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedManifest) || mf != nil {
				t.Fatalf("ParseManifest error %v does not wrap ErrMalformedManifest (manifest %v)", err, mf)
			}
			return
		}
		// Whatever parses re-encodes, and re-parses to the same manifest.
		out, err := mf.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed manifest: %v", err)
		}
		again, err := ParseManifest(out)
		if err != nil || !sameManifest(mf, again) {
			t.Fatalf("re-parse: %v", err)
		}
		// Verify never panics; success means the vector key signed it.
		id, err := mf.Verify(m)
		if err == nil && (!id.Signed || id.SignerID.String() != vectorSignerID) {
			t.Fatalf("Verify accepted a manifest not signed by the vector key: %+v", id)
		}
		if err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMeasurementMismatch) {
			t.Fatalf("Verify of a parsed manifest: unexpected error %v", err)
		}
	})
}

func FuzzParseSigningKeyPEM(f *testing.F) {
	f.Add([]byte(vectorPEM))
	files, _ := filepath.Glob("testdata/*.pem")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseSigningKeyPEM(data)
		if err != nil {
			if k != nil || !(errors.Is(err, ErrMalformedKey) || errors.Is(err, ErrUnsupportedKey)) {
				t.Fatalf("ParseSigningKeyPEM error %v wraps neither sentinel (key %v)", err, k)
			}
			return
		}
		// A parsed key is usable and survives a round trip.
		k2, err := ParseSigningKeyPEM(k.MarshalPEM())
		if err != nil || k2.SignerID() != k.SignerID() || k.SignerID().IsZero() {
			t.Fatalf("round trip: %v", err)
		}
		mf, err := Sign(k, vectorMeasurement(t), 1, 2, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mf.Verify(vectorMeasurement(t)); err != nil {
			t.Fatalf("Verify own signature: %v", err)
		}
	})
}
