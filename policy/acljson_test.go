package policy

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/asylo-go/asylo/attest"
)

func allFieldsExpectation() Expectation {
	return Expectation{
		Name: "everything",
		Reference: Reference{
			Platform:      attest.PlatformSNP,
			Measurement:   fill(0xaa, 48),
			Measurements:  map[string][]byte{"host_data": fill(0xcc, 32), "measurement": fill(0xaa, 48)},
			SignerID:      fill(0x51, 48),
			ProductID:     0,
			MinSVN:        3,
			Debug:         false,
			ConfigHash:    fill(0xcc, 32),
			MinTCB:        map[string]uint64{"snp.bootloader": 4},
			UserData:      fill(0x0e, 64),
			PlatformKeyID: fill(0x4b, 32),
		},
		Match: MatchSpec{true, true, true, true, true, true, true, true, true, true, true},
	}
}

func TestACLJSONRoundTrip(t *testing.T) {
	acls := map[string]ACL{
		"expect":      Expect(expMeasurement),
		"all fields":  Expect(allFieldsExpectation()),
		"combinators": AnyOf(AllOf(Expect(expSigner), Not(Expect(expOtherMeas))), Expect(expMeasurement), Not(Not(Expect(expSVN5)))),
	}
	for name, a := range acls {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseACL(b)
			if err != nil {
				t.Fatalf("ParseACL(%s): %v", b, err)
			}
			if !reflect.DeepEqual(got, a) {
				t.Errorf("round trip differs:\n got %#v\nwant %#v", got, a)
			}
			b2, _ := json.Marshal(got)
			if string(b2) != string(b) {
				t.Errorf("encoding not canonical:\n%s\n%s", b, b2)
			}
		})
	}
}

