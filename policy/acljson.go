package policy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/asylo-go/asylo/attest"
)

// The JSON form of an ACL is specified in docs/policy.md ("asylo-acl/v1"). Parsing is strict:
// the input must be valid UTF-8 JSON within MaxACLJSONSize, with no duplicate keys, no nulls,
// no unknown or mis-cased keys, no trailing data, byte strings in lower-case hex, and the ACL
// it describes must pass ACL.Validate.

// maxJSONDepth: each ACL level is an object and an array; an expectation adds its own object,
// the reference, and a map.
const maxJSONDepth = 2*MaxACLDepth + 4

// ParseACL decodes and validates the JSON form of an ACL.
func ParseACL(b []byte) (ACL, error) {
	if err := scanJSON(b, MaxACLJSONSize, maxJSONDepth); err != nil {
		return ACL{}, fmt.Errorf("%w: ACL JSON: %v", ErrInvalidPolicy, err)
	}
	var a ACL
	if err := decodeNode(b, &a, "acl", 1); err != nil {
		return ACL{}, err
	}
	if err := a.Validate(); err != nil {
		return ACL{}, err
	}
	return a, nil
}

// UnmarshalJSON is ParseACL, so an ACL can sit in a larger JSON configuration.
func (a *ACL) UnmarshalJSON(b []byte) error {
	p, err := ParseACL(b)
	if err != nil {
		return err
	}
	*a = p
	return nil
}

// scanJSON checks what encoding/json lets through: size, UTF-8, nesting depth, duplicate
// object keys, null values and trailing data. The top level must be an object.
func scanJSON(b []byte, maxSize, maxDepth int) error {
	if len(b) > maxSize {
		return fmt.Errorf("%d bytes, limit %d", len(b), maxSize)
	}
	if !utf8.Valid(b) {
		return errors.New("not valid UTF-8")
	}
	type frame struct {
		obj     bool
		wantKey bool
		keys    map[string]bool
	}
	var stack []*frame
	// valueDone records that a value ended inside the innermost container.
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].wantKey = true
		}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	for {
		t, err := d.Token()
		if err == io.EOF {
			return errors.New("unexpected end of input")
		}
		if err != nil {
			return err
		}
		if len(stack) == 0 && t != json.Delim('{') {
			return errors.New("top level must be an object")
		}
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
			if k, ok := t.(string); ok {
				top := stack[n-1]
				if top.keys[k] {
					return fmt.Errorf("duplicate key %q", k)
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxDepth {
				return fmt.Errorf("nested deeper than %d", maxDepth)
			}
			obj := t == json.Delim('{')
			f := &frame{obj: obj, wantKey: obj}
			if obj {
				f.keys = map[string]bool{}
			}
			stack = append(stack, f)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				if _, err := d.Token(); err != io.EOF {
					return errors.New("trailing data after the JSON value")
				}
				return nil
			}
			valueDone()
		case nil:
			return errors.New("null is not allowed")
		default:
			valueDone()
		}
	}
}

// object splits a JSON object into its members and refuses keys not in allowed.
func object(b []byte, where string, allowed ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: want an object: %v", ErrInvalidPolicy, where, err)
	}
	for k := range m {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s: unknown key %q", ErrInvalidPolicy, where, k)
		}
	}
	return m, nil
}

