package policy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asylo-go/asylo/attest"
)

func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// snpClaims returns typical verified SEV-SNP claims with every field set.
func snpClaims() *attest.Claims {
	return &attest.Claims{
		Platform:      attest.PlatformSNP,
		Measurement:   fill(0xaa, 48),
		Measurements:  map[string][]byte{"measurement": fill(0xaa, 48), "host_data": fill(0xcc, 32)},
		SignerID:      fill(0x51, 48),
		ProductID:     7,
		SVN:           3,
		ConfigHash:    fill(0xcc, 32),
		TCB:           map[string]uint64{"snp.bootloader": 4, "snp.microcode": 219},
		UserData:      fill(0x0e, 64),
		IssuedAt:      time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC),
		PlatformKeyID: fill(0x4b, 32),
	}
}

// fixedClock makes results deterministic.
func fixedClock() time.Time { return time.Date(2026, 11, 1, 12, 0, 1, 0, time.UTC) }

func mustPolicy(t testing.TB, acl ACL, opts ...Option) *Policy {
	t.Helper()
	p, err := NewACLPolicy(acl, append([]Option{WithClock(fixedClock)}, opts...)...)
	if err != nil {
		t.Fatalf("NewACLPolicy: %v", err)
	}
	return p
}

func TestExpectationFields(t *testing.T) {
	tests := []struct {
		name    string
		exp     Expectation
		mutate  func(*attest.Claims) // makes the claims mismatch
		wantErr error
		reason  string // substring of the reason
	}{
		{"platform", Expectation{Reference: Reference{Platform: attest.PlatformSNP}, Match: MatchSpec{Platform: true}},
			func(c *attest.Claims) { c.Platform = attest.PlatformTDX }, ErrPlatformNotAllowed, `platform: expected "sev-snp", got "tdx"`},
		{"measurement", Expectation{Reference: Reference{Measurement: fill(0xaa, 48)}, Match: MatchSpec{Measurement: true}},
			func(c *attest.Claims) { c.Measurement = fill(0xab, 48) }, ErrMeasurementMismatch, "measurement: expected " + strings.Repeat("aa", 48) + ", got " + strings.Repeat("ab", 48)},
		{"measurement absent", Expectation{Reference: Reference{Measurement: fill(0xaa, 48)}, Match: MatchSpec{Measurement: true}},
			func(c *attest.Claims) { c.Measurement = nil }, ErrMeasurementMismatch, "got (none)"},
		{"measurements", Expectation{Reference: Reference{Measurements: map[string][]byte{"host_data": fill(0xcc, 32)}}, Match: MatchSpec{Measurements: true}},
			func(c *attest.Claims) { c.Measurements = map[string][]byte{"host_data": fill(0xcd, 32)} }, ErrMeasurementMismatch, `measurements["host_data"]: expected cccc`},
		{"measurements register missing", Expectation{Reference: Reference{Measurements: map[string][]byte{"pcr8": fill(1, 48)}}, Match: MatchSpec{Measurements: true}},
			nil, ErrMeasurementMismatch, `measurements["pcr8"]`},
		{"signer", Expectation{Reference: Reference{SignerID: fill(0x51, 48)}, Match: MatchSpec{SignerID: true}},
			func(c *attest.Claims) { c.SignerID = fill(0x52, 48) }, ErrSignerMismatch, "signer_id: expected 5151"},
		{"product", Expectation{Reference: Reference{ProductID: 7}, Match: MatchSpec{ProductID: true}},
			func(c *attest.Claims) { c.ProductID = 8 }, ErrProductMismatch, "product_id: expected 7, got 8"},
		{"product zero", Expectation{Reference: Reference{ProductID: 0}, Match: MatchSpec{ProductID: true}},
			nil, ErrProductMismatch, "product_id: expected 0, got 7"},
		{"min svn", Expectation{Reference: Reference{MinSVN: 3}, Match: MatchSpec{MinSVN: true}},
			func(c *attest.Claims) { c.SVN = 2 }, ErrSVNTooLow, "svn: expected >= 3, got 2"},
		{"debug required false", Expectation{Reference: Reference{Debug: false}, Match: MatchSpec{Debug: true}},
			func(c *attest.Claims) { c.Debug = true }, ErrDebugNotAllowed, "debug: expected false, got true"},
		{"debug required true", Expectation{Reference: Reference{Debug: true}, Match: MatchSpec{Debug: true}},
			nil, ErrDebugMismatch, "debug: expected true, got false"},
		{"config hash", Expectation{Reference: Reference{ConfigHash: fill(0xcc, 32)}, Match: MatchSpec{ConfigHash: true}},
			func(c *attest.Claims) { c.ConfigHash = nil }, ErrConfigMismatch, "config_hash: expected cccc"},
		{"min tcb", Expectation{Reference: Reference{MinTCB: map[string]uint64{"snp.microcode": 219}}, Match: MatchSpec{MinTCB: true}},
			func(c *attest.Claims) { c.TCB["snp.microcode"] = 218 }, ErrSVNTooLow, `tcb["snp.microcode"]: expected >= 219, got 218`},
		{"min tcb missing", Expectation{Reference: Reference{MinTCB: map[string]uint64{"snp.snp": 1}}, Match: MatchSpec{MinTCB: true}},
			nil, ErrSVNTooLow, `tcb["snp.snp"]: expected >= 1, got (none)`},
		{"user data", Expectation{Reference: Reference{UserData: fill(0x0e, 64)}, Match: MatchSpec{UserData: true}},
			func(c *attest.Claims) { c.UserData = fill(0x0f, 64) }, ErrUserDataMismatch, "user_data: expected 0e0e"},
		{"platform key", Expectation{Reference: Reference{PlatformKeyID: fill(0x4b, 32)}, Match: MatchSpec{PlatformKeyID: true}},
			func(c *attest.Claims) { c.PlatformKeyID = fill(0x4c, 32) }, ErrPlatformNotAllowed, "platform_key_id: expected 4b4b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPolicy(t, Expect(tt.exp))
			if tt.mutate != nil {
				if r := p.Evaluate(snpClaims()); !r.Allowed() || r.Status != StatusAffirming {
					t.Fatalf("matching claims refused: %v %v", r.Status, r.Reasons)
				}
			}
			c := snpClaims()
			if tt.mutate != nil {
				tt.mutate(c)
			}
			r := p.Evaluate(c)
			if r.Allowed() || r.Status != StatusContraindicated {
				t.Fatalf("mismatching claims allowed: %+v", r)
			}
			if !errors.Is(r.Err, tt.wantErr) {
				t.Errorf("err = %v, want %v", r.Err, tt.wantErr)
			}
			if len(r.Reasons) == 0 || !strings.Contains(strings.Join(r.Reasons, "\n"), tt.reason) {
				t.Errorf("reasons %q lack %q", r.Reasons, tt.reason)
			}
		})
	}
}

