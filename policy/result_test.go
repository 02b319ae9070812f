package policy

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	for s, name := range map[Status]string{StatusAffirming: "affirming", StatusWarning: "warning", StatusContraindicated: "contraindicated", 0: "invalid", 9: "invalid"} {
		if s.String() != name {
			t.Errorf("%d: %q", s, s.String())
		}
		var back Status
		err := back.UnmarshalText([]byte(name))
		if (err == nil) != (name != "invalid") || (err == nil && back != s) {
			t.Errorf("UnmarshalText(%q) = %v, %v", name, back, err)
		}
	}
	if _, err := json.Marshal(Result{}); err == nil {
		t.Errorf("zero Result marshalled")
	}
}

func TestResultJSON(t *testing.T) {
	p, _ := SignerProduct(fill(0x51, 48), 7, 4, WithClock(fixedClock), WithID("policy://test"))
	refused := p.Evaluate(snpClaims())
	c := snpClaims()
	c.SVN = 4
	c.Debug = true
	pd, _ := SignerProduct(fill(0x51, 48), 7, 4, WithClock(fixedClock), AllowDebug())
	warned := pd.Evaluate(c)
	for name, r := range map[string]Result{"refused": refused, "warning": warned} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{`"eat_profile":"` + ResultProfile + `"`, `"iat":1793534401`, `"ear.status":"` + r.Status.String() + `"`, `"ear.appraisal-policy-id":"` + r.PolicyID + `"`, `"submods":{"enclave":`} {
				if !strings.Contains(string(b), key) {
					t.Errorf("%s lacks %s", b, key)
				}
			}
			got, err := ParseResult(b)
			if err != nil {
				t.Fatal(err)
			}
			want := r
			want.Err = nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
			if got.Allowed() != r.Allowed() {
				t.Errorf("Allowed changed in the round trip")
			}
		})
	}
	if len(refused.Reasons) != 1 || !strings.Contains(refused.Reasons[0], "svn: expected >= 4, got 3") {
		t.Errorf("reasons %q", refused.Reasons)
	}
}

func TestParseResultStrict(t *testing.T) {
	good, _ := json.Marshal(mustCompile(t, `true`).Evaluate(snpClaims()))
	if _, err := ParseResult(good); err != nil {
		t.Fatal(err)
	}
	s := string(good)
	tests := map[string]string{
		"unknown field":   strings.Replace(s, `"iat"`, `"extra":1,"iat"`, 1),
		"wrong profile":   strings.Replace(s, ResultProfile, "tag:example.com,2026:other", 1),
		"bad status":      strings.Replace(s, `"affirming"`, `"none"`, 1),
		"trailing":        s + "{}",
		"two submods":     strings.Replace(s, `"submods":{`, `"submods":{"x":{"ear.status":"affirming","ear.appraisal-policy-id":""},`, 1),
		"no status":       strings.Replace(s, `"ear.status":"affirming",`, ``, 1),
		"duplicate":       strings.Replace(s, `"iat"`, `"iat":1,"iat"`, 1),
		"null":            strings.Replace(s, `"submods":{`, `"x":null,"submods":{`, 1),
		"not json":        `hello`,
		"too big":         strings.Repeat(" ", MaxResultJSONSize+1),
		"wrong submodule": strings.Replace(s, `"enclave"`, `"other"`, 1),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseResult([]byte(in)); err == nil {
				t.Errorf("accepted %s", in)
			}
		})
	}
	var r Result
	if err := json.Unmarshal(good, &r); err != nil || !r.Allowed() {
		t.Errorf("UnmarshalJSON: %v", err)
	}
	_ = errors.New
}
