package verify_test

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/attest/snp"
	"github.com/asylo-go/asylo/backend/sim/platform"
	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/policy"
	"github.com/asylo-go/asylo/verify"
)

// BenchmarkVerifyPolicy measures what a relying party pays per piece of
// evidence: verify.Evidence (envelope, format verifier, chain, user data)
// plus a compiled policy's decision, as a long-lived verifier runs it (the
// SEV-SNP vendor chain cached after the first report, docs/evidence-snp.md).
// "latency" reports the median and 99th percentile of single verifications;
// "parallel" runs on every core and reports verifications per second.
func BenchmarkVerifyPolicy(b *testing.B) {
	ctx := context.Background()

	// sim: a fresh platform, evidence for a debug identity bound to a nonce.
	p, err := platform.Open(filepath.Join(b.TempDir(), "p"))
	if err != nil {
		b.Fatal(err)
	}
	nonce := []byte("a relying party's nonce")
	simEv, err := p.Attest(identity.Identity{Measurement: identity.Measurement{7}, Debug: true}, nonce, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	simRaw, _ := simEv.Marshal()
	simOpts := verify.Options{SimRoots: []*x509.Certificate{p.Root()}, UserData: nonce}
	simPol, err := policy.ExactMeasurement(append([]byte{7}, make([]byte, 31)...), policy.AcceptSimPlatform(p.KeyID()), policy.AllowDebug())
	if err != nil {
		b.Fatal(err)
	}

	// SEV-SNP: the real Milan report (a debug guest) and its VCEK.
	snpData, err := verify.EncodeSNP(snp.Evidence{Report: read(b, "attest/snp/testdata/milan_attestation.bin"), EndorsementKeyCert: read(b, "attest/snp/testdata/milan_vcek.der")})
	if err != nil {
		b.Fatal(err)
	}
	snpRaw, _ := attest.Evidence{Format: attest.FormatSNP, Data: snpData}.Marshal()
	snpOpts := verify.Options{CurrentTime: time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC), AllowDebug: true}
	c, err := verify.Evidence(ctx, snpRaw, snpOpts)
	if err != nil {
		b.Fatal(err)
	}
	snpOpts.UserData = c.UserData
	snpPol, err := policy.ExactMeasurement(c.Measurement, policy.AllowDebug())
	if err != nil {
		b.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		raw  []byte
		opts verify.Options
		pol  *policy.Policy
	}{{"sim", simRaw, simOpts, simPol}, {"snp", snpRaw, snpOpts, snpPol}} {
		one := func(b *testing.B) {
			c, err := verify.Evidence(ctx, tc.raw, tc.opts)
			if err != nil {
				b.Fatal(err)
			}
			if r := tc.pol.Evaluate(c); !r.Allowed() {
				b.Fatal(r.Err)
			}
		}
		one(b) // the first SEV-SNP report fills the chain cache
		b.Run(tc.name+"/latency", func(b *testing.B) {
			var times []time.Duration
			for b.Loop() {
				t0 := time.Now()
				one(b)
				times = append(times, time.Since(t0))
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					one(b)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
		})
	}
}
