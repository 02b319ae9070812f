package identity

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMeasure(t *testing.T) {
	image := []byte("enclave image bytes\n")
	m, n, err := Measure(strings.NewReader(string(image)))
	if err != nil || n != int64(len(image)) || m != Measurement(sha256.Sum256(image)) {
		t.Fatalf("Measure = %s, %d, %v", m, n, err)
	}
	path := filepath.Join(t.TempDir(), "enclave")
	os.WriteFile(path, image, 0o755)
	if fm, err := MeasureFile(path); err != nil || fm != m {
		t.Fatalf("MeasureFile = %s, %v; want %s", fm, err, m)
	}
	// Directories (and devices, pipes) are refused, not read.
	if _, err := MeasureFile(filepath.Dir(path)); err == nil {
		t.Error("MeasureFile(directory) succeeded")
	}
}

// Measurements and signer ids are hex in text and JSON, and decoding checks the length.
func TestIdentityText(t *testing.T) {
	id := Identity{Backend: "sim", Measurement: Measurement{1, 2}, Signed: true, SignerID: SignerID{0xff}, ProductID: 7, SVN: 2}
	b, err := json.Marshal(id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"measurement":"0102`) || !strings.Contains(string(b), `"signer_id":"ff00`) {
		t.Errorf("JSON %s", b)
	}
	var back Identity
	if err := json.Unmarshal(b, &back); err != nil || back != id {
		t.Fatalf("round trip %+v, %v", back, err)
	}
	var m Measurement
	for _, bad := range []string{"", "00", strings.Repeat("zz", MeasurementSize), strings.Repeat("0", 2*MeasurementSize+2)} {
		if err := m.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) succeeded", bad)
		}
	}
	if !(Measurement{}).IsZero() || (Measurement{1}).IsZero() || !(SignerID{}).IsZero() {
		t.Error("IsZero")
	}
}
