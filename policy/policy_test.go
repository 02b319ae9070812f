package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asylo-go/asylo/attest"
)

var simKey = [32]byte{0x4b, 1, 2, 3}

func simClaims() *attest.Claims {
	c := snpClaims()
	c.Platform = attest.PlatformSim
	c.PlatformKeyID = simKey[:]
	return c
}

func TestDefaultRules(t *testing.T) {
	permissive := Expect(Expectation{Reference: Reference{ProductID: 7}, Match: MatchSpec{ProductID: true}})
	celPermissive := `claims.product_id == 7u`
	debug := func(c *attest.Claims) *attest.Claims { c.Debug = true; return c }
	tests := []struct {
		name   string
		claims *attest.Claims
		opts   []Option
		status Status
		err    error
	}{
		{"snp", snpClaims(), nil, StatusAffirming, nil},
		{"tdx", func() *attest.Claims { c := snpClaims(); c.Platform = attest.PlatformTDX; return c }(), nil, StatusAffirming, nil},
		{"nitro", func() *attest.Claims { c := snpClaims(); c.Platform = attest.PlatformNitro; return c }(), nil, StatusAffirming, nil},
		{"unknown platform", func() *attest.Claims { c := snpClaims(); c.Platform = "sgx"; return c }(), nil, StatusContraindicated, ErrPlatformNotAllowed},
		{"empty platform", func() *attest.Claims { c := snpClaims(); c.Platform = ""; return c }(), nil, StatusContraindicated, ErrPlatformNotAllowed},
		{"sim refused by default", simClaims(), nil, StatusContraindicated, ErrPlatformNotAllowed},
		{"sim with another key", simClaims(), []Option{AcceptSimPlatform([32]byte{9})}, StatusContraindicated, ErrPlatformNotAllowed},
		{"sim without key id", func() *attest.Claims { c := simClaims(); c.PlatformKeyID = nil; return c }(), []Option{AcceptSimPlatform(simKey)}, StatusContraindicated, ErrPlatformNotAllowed},
		{"sim named", simClaims(), []Option{AcceptSimPlatform(simKey)}, StatusWarning, nil},
		{"sim named among others", simClaims(), []Option{AcceptSimPlatform([32]byte{9}), AcceptSimPlatform(simKey)}, StatusWarning, nil},
		{"debug refused by default", debug(snpClaims()), nil, StatusContraindicated, ErrDebugNotAllowed},
		{"debug allowed", debug(snpClaims()), []Option{AllowDebug()}, StatusWarning, nil},
		{"debug sim needs both opt-ins", debug(simClaims()), []Option{AllowDebug()}, StatusContraindicated, ErrPlatformNotAllowed},
		{"debug sim with both", debug(simClaims()), []Option{AllowDebug(), AcceptSimPlatform(simKey)}, StatusWarning, nil},
		{"AllowDebug does not affect non-debug", snpClaims(), []Option{AllowDebug()}, StatusAffirming, nil},
	}
	for _, tt := range tests {
		for _, kind := range []string{"acl", "cel"} {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				opts := append([]Option{WithClock(fixedClock)}, tt.opts...)
				var p *Policy
				var err error
				if kind == "acl" {
					p, err = NewACLPolicy(permissive, opts...)
				} else {
					p, err = Compile(celPermissive, opts...)
				}
				if err != nil {
					t.Fatal(err)
				}
				r := p.Evaluate(tt.claims)
				if r.Status != tt.status {
					t.Errorf("status = %v, want %v (reasons %q)", r.Status, tt.status, r.Reasons)
				}
				if tt.err == nil {
					if !r.Allowed() || r.Err != nil || len(r.Reasons) != 0 {
						t.Errorf("refused: %v %q", r.Err, r.Reasons)
					}
					if (tt.status == StatusWarning) != (len(r.Warnings) > 0) {
						t.Errorf("warnings = %q", r.Warnings)
					}
				} else if r.Allowed() || !errors.Is(r.Err, tt.err) {
					t.Errorf("err = %v, want %v", r.Err, tt.err)
				}
			})
		}
	}
}

