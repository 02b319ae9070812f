package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func mustCompile(t testing.TB, src string, opts ...Option) *Policy {
	t.Helper()
	p, err := Compile(src, append([]Option{WithClock(fixedClock)}, opts...)...)
	if err != nil {
		t.Fatalf("Compile(%q): %v", src, err)
	}
	return p
}

func TestCELFields(t *testing.T) {
	// Each is true for snpClaims().
	srcs := []string{
		`claims.platform == 'sev-snp'`,
		`claims.measurement == b'` + strings.Repeat(`\xaa`, 48) + `'`,
		`hex(claims.measurement) == '` + strings.Repeat("aa", 48) + `'`,
		`claims.measurement == unhex('` + strings.Repeat("aa", 48) + `')`,
		`claims.measurements['host_data'] == claims.config_hash`,
		`'measurement' in claims.measurements && size(claims.measurements) == 2`,
		`hex(claims.signer_id).startsWith('5151')`,
		`claims.product_id == 7u`,
		`claims.svn >= 3u && claims.svn < 4u`,
		`!claims.debug`,
		`size(claims.config_hash) == 32`,
		`claims.tcb['snp.microcode'] >= 219u`,
		`claims.tcb.all(k, claims.tcb[k] > 0u)`,
		`size(claims.user_data) == 64`,
		`claims.issued_at > timestamp('2026-01-01T00:00:00Z')`,
		`claims.issued_at.getFullYear() == 2026`,
		`claims.platform_key_id == unhex('` + strings.Repeat("4b", 32) + `')`,
		`claims.platform in ['sev-snp', 'tdx'] && has(claims.svn)`,
		`claims.measurements.exists(k, k.startsWith('host'))`,
	}
	for _, src := range srcs {
		t.Run(src, func(t *testing.T) {
			r := mustCompile(t, src).Evaluate(snpClaims())
			if !r.Allowed() || r.Status != StatusAffirming {
				t.Errorf("refused: %q %v", r.Reasons, r.Err)
			}
		})
	}
}

func TestCELCompileErrors(t *testing.T) {
	tests := map[string]string{
		"empty":                ``,
		"syntax":               `claims.svn >=`,
		"unknown field":        `claims.mrenclave == b''`,
		"unknown variable":     `request.path == '/'`,
		"unknown function":     `sha256(claims.measurement) == b''`,
		"non-bool uint":        `claims.svn`,
		"non-bool string":      `hex(claims.measurement)`,
		"non-bool bytes":       `claims.measurement`,
		"dyn result":           `dyn(true)`,
		"type error":           `claims.svn >= 3`,
		"hex of string":        `hex('aa') == 'aa'`,
		"too long":             `true` + strings.Repeat(` && true`, MaxPolicySourceSize/8+1),
		"nested comprehension": `[1].all(x, [1].all(y, [1].all(z, x == y && y == z)))`,
		"deep nesting":         strings.Repeat("(", 200) + "true" + strings.Repeat(")", 200),
	}
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := Compile(src)
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("Compile = %v, %v; want ErrInvalidPolicy", p, err)
			}
		})
	}
}

// bigComprehension iterates n*n times.
func bigComprehension(n int) string {
	xs := make([]string, n)
	for i := range xs {
		xs[i] = fmt.Sprint(i)
	}
	list := "[" + strings.Join(xs, ",") + "]"
	return list + ".all(x, " + list + ".all(y, x + y >= 0))"
}

func TestCELCostLimit(t *testing.T) {
	src := bigComprehension(200) // 40,000 iterations
	r := mustCompile(t, src).Evaluate(snpClaims())
	if r.Allowed() || !errors.Is(r.Err, ErrPolicyError) {
		t.Fatalf("cost limit not enforced: %v %v", r.Allowed(), r.Err)
	}
	if !strings.Contains(r.Reasons[0], "cost limit") {
		t.Errorf("reason = %q", r.Reasons)
	}
	// The same policy fits under a raised limit.
	if r := mustCompile(t, src, WithCostLimit(MaxCostLimit)).Evaluate(snpClaims()); !r.Allowed() {
		t.Errorf("refused under the maximum limit: %q", r.Reasons)
	}
	// And a cheap policy fails under a tiny one.
	r = mustCompile(t, `claims.svn >= 1u && claims.product_id == 7u && !claims.debug`, WithCostLimit(1)).Evaluate(snpClaims())
	if r.Allowed() || !errors.Is(r.Err, ErrPolicyError) {
		t.Errorf("tiny limit: %v %v", r.Allowed(), r.Err)
	}
}

func TestCELEvaluationErrorDenies(t *testing.T) {
	tests := map[string]string{
		"missing map key":  `claims.tcb['snp.tee'] >= 1u`,
		"missing register": `claims.measurements['pcr0'] == b''`,
		"division by zero": `claims.svn / (claims.svn - 3u) == 1u`,
		"overflow":         `claims.svn - 4u == 0u`,
		"bad unhex":        `claims.measurement == unhex('zz')`,
		"bad unhex late":   `claims.measurement == unhex(claims.platform)`,
		"error and true":   `claims.tcb['nope'] > 1u && true`,
	}
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := Compile(src)
			if err != nil {
				// Constant folding may find the error at compile time; that denies too.
				if !errors.Is(err, ErrInvalidPolicy) {
					t.Fatalf("Compile = %v", err)
				}
				return
			}
			r := p.Evaluate(snpClaims())
			if r.Allowed() || !errors.Is(r.Err, ErrPolicyError) || r.Status != StatusContraindicated {
				t.Errorf("evaluation error did not deny: %v %v %v", r.Allowed(), r.Status, r.Err)
			}
		})
	}
}

func TestCELFalse(t *testing.T) {
	r := mustCompile(t, `claims.svn >= 4u`).Evaluate(snpClaims())
	if r.Allowed() || !errors.Is(r.Err, ErrPolicyFalse) {
		t.Fatalf("%v %v", r.Allowed(), r.Err)
	}
	if errors.Is(r.Err, ErrPolicyError) {
		t.Errorf("false reported as an evaluation error")
	}
}

func TestCELNilMapsAndEmptyClaims(t *testing.T) {
	c := snpClaims()
	c.TCB, c.Measurements, c.SignerID = nil, nil, nil
	r := mustCompile(t, `size(claims.tcb) == 0 && size(claims.measurements) == 0 && claims.signer_id == b''`).Evaluate(c)
	if !r.Allowed() {
		t.Errorf("refused: %q", r.Reasons)
	}
}