func TestExpectationReportsEveryMismatch(t *testing.T) {
	p := mustPolicy(t, Expect(Expectation{
		Name:      "prod",
		Reference: Reference{Measurement: fill(1, 48), SignerID: fill(2, 48), MinSVN: 9},
		Match:     MatchSpec{Measurement: true, SignerID: true, MinSVN: true},
	}))
	r := p.Evaluate(snpClaims())
	if len(r.Reasons) != 3 {
		t.Fatalf("reasons = %q, want 3", r.Reasons)
	}
	for _, want := range []error{ErrMeasurementMismatch, ErrSignerMismatch, ErrSVNTooLow} {
		if !errors.Is(r.Err, want) {
			t.Errorf("err lacks %v", want)
		}
	}
	if !strings.HasPrefix(r.Reasons[0], `acl ("prod"): measurement: expected 0101`) {
		t.Errorf("reason = %q", r.Reasons[0])
	}
}

func TestExpectationValidate(t *testing.T) {
	tests := []struct {
		name string
		exp  Expectation
	}{
		{"matches nothing", Expectation{}},
		{"reference without match", Expectation{Reference: Reference{Measurement: fill(1, 32), SignerID: fill(2, 32)}, Match: MatchSpec{Measurement: true}}},
		{"product id set but not matched", Expectation{Reference: Reference{Measurement: fill(1, 32), ProductID: 3}, Match: MatchSpec{Measurement: true}}},
		{"debug set but not matched", Expectation{Reference: Reference{Measurement: fill(1, 32), Debug: true}, Match: MatchSpec{Measurement: true}}},
		{"matched measurement empty", Expectation{Match: MatchSpec{Measurement: true}}},
		{"measurement too long", Expectation{Reference: Reference{Measurement: fill(1, MaxFieldBytes+1)}, Match: MatchSpec{Measurement: true}}},
		{"matched signer empty", Expectation{Match: MatchSpec{SignerID: true}}},
		{"min svn zero", Expectation{Match: MatchSpec{MinSVN: true}}},
		{"unknown platform", Expectation{Reference: Reference{Platform: "sgx"}, Match: MatchSpec{Platform: true}}},
		{"empty platform", Expectation{Match: MatchSpec{Platform: true}}},
		{"measurements empty", Expectation{Match: MatchSpec{Measurements: true}}},
		{"measurements empty name", Expectation{Reference: Reference{Measurements: map[string][]byte{"": fill(1, 4)}}, Match: MatchSpec{Measurements: true}}},
		{"measurements empty value", Expectation{Reference: Reference{Measurements: map[string][]byte{"pcr0": nil}}, Match: MatchSpec{Measurements: true}}},
		{"min tcb zero", Expectation{Reference: Reference{MinTCB: map[string]uint64{"a": 0}}, Match: MatchSpec{MinTCB: true}}},
		{"min tcb empty", Expectation{Match: MatchSpec{MinTCB: true}}},
		{"config empty", Expectation{Match: MatchSpec{ConfigHash: true}}},
		{"user data empty", Expectation{Match: MatchSpec{UserData: true}}},
		{"platform key empty", Expectation{Match: MatchSpec{PlatformKeyID: true}}},
		{"name too long", Expectation{Name: strings.Repeat("n", MaxNameLen+1), Reference: Reference{MinSVN: 1}, Match: MatchSpec{MinSVN: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.exp.Validate(); !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("Validate = %v, want ErrInvalidPolicy", err)
			}
			if _, err := NewACLPolicy(Expect(tt.exp)); !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("NewACLPolicy = %v, want ErrInvalidPolicy", err)
			}
		})
	}
}

