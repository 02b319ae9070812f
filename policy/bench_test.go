package policy

import "testing"

// Policy evaluation must be a small fraction of the verify + policy budget (p50 <= 1 ms).

func BenchmarkEvaluateCEL(b *testing.B) {
	p := mustCompile(b, `claims.platform == 'sev-snp' && hex(claims.signer_id) == '`+hexOf(fill(0x51, 48))+`' &&
		claims.product_id == 7u && claims.svn >= 3u && claims.tcb['snp.microcode'] >= 200u`)
	c := snpClaims()
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Evaluate(c); !r.Allowed() {
			b.Fatal(r.Reasons)
		}
	}
}

func BenchmarkEvaluateCELBytesLiteral(b *testing.B) {
	p := mustCompile(b, `claims.measurement == unhex('`+hexOf(fill(0xaa, 48))+`') && claims.svn >= 3u`)
	c := snpClaims()
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Evaluate(c); !r.Allowed() {
			b.Fatal(r.Reasons)
		}
	}
}

func BenchmarkEvaluateACL(b *testing.B) {
	p := mustPolicy(b, AllOf(Expect(expSigner), Not(Expect(expOtherMeas)),
		Expect(Expectation{Reference: Reference{MinTCB: map[string]uint64{"snp.microcode": 200}}, Match: MatchSpec{MinTCB: true}})))
	c := snpClaims()
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Evaluate(c); !r.Allowed() {
			b.Fatal(r.Reasons)
		}
	}
}

func BenchmarkEvaluateACLRefused(b *testing.B) {
	p := mustPolicy(b, Expect(expOtherMeas))
	c := snpClaims()
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Evaluate(c); r.Allowed() {
			b.Fatal("allowed")
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	src := `claims.platform == 'sev-snp' && claims.product_id == 7u && claims.svn >= 3u`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(src); err != nil {
			b.Fatal(err)
		}
	}
}
