package snp

import (
	"bytes"
	"context"
	"testing"
)

func FuzzParse(f *testing.F) {
	real := realEvidence(f).Report
	f.Add(real)
	f.Add(real[:len(real)/2])
	amd := newFakeAMD(f)
	f.Add(amd.report(f, reportOpts{version: 5}).Report)
	f.Fuzz(func(t *testing.T, report []byte) {
		r, err := Parse(report)
		if err != nil {
			if r != nil {
				t.Fatal("report returned with an error")
			}
			checkOneSentinel(t, err)
			return
		}
		if !bytes.Equal(r.Raw, report) || r.Version < 2 || r.Version > 5 || r.SignatureAlgo != 1 {
			t.Fatalf("accepted report breaks an invariant: version %d, algo %d", r.Version, r.SignatureAlgo)
		}
	})
}

// FuzzVerify checks that no report other than the real one verifies with
// the real VCEK against the embedded AMD roots, and that no input panics.
func FuzzVerify(f *testing.F) {
	ev := realEvidence(f)
	f.Add(ev.Report, ev.EndorsementKeyCert)
	mid := bytes.Clone(ev.Report)
	mid[0x90] ^= 1
	f.Add(mid, ev.EndorsementKeyCert)
	f.Add(ev.Report, ev.EndorsementKeyCert[:100])
	f.Fuzz(func(t *testing.T, report, cert []byte) {
		r, err := Verify(context.Background(), Evidence{Report: report, EndorsementKeyCert: cert}, Options{CurrentTime: realTime, AllowDebug: true})
		if err != nil {
			checkOneSentinel(t, err)
			return
		}
		if !bytes.Equal(r.Raw, ev.Report) {
			t.Fatalf("a report other than the real one verified")
		}
	})
}