var (
	expMeasurement = Expectation{Name: "m", Reference: Reference{Measurement: fill(0xaa, 48)}, Match: MatchSpec{Measurement: true}}
	expOtherMeas   = Expectation{Name: "other", Reference: Reference{Measurement: fill(0xbb, 48)}, Match: MatchSpec{Measurement: true}}
	expSigner      = Expectation{Reference: Reference{SignerID: fill(0x51, 48), ProductID: 7, MinSVN: 3}, Match: MatchSpec{SignerID: true, ProductID: true, MinSVN: true}}
	expSVN5        = Expectation{Reference: Reference{MinSVN: 5}, Match: MatchSpec{MinSVN: true}}
)

func TestCombinators(t *testing.T) {
	tests := []struct {
		name    string
		acl     ACL
		allowed bool
		wantErr error
	}{
		{"expect match", Expect(expMeasurement), true, nil},
		{"expect mismatch", Expect(expOtherMeas), false, ErrMeasurementMismatch},
		{"all_of all match", AllOf(Expect(expMeasurement), Expect(expSigner)), true, nil},
		{"all_of one mismatch", AllOf(Expect(expMeasurement), Expect(expSVN5)), false, ErrSVNTooLow},
		{"all_of single", AllOf(Expect(expSigner)), true, nil},
		{"any_of first", AnyOf(Expect(expMeasurement), Expect(expOtherMeas)), true, nil},
		{"any_of second", AnyOf(Expect(expOtherMeas), Expect(expSigner)), true, nil},
		{"any_of none", AnyOf(Expect(expOtherMeas), Expect(expSVN5)), false, ErrACLNotSatisfied},
		{"any_of none keeps branch errors", AnyOf(Expect(expOtherMeas), Expect(expSVN5)), false, ErrSVNTooLow},
		{"not of mismatch", Not(Expect(expOtherMeas)), true, nil},
		{"not of match", Not(Expect(expMeasurement)), false, ErrACLNotSatisfied},
		{"not not", Not(Not(Expect(expMeasurement))), true, nil},
		{"not not mismatch", Not(Not(Expect(expOtherMeas))), false, ErrACLNotSatisfied},
		{"signer but not revoked build", AllOf(Expect(expSigner), Not(Expect(expMeasurement))), false, ErrACLNotSatisfied},
		{"signer and not other build", AllOf(Expect(expSigner), Not(Expect(expOtherMeas))), true, nil},
		{"nested", AnyOf(AllOf(Expect(expOtherMeas), Expect(expSigner)), AllOf(Expect(expMeasurement), Not(Expect(expSVN5)))), true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustPolicy(t, tt.acl).Evaluate(snpClaims())
			if r.Allowed() != tt.allowed {
				t.Fatalf("allowed = %v, want %v; reasons %q", r.Allowed(), tt.allowed, r.Reasons)
			}
			if tt.allowed {
				if r.Err != nil || len(r.Reasons) != 0 || r.Status != StatusAffirming {
					t.Errorf("allowed result carries %v %q %v", r.Err, r.Reasons, r.Status)
				}
				return
			}
			if !errors.Is(r.Err, tt.wantErr) {
				t.Errorf("err = %v, want %v", r.Err, tt.wantErr)
			}
		})
	}
}