// Each refusal kind gives its own sentinel, and no other.
func TestRefusalKinds(t *testing.T) {
	all := []error{ErrMeasurementMismatch, ErrSignerMismatch, ErrProductMismatch, ErrSVNTooLow, ErrDebugNotAllowed,
		ErrDebugMismatch, ErrPlatformNotAllowed, ErrConfigMismatch, ErrUserDataMismatch, ErrACLNotSatisfied,
		ErrPolicyFalse, ErrPolicyError, ErrInvalidPolicy}
	meas, _ := ExactMeasurement(fill(0x01, 48))
	signer, _ := SignerProduct(fill(0x02, 48), 7, 1)
	product, _ := SignerProduct(fill(0x51, 48), 8, 1)
	svn, _ := SignerProduct(fill(0x51, 48), 7, 4)
	snp, _ := SignerProduct(fill(0x51, 48), 7, 3)
	config, _ := NewACLPolicy(Expect(Expectation{Reference: Reference{ConfigHash: fill(1, 32)}, Match: MatchSpec{ConfigHash: true}}))
	user, _ := NewACLPolicy(Expect(Expectation{Reference: Reference{UserData: fill(1, 64)}, Match: MatchSpec{UserData: true}}))
	devOnly, _ := NewACLPolicy(Expect(Expectation{Reference: Reference{Debug: true}, Match: MatchSpec{Debug: true}}))
	not, _ := NewACLPolicy(Not(Expect(expMeasurement)))
	celFalse, _ := Compile(`false`)
	celErr, _ := Compile(`claims.tcb['x'] == 1u`)
	debug := snpClaims()
	debug.Debug = true
	tests := []struct {
		name   string
		p      *Policy
		claims *attest.Claims
		want   error
	}{
		{"measurement", meas, snpClaims(), ErrMeasurementMismatch},
		{"signer", signer, snpClaims(), ErrSignerMismatch},
		{"product", product, snpClaims(), ErrProductMismatch},
		{"svn", svn, snpClaims(), ErrSVNTooLow},
		{"debug", snp, debug, ErrDebugNotAllowed},
		{"debug mismatch", devOnly, snpClaims(), ErrDebugMismatch},
		{"platform", snp, simClaims(), ErrPlatformNotAllowed},
		{"config", config, snpClaims(), ErrConfigMismatch},
		{"user data", user, snpClaims(), ErrUserDataMismatch},
		{"not", not, snpClaims(), ErrACLNotSatisfied},
		{"cel false", celFalse, snpClaims(), ErrPolicyFalse},
		{"cel error", celErr, snpClaims(), ErrPolicyError},
		{"nil claims", snp, nil, ErrPolicyError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.p.Evaluate(tt.claims)
			if r.Allowed() || r.Status != StatusContraindicated || len(r.Reasons) != 1 {
				t.Fatalf("allowed=%v status=%v reasons=%q", r.Allowed(), r.Status, r.Reasons)
			}
			for _, e := range all {
				if errors.Is(r.Err, e) != (e == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", r.Err, e, !(e == tt.want))
				}
			}
		})
	}
}

func TestPresets(t *testing.T) {
	m := fill(0xaa, 48)
	p, err := ExactMeasurement(m, WithClock(fixedClock))
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Evaluate(snpClaims()); !r.Allowed() || r.Status != StatusAffirming {
		t.Errorf("exact measurement refused: %q", r.Reasons)
	}
	c := snpClaims()
	c.Measurement = fill(0xab, 48)
	if r := p.Evaluate(c); !errors.Is(r.Err, ErrMeasurementMismatch) {
		t.Errorf("other measurement: %v", r.Err)
	}
	m[0] = 0 // the policy keeps its own copy
	if r := p.Evaluate(snpClaims()); !r.Allowed() {
		t.Errorf("preset aliases its argument")
	}
	if _, err := ExactMeasurement(nil); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("ExactMeasurement(nil) = %v", err)
	}

	signer := fill(0x51, 48)
	svnTests := []struct {
		minSVN, svn uint32
		ok          bool
	}{{3, 3, true}, {3, 4, true}, {3, 2, false}, {0, 0, true}, {1, 0, false}}
	for _, tt := range svnTests {
		p, err := SignerProduct(signer, 7, tt.minSVN)
		if err != nil {
			t.Fatal(err)
		}
		c := snpClaims()
		c.SVN = tt.svn
		r := p.Evaluate(c)
		if r.Allowed() != tt.ok {
			t.Errorf("min %d svn %d: allowed %v (%q)", tt.minSVN, tt.svn, r.Allowed(), r.Reasons)
		}
		if !tt.ok && !errors.Is(r.Err, ErrSVNTooLow) {
			t.Errorf("min %d svn %d: %v", tt.minSVN, tt.svn, r.Err)
		}
	}
	p, _ = SignerProduct(signer, 7, 3)
	c = snpClaims()
	c.ProductID = 8
	if r := p.Evaluate(c); !errors.Is(r.Err, ErrProductMismatch) {
		t.Errorf("other product: %v", r.Err)
	}
	c = snpClaims()
	c.SignerID = fill(0x52, 48)
	if r := p.Evaluate(c); !errors.Is(r.Err, ErrSignerMismatch) {
		t.Errorf("other signer: %v", r.Err)
	}
	if _, err := SignerProduct(nil, 1, 1); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("SignerProduct(nil) = %v", err)
	}
	// Presets keep the default rules.
	c = snpClaims()
	c.Debug = true
	if r := p.Evaluate(c); !errors.Is(r.Err, ErrDebugNotAllowed) {
		t.Errorf("preset let debug through: %v", r.Err)
	}
	if r := p.Evaluate(simClaims()); !errors.Is(r.Err, ErrPlatformNotAllowed) {
		t.Errorf("preset let an unnamed sim platform through: %v", r.Err)
	}
	ps, _ := SignerProduct(signer, 7, 3, AcceptSimPlatform(simKey))
	if r := ps.Evaluate(simClaims()); !r.Allowed() || r.Status != StatusWarning {
		t.Errorf("named sim refused: %q", r.Reasons)
	}
}