func TestACLJSONFormat(t *testing.T) {
	// The encoding documented in docs/policy.md.
	b, err := json.Marshal(AllOf(
		Expect(Expectation{Reference: Reference{SignerID: []byte{0xab, 0xcd}, ProductID: 1, MinSVN: 2}, Match: MatchSpec{SignerID: true, ProductID: true, MinSVN: true}}),
		Not(Expect(Expectation{Name: "revoked", Reference: Reference{Measurement: []byte{0x01}}, Match: MatchSpec{Measurement: true}})),
	))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"all_of":[{"expect":{"reference":{"min_svn":2,"product_id":1,"signer_id":"abcd"},"match":["signer_id","product_id","min_svn"]}},` +
		`{"not":{"expect":{"name":"revoked","reference":{"measurement":"01"},"match":["measurement"]}}}]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func TestParseACLStrict(t *testing.T) {
	const ok = `{"expect":{"reference":{"measurement":"aa"},"match":["measurement"]}}`
	if _, err := ParseACL([]byte(ok)); err != nil {
		t.Fatalf("valid ACL refused: %v", err)
	}
	deep := `{"expect":{"reference":{"measurement":"aa"},"match":["measurement"]}}`
	for i := 0; i < MaxACLDepth; i++ {
		deep = `{"not":` + deep + `}`
	}
	tests := map[string]string{
		"empty":                   ``,
		"not an object":           `[]`,
		"string":                  `"x"`,
		"unknown node key":        `{"expect":{"reference":{"measurement":"aa"},"match":["measurement"]},"extra":1}`,
		"mis-cased node key":      `{"Expect":{"reference":{"measurement":"aa"},"match":["measurement"]}}`,
		"unknown expectation key": `{"expect":{"reference":{"measurement":"aa"},"match":["measurement"],"note":"x"}}`,
		"unknown reference key":   `{"expect":{"reference":{"measurement":"aa","mrenclave":"aa"},"match":["measurement"]}}`,
		"mis-cased reference key": `{"expect":{"reference":{"Measurement":"aa"},"match":["measurement"]}}`,
		"duplicate key":           `{"expect":{"reference":{"measurement":"aa","measurement":"bb"},"match":["measurement"]}}`,
		"duplicate node key":      `{"not":` + ok + `,"not":` + ok + `}`,
		"null":                    `{"expect":{"reference":{"measurement":null},"match":["measurement"]}}`,
		"null node":               `{"not":null}`,
		"trailing data":           ok + `{}`,
		"trailing garbage":        ok + `x`,
		"two operators":           `{"not":` + ok + `,"all_of":[` + ok + `]}`,
		"no operator":             `{}`,
		"empty all_of":            `{"all_of":[]}`,
		"empty any_of":            `{"any_of":[]}`,
		"all_of not array":        `{"all_of":` + ok + `}`,
		"upper-case hex":          `{"expect":{"reference":{"measurement":"AA"},"match":["measurement"]}}`,
		"odd hex":                 `{"expect":{"reference":{"measurement":"aaa"},"match":["measurement"]}}`,
		"empty hex":               `{"expect":{"reference":{"measurement":""},"match":["measurement"]}}`,
		"hex too long":            `{"expect":{"reference":{"measurement":"` + strings.Repeat("aa", MaxFieldBytes+1) + `"},"match":["measurement"]}}`,
		"hex not a string":        `{"expect":{"reference":{"measurement":170},"match":["measurement"]}}`,
		"reference not matched":   `{"expect":{"reference":{"measurement":"aa","product_id":0},"match":["measurement"]}}`,
		"zero debug not matched":  `{"expect":{"reference":{"measurement":"aa","debug":false},"match":["measurement"]}}`,
		"match unknown field":     `{"expect":{"reference":{"measurement":"aa"},"match":["measurement","mrenclave"]}}`,
		"match twice":             `{"expect":{"reference":{"measurement":"aa"},"match":["measurement","measurement"]}}`,
		"match empty":             `{"expect":{"reference":{},"match":[]}}`,
		"match missing":           `{"expect":{"reference":{"measurement":"aa"}}}`,
		"reference missing":       `{"expect":{"match":["debug"]}}`,
		"matched but absent":      `{"expect":{"reference":{},"match":["signer_id"]}}`,
		"negative product":        `{"expect":{"reference":{"product_id":-1},"match":["product_id"]}}`,
		"fractional svn":          `{"expect":{"reference":{"min_svn":1.5},"match":["min_svn"]}}`,
		"exponent svn":            `{"expect":{"reference":{"min_svn":1e2},"match":["min_svn"]}}`,
		"svn too big":             `{"expect":{"reference":{"min_svn":4294967296},"match":["min_svn"]}}`,
		"svn as string":           `{"expect":{"reference":{"min_svn":"1"},"match":["min_svn"]}}`,
		"debug as number":         `{"expect":{"reference":{"debug":0},"match":["debug"]}}`,
		"unknown platform":        `{"expect":{"reference":{"platform":"sgx"},"match":["platform"]}}`,
		"empty name":              `{"expect":{"name":"","reference":{"measurement":"aa"},"match":["measurement"]}}`,
		"measurements not hex":    `{"expect":{"reference":{"measurements":{"pcr0":"zz"}},"match":["measurements"]}}`,
		"min_tcb zero":            `{"expect":{"reference":{"min_tcb":{"a":0}},"match":["min_tcb"]}}`,
		"too deep":                deep,
		"invalid utf-8":           `{"expect":{"name":"` + "\xff" + `","reference":{"measurement":"aa"},"match":["measurement"]}}`,
		"too big":                 `{"all_of":[` + strings.Repeat(ok+",", MaxACLJSONSize/len(ok)) + ok + `]}`,
		"unterminated":            `{"not":` + ok,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			a, err := ParseACL([]byte(in))
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("ParseACL = %v, %v; want ErrInvalidPolicy", a, err)
			}
		})
	}
}

func TestACLInLargerJSON(t *testing.T) {
	var cfg struct {
		Service string `json:"service"`
		ACL     ACL    `json:"acl"`
	}
	in := `{"service":"payments","acl":{"any_of":[{"expect":{"reference":{"measurement":"` + strings.Repeat("aa", 48) + `"},"match":["measurement"]}}]}}`
	if err := json.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	if r := Evaluate(cfg.ACL, snpClaims(), WithClock(fixedClock)); !r.Allowed() {
		t.Errorf("refused: %q", r.Reasons)
	}
	bad := `{"service":"payments","acl":{"any_of":[]}}`
	if err := json.Unmarshal([]byte(bad), &cfg); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("Unmarshal = %v", err)
	}
}

func TestMarshalInvalidACL(t *testing.T) {
	if _, err := json.Marshal(ACL{}); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("Marshal(zero ACL) = %v", err)
	}
}