func TestNotSemantics(t *testing.T) {
	// Not names the expectation that matched.
	r := mustPolicy(t, AllOf(Expect(expSigner), Not(Expect(expMeasurement)))).Evaluate(snpClaims())
	if len(r.Reasons) != 1 || !strings.Contains(r.Reasons[0], "acl.all_of[1]: not: the negated ACL matched") ||
		!strings.Contains(r.Reasons[0], strings.Repeat("aa", 48)) {
		t.Errorf("reasons = %q", r.Reasons)
	}
	// A Not that holds leaves no reasons from its operand behind.
	r = mustPolicy(t, Not(Expect(expOtherMeas))).Evaluate(snpClaims())
	if !r.Allowed() || len(r.Reasons) != 0 {
		t.Errorf("Not(mismatch): %v %q", r.Allowed(), r.Reasons)
	}
	// Not cannot negate the default rules: a debug enclave does not match a non-debug
	// expectation, but Not of that is still refused, by the debug rule.
	c := snpClaims()
	c.Debug = true
	r = mustPolicy(t, Not(Expect(Expectation{Reference: Reference{Debug: false}, Match: MatchSpec{Debug: true}}))).Evaluate(c)
	if r.Allowed() || !errors.Is(r.Err, ErrDebugNotAllowed) {
		t.Errorf("Not let a debug enclave through: %v %v", r.Allowed(), r.Err)
	}
	// Nor the platform rule.
	c = snpClaims()
	c.Platform = attest.PlatformSim
	r = mustPolicy(t, Not(Expect(expOtherMeas))).Evaluate(c)
	if r.Allowed() || !errors.Is(r.Err, ErrPlatformNotAllowed) {
		t.Errorf("Not let an unnamed sim platform through: %v %v", r.Allowed(), r.Err)
	}
}

func TestACLValidate(t *testing.T) {
	deep := Expect(expMeasurement)
	for i := 1; i < MaxACLDepth; i++ {
		deep = Not(deep)
	}
	if err := deep.Validate(); err != nil {
		t.Fatalf("depth %d refused: %v", MaxACLDepth, err)
	}
	wide := make([]ACL, MaxACLNodes)
	for i := range wide {
		wide[i] = Expect(expMeasurement)
	}
	tests := []struct {
		name string
		acl  ACL
	}{
		{"zero", ACL{}},
		{"zero inside", AllOf(Expect(expMeasurement), ACL{})},
		{"empty all_of", AllOf()},
		{"empty any_of", AnyOf()},
		{"invalid expectation inside", AnyOf(Not(Expect(Expectation{})))},
		{"too deep", Not(deep)},
		{"too many nodes", AnyOf(wide...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.acl.Validate(); !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("Validate = %v", err)
			}
			r := Evaluate(tt.acl, snpClaims())
			if r.Allowed() || !errors.Is(r.Err, ErrInvalidPolicy) {
				t.Errorf("Evaluate = %v %v", r.Allowed(), r.Err)
			}
		})
	}
}

func TestACLIsCopied(t *testing.T) {
	e := Expectation{Reference: Reference{Measurement: fill(0xaa, 48)}, Match: MatchSpec{Measurement: true}}
	kids := []ACL{Expect(e)}
	p := mustPolicy(t, AllOf(kids...))
	e.Reference.Measurement[0] = 0
	kids[0] = Expect(expOtherMeas)
	if r := p.Evaluate(snpClaims()); !r.Allowed() {
		t.Errorf("policy changed with its caller's slices: %q", r.Reasons)
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