func TestOptionsValidated(t *testing.T) {
	bad := map[string]Option{
		"zero sim key":    AcceptSimPlatform([32]byte{}),
		"cost limit 0":    WithCostLimit(0),
		"cost limit huge": WithCostLimit(MaxCostLimit + 1),
		"nil clock":       WithClock(nil),
		"empty id":        WithID(""),
		"long id":         WithID(strings.Repeat("x", 257)),
		"nil option":      nil,
	}
	for name, o := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := Compile(`true`, o); !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("Compile = %v", err)
			}
			if _, err := NewACLPolicy(Expect(expMeasurement), o); !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("NewACLPolicy = %v", err)
			}
		})
	}
}

func TestPolicyID(t *testing.T) {
	a, _ := Compile(`true`)
	b, _ := Compile(`true`)
	c, _ := Compile(`true`, AllowDebug())
	d, _ := Compile(`true`, AcceptSimPlatform(simKey))
	e, _ := Compile(`true `)
	f, _ := NewACLPolicy(Expect(expMeasurement))
	g, _ := Compile(`true`, WithID("policy://payments/v3"))
	if a.ID() != b.ID() || !strings.HasPrefix(a.ID(), "cel:sha256:") || !strings.HasPrefix(f.ID(), "acl:sha256:") {
		t.Errorf("ids %q %q %q", a.ID(), b.ID(), f.ID())
	}
	seen := map[string]bool{}
	for _, p := range []*Policy{a, c, d, e, f, g} {
		if seen[p.ID()] {
			t.Errorf("duplicate id %q", p.ID())
		}
		seen[p.ID()] = true
	}
	if g.ID() != "policy://payments/v3" {
		t.Errorf("WithID: %q", g.ID())
	}
	if r := g.Evaluate(snpClaims()); r.PolicyID != g.ID() {
		t.Errorf("result id %q", r.PolicyID)
	}
}

func TestResultMetadata(t *testing.T) {
	c := snpClaims()
	r := mustCompile(t, `true`).Evaluate(c)
	if !r.IssuedAt.Equal(fixedClock()) || r.Claims != c {
		t.Errorf("issued at %v, claims %p", r.IssuedAt, r.Claims)
	}
	var zero Result
	if zero.Allowed() {
		t.Errorf("zero Result allowed")
	}
	if (Result{Status: StatusAffirming, Err: errors.New("x")}).Allowed() {
		t.Errorf("Result with an error allowed")
	}
	_ = time.Now
}

func TestConcurrentEvaluate(t *testing.T) {
	pc := mustCompile(t, `claims.svn >= 3u && hex(claims.signer_id).startsWith('51')`)
	pa := mustPolicy(t, AllOf(Expect(expSigner), Not(Expect(expOtherMeas))))
	done := make(chan bool)
	for i := 0; i < 4; i++ {
		go func() {
			ok := true
			for j := 0; j < 200; j++ {
				ok = ok && pc.Evaluate(snpClaims()).Allowed() && pa.Evaluate(snpClaims()).Allowed() && !pa.Evaluate(simClaims()).Allowed()
			}
			done <- ok
		}()
	}
	for i := 0; i < 4; i++ {
		if !<-done {
			t.Error("concurrent evaluation differed")
		}
	}
}