func decodeNode(b []byte, a *ACL, where string, depth int) error {
	if depth > MaxACLDepth {
		return fmt.Errorf("%w: ACL nested deeper than %d", ErrInvalidPolicy, MaxACLDepth)
	}
	m, err := object(b, where, "expect", "all_of", "any_of", "not")
	if err != nil {
		return err
	}
	if len(m) != 1 {
		return fmt.Errorf("%w: %s: an ACL node has exactly one of expect, all_of, any_of, not", ErrInvalidPolicy, where)
	}
	for k, v := range m {
		switch k {
		case "expect":
			a.op = opExpect
			return decodeExpectation(v, &a.exp, where+".expect")
		case "not":
			a.op = opNot
			a.kids = make([]ACL, 1)
			return decodeNode(v, &a.kids[0], where+".not", depth+1)
		default:
			var raws []json.RawMessage
			if err := json.Unmarshal(v, &raws); err != nil {
				return fmt.Errorf("%w: %s.%s: want an array: %v", ErrInvalidPolicy, where, k, err)
			}
			if len(raws) == 0 || len(raws) > MaxACLNodes {
				return fmt.Errorf("%w: %s.%s: needs 1 to %d operands", ErrInvalidPolicy, where, k, MaxACLNodes)
			}
			a.op = opAllOf
			if k == "any_of" {
				a.op = opAnyOf
			}
			a.kids = make([]ACL, len(raws))
			for i, r := range raws {
				if err := decodeNode(r, &a.kids[i], fmt.Sprintf("%s.%s[%d]", where, k, i), depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

var referenceKeys = func() []string {
	ks := make([]string, len(matchFields))
	for i, f := range matchFields {
		ks[i] = f.name
	}
	return ks
}()

func decodeExpectation(b []byte, e *Expectation, where string) error {
	m, err := object(b, where, "name", "reference", "match")
	if err != nil {
		return err
	}
	if v, ok := m["name"]; ok {
		if err := strict(v, &e.Name, where+".name"); err != nil {
			return err
		}
		if e.Name == "" {
			return fmt.Errorf("%w: %s.name: empty; leave it out instead", ErrInvalidPolicy, where)
		}
	}
	// match: a list of field names, each at most once.
	var names []string
	if err := strict(m["match"], &names, where+".match"); err != nil {
		return err
	}
	for _, n := range names {
		var f *matchField
		for i := range matchFields {
			if matchFields[i].name == n {
				f = &matchFields[i]
			}
		}
		if f == nil {
			return fmt.Errorf("%w: %s.match: unknown field %q", ErrInvalidPolicy, where, n)
		}
		p := f.flag(&e.Match)
		if *p {
			return fmt.Errorf("%w: %s.match: %q named twice", ErrInvalidPolicy, where, n)
		}
		*p = true
	}
	ref, ok := m["reference"]
	if !ok {
		return fmt.Errorf("%w: %s: no reference", ErrInvalidPolicy, where)
	}
	where += ".reference"
	rm, err := object(ref, where, referenceKeys...)
	if err != nil {
		return err
	}
	// Every key present in the reference must be matched, even a zero value.
	for _, f := range matchFields {
		if _, present := rm[f.name]; present && !*f.flag(&e.Match) {
			return fmt.Errorf("%w: %s: sets %s but the match spec does not name it", ErrInvalidPolicy, where, f.name)
		}
	}
	r := &e.Reference
	for k, v := range rm {
		w := where + "." + k
		var err error
		switch k {
		case "platform":
			var s string
			err = strict(v, &s, w)
			r.Platform = attest.Platform(s)
		case "measurement":
			r.Measurement, err = hexField(v, w)
		case "signer_id":
			r.SignerID, err = hexField(v, w)
		case "config_hash":
			r.ConfigHash, err = hexField(v, w)
		case "user_data":
			r.UserData, err = hexField(v, w)
		case "platform_key_id":
			r.PlatformKeyID, err = hexField(v, w)
		case "product_id":
			err = strict(v, &r.ProductID, w)
		case "min_svn":
			err = strict(v, &r.MinSVN, w)
		case "debug":
			err = strict(v, &r.Debug, w)
		case "measurements":
			var hm map[string]json.RawMessage
			if err = strict(v, &hm, w); err == nil {
				if len(hm) > MaxMapEntries {
					return fmt.Errorf("%w: %s: more than %d registers", ErrInvalidPolicy, w, MaxMapEntries)
				}
				r.Measurements = make(map[string][]byte, len(hm))
				for name, hv := range hm {
					if r.Measurements[name], err = hexField(hv, w+"."+name); err != nil {
						break
					}
				}
			}
		case "min_tcb":
			err = strict(v, &r.MinTCB, w)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// strict decodes one JSON value of a fixed Go type.
func strict(b []byte, v any, where string) error {
	if b == nil {
		return fmt.Errorf("%w: %s: missing", ErrInvalidPolicy, where)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidPolicy, where, err)
	}
	return nil
}

// hexField decodes a byte string written as lower-case hex.
func hexField(b []byte, where string) ([]byte, error) {
	var s string
	if err := strict(b, &s, where); err != nil {
		return nil, err
	}
	if len(s) > 2*MaxFieldBytes {
		return nil, fmt.Errorf("%w: %s: longer than %d bytes", ErrInvalidPolicy, where, MaxFieldBytes)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, fmt.Errorf("%w: %s: not lower-case hex", ErrInvalidPolicy, where)
		}
	}
	out, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidPolicy, where, err)
	}
	return out, nil
}

// JSON encoding. Field order is fixed, so an ACL has one canonical encoding.

type jsonExpectation struct {
	Name      string         `json:"name,omitempty"`
	Reference map[string]any `json:"reference"`
	Match     []string       `json:"match"`
}

type jsonNode struct {
	Expect *jsonExpectation `json:"expect,omitempty"`
	AllOf  []*jsonNode      `json:"all_of,omitempty"`
	AnyOf  []*jsonNode      `json:"any_of,omitempty"`
	Not    *jsonNode        `json:"not,omitempty"`
}

// MarshalJSON encodes a valid ACL in its canonical JSON form. It refuses invalid ACLs, so what
// it writes ParseACL reads back.
func (a ACL) MarshalJSON() ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(a.toJSON())
}

func (a *ACL) toJSON() *jsonNode {
	switch a.op {
	case opExpect:
		return &jsonNode{Expect: a.exp.toJSON()}
	case opNot:
		return &jsonNode{Not: a.kids[0].toJSON()}
	}
	kids := make([]*jsonNode, len(a.kids))
	for i := range a.kids {
		kids[i] = a.kids[i].toJSON()
	}
	if a.op == opAllOf {
		return &jsonNode{AllOf: kids}
	}
	return &jsonNode{AnyOf: kids}
}

func (e *Expectation) toJSON() *jsonExpectation {
	r := &e.Reference
	j := &jsonExpectation{Name: e.Name, Reference: map[string]any{}, Match: []string{}}
	for _, f := range matchFields {
		if !*f.flag(&e.Match) {
			continue
		}
		j.Match = append(j.Match, f.name)
		var v any
		switch f.name {
		case "platform":
			v = string(r.Platform)
		case "measurement":
			v = hex.EncodeToString(r.Measurement)
		case "measurements":
			hm := make(map[string]string, len(r.Measurements))
			for k, b := range r.Measurements {
				hm[k] = hex.EncodeToString(b)
			}
			v = hm
		case "signer_id":
			v = hex.EncodeToString(r.SignerID)
		case "product_id":
			v = r.ProductID
		case "min_svn":
			v = r.MinSVN
		case "debug":
			v = r.Debug
		case "config_hash":
			v = hex.EncodeToString(r.ConfigHash)
		case "min_tcb":
			v = r.MinTCB
		case "user_data":
			v = hex.EncodeToString(r.UserData)
		case "platform_key_id":
			v = hex.EncodeToString(r.PlatformKeyID)
		}
		j.Reference[f.name] = v
	}
	return j
}
