package policy

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/asylo-go/asylo/attest"
)

func FuzzParseACL(f *testing.F) {
	for _, a := range []ACL{
		Expect(expMeasurement),
		Expect(allFieldsExpectation()),
		AnyOf(AllOf(Expect(expSigner), Not(Expect(expOtherMeas))), Expect(expMeasurement)),
	} {
		b, _ := json.Marshal(a)
		f.Add(b)
	}
	f.Add([]byte(`{"not":{"not":{}}}`))
	f.Add([]byte(`{"expect":{"reference":{"measurements":{"pcr0":"00"},"min_tcb":{"a":1}},"match":["measurements","min_tcb"]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseACL(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error without ErrInvalidPolicy: %v", err)
			}
			return
		}
		// Anything parsed is valid, re-encodes, and parses back to the same ACL.
		if err := a.Validate(); err != nil {
			t.Fatalf("parsed ACL invalid: %v", err)
		}
		enc, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := ParseACL(enc)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", enc, err)
		}
		if !reflect.DeepEqual(a, back) {
			t.Fatalf("round trip differs for %s", enc)
		}
		// The fast pass and the explaining pass agree.
		for _, c := range []*attest.Claims{snpClaims(), simClaims()} {
			ok, reasons := a.eval(c, "acl", nil)
			if ok != a.holds(c) || ok != (len(reasons) == 0) {
				t.Fatalf("holds %v, eval %v %v", a.holds(c), ok, reasons)
			}
		}
		// And evaluation never panics and never allows with reasons.
		r := Evaluate(a, snpClaims())
		if r.Allowed() != (len(r.Reasons) == 0) {
			t.Fatalf("allowed %v with reasons %q", r.Allowed(), r.Reasons)
		}
	})
}

func FuzzCEL(f *testing.F) {
	for _, s := range []string{
		`claims.svn >= 3u && hex(claims.signer_id).startsWith('51')`,
		`claims.measurements.exists(k, claims.measurements[k] == claims.measurement)`,
		`claims.tcb['x'] > 1u`,
		`unhex(claims.platform) == b''`,
		`[1,2,3].all(x, [1,2,3].all(y, x * y > 0))`,
		`claims.issued_at < timestamp('2030-01-01T00:00:00Z')`,
		`'a'.matches('^a+$')`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 1024 { // bounded: the parser's own limits are tested elsewhere
			return
		}
		p, err := Compile(src, WithClock(fixedClock))
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error without ErrInvalidPolicy: %v", err)
			}
			return
		}
		for _, c := range []*attest.Claims{snpClaims(), simClaims()} {
			r := p.Evaluate(c)
			switch {
			case r.Allowed():
				if r.Err != nil || len(r.Reasons) != 0 {
					t.Fatalf("allowed with %v", r.Err)
				}
			case r.Status != StatusContraindicated || r.Err == nil || len(r.Reasons) == 0:
				t.Fatalf("refusal without status or reason: %+v", r)
			case !errors.Is(r.Err, ErrPolicyFalse) && !errors.Is(r.Err, ErrPolicyError) && !errors.Is(r.Err, ErrPlatformNotAllowed):
				t.Fatalf("unexpected refusal: %v", r.Err)
			}
			if c.Platform == attest.PlatformSim && r.Allowed() {
				t.Fatalf("sim claims allowed without AcceptSimPlatform")
			}
		}
	})
}

func FuzzParseResult(f *testing.F) {
	good, _ := json.Marshal(mustCompile(f, `true`).Evaluate(snpClaims()))
	f.Add(good)
	bad, _ := json.Marshal(mustCompile(f, `false`).Evaluate(snpClaims()))
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResult(b)
		if err != nil {
			return
		}
		if r.Status == 0 {
			t.Fatalf("parsed a Result with no status")
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
