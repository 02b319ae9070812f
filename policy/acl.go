package policy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"

	"github.com/asylo-go/asylo/attest"
)

// Limits on ACLs, in one place. ParseACL and NewACLPolicy refuse anything beyond them.
const (
	// MaxACLJSONSize bounds the JSON form of an ACL.
	MaxACLJSONSize = 64 << 10
	// MaxACLDepth bounds the nesting of combinators: Expect(e) has depth 1, Not(Expect(e)) 2.
	MaxACLDepth = 16
	// MaxACLNodes bounds the number of nodes (expectations and combinators) in an ACL.
	MaxACLNodes = 256
	// MaxFieldBytes bounds a byte-string reference field (SHA-512 size; every platform's
	// measurements, signer ids and REPORT_DATA fit).
	MaxFieldBytes = 64
	// MaxMapEntries bounds the named measurements and TCB minimums of one reference.
	MaxMapEntries = 64
	// MaxNameLen bounds expectation names and measurement-register / TCB component names.
	MaxNameLen = 64
)

// Reference is the identity an Expectation compares claims against: Asylo's reference
// identity. Only the fields its MatchSpec names are compared; setting a field the match spec
// does not name is refused, so a reader never mistakes an ignored value for a check.
type Reference struct {
	// Platform the enclave must run on.
	Platform attest.Platform
	// Measurement must equal Claims.Measurement (MRENCLAVE in SGX terms).
	Measurement []byte
	// Measurements: each named register must be present in Claims.Measurements and equal.
	// Registers not named are not compared.
	Measurements map[string][]byte
	// SignerID must equal Claims.SignerID (MRSIGNER).
	SignerID []byte
	// ProductID must equal Claims.ProductID (ISVPRODID). Zero is a valid product id.
	ProductID uint32
	// MinSVN: Claims.SVN must be at least this (ISVSVN as a minimum). Must be non-zero when
	// matched: a minimum of zero checks nothing.
	MinSVN uint32
	// Debug is the value Claims.Debug must have. Matching debug=true describes a development
	// enclave; the policy must still AllowDebug for a debug enclave to be accepted.
	Debug bool
	// ConfigHash must equal Claims.ConfigHash (SEV-SNP HOST_DATA, TDX MRCONFIGID).
	ConfigHash []byte
	// MinTCB: each named TCB component must be present in Claims.TCB and at least this value.
	MinTCB map[string]uint64
	// UserData must equal Claims.UserData (a nonce or key hash the enclave bound).
	UserData []byte
	// PlatformKeyID must equal Claims.PlatformKeyID (the key that signed the evidence).
	PlatformKeyID []byte
}

// MatchSpec names the Reference fields that must match, as explicit booleans. A match spec
// naming nothing is refused: an expectation must check something.
type MatchSpec struct {
	Platform      bool
	Measurement   bool
	Measurements  bool
	SignerID      bool
	ProductID     bool
	MinSVN        bool
	Debug         bool
	ConfigHash    bool
	MinTCB        bool
	UserData      bool
	PlatformKeyID bool
}

// Expectation is a reference identity plus a match spec (Asylo's EnclaveIdentityExpectation).
type Expectation struct {
	// Name, optional, labels the expectation in refusal reasons (at most MaxNameLen bytes).
	Name      string
	Reference Reference
	Match     MatchSpec
}

// matchField describes one field of the match spec: its JSON name, its flag, and whether the
// reference sets it.
type matchField struct {
	name  string
	flag  func(*MatchSpec) *bool
	isSet func(*Reference) bool
}

// matchFields is in evaluation and encoding order.
var matchFields = []matchField{
	{"platform", func(m *MatchSpec) *bool { return &m.Platform }, func(r *Reference) bool { return r.Platform != "" }},
	{"measurement", func(m *MatchSpec) *bool { return &m.Measurement }, func(r *Reference) bool { return len(r.Measurement) > 0 }},
	{"measurements", func(m *MatchSpec) *bool { return &m.Measurements }, func(r *Reference) bool { return len(r.Measurements) > 0 }},
	{"signer_id", func(m *MatchSpec) *bool { return &m.SignerID }, func(r *Reference) bool { return len(r.SignerID) > 0 }},
	{"product_id", func(m *MatchSpec) *bool { return &m.ProductID }, func(r *Reference) bool { return r.ProductID != 0 }},
	{"min_svn", func(m *MatchSpec) *bool { return &m.MinSVN }, func(r *Reference) bool { return r.MinSVN != 0 }},
	{"debug", func(m *MatchSpec) *bool { return &m.Debug }, func(r *Reference) bool { return r.Debug }},
	{"config_hash", func(m *MatchSpec) *bool { return &m.ConfigHash }, func(r *Reference) bool { return len(r.ConfigHash) > 0 }},
	{"min_tcb", func(m *MatchSpec) *bool { return &m.MinTCB }, func(r *Reference) bool { return len(r.MinTCB) > 0 }},
	{"user_data", func(m *MatchSpec) *bool { return &m.UserData }, func(r *Reference) bool { return len(r.UserData) > 0 }},
	{"platform_key_id", func(m *MatchSpec) *bool { return &m.PlatformKeyID }, func(r *Reference) bool { return len(r.PlatformKeyID) > 0 }},
}

func knownPlatform(p attest.Platform) bool {
	switch p {
	case attest.PlatformSim, attest.PlatformSNP, attest.PlatformTDX, attest.PlatformNitro:
		return true
	}
	return false
}

func checkBytes(what string, b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: match names %s but the reference has none", ErrInvalidPolicy, what)
	}
	if len(b) > MaxFieldBytes {
		return fmt.Errorf("%w: reference %s is %d bytes, limit %d", ErrInvalidPolicy, what, len(b), MaxFieldBytes)
	}
	return nil
}

func checkName(what, name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %s name must be 1 to %d bytes", ErrInvalidPolicy, what, MaxNameLen)
	}
	return nil
}

// Validate reports whether e is usable: it matches at least one field, every matched field has
// a reference value within the limits, and no reference field is set that is not matched.
func (e *Expectation) Validate() error {
	if len(e.Name) > MaxNameLen {
		return fmt.Errorf("%w: expectation name longer than %d bytes", ErrInvalidPolicy, MaxNameLen)
	}
	r, m := &e.Reference, &e.Match
	matched := false
	for _, f := range matchFields {
		on := *f.flag(m)
		matched = matched || on
		if !on && f.isSet(r) {
			return fmt.Errorf("%w: reference sets %s but the match spec does not name it", ErrInvalidPolicy, f.name)
		}
	}
	if !matched {
		return fmt.Errorf("%w: expectation matches no field; name at least one in its match spec", ErrInvalidPolicy)
	}
	if m.Platform && !knownPlatform(r.Platform) {
		return fmt.Errorf("%w: unknown platform %q", ErrInvalidPolicy, r.Platform)
	}
	if m.Measurement {
		if err := checkBytes("measurement", r.Measurement); err != nil {
			return err
		}
	}
	if m.Measurements {
		if len(r.Measurements) == 0 || len(r.Measurements) > MaxMapEntries {
			return fmt.Errorf("%w: measurements must name 1 to %d registers", ErrInvalidPolicy, MaxMapEntries)
		}
		for k, v := range r.Measurements {
			if err := checkName("measurement register", k); err != nil {
				return err
			}
			if err := checkBytes("measurements["+k+"]", v); err != nil {
				return err
			}
		}
	}
	if m.SignerID {
		if err := checkBytes("signer_id", r.SignerID); err != nil {
			return err
		}
	}
	if m.MinSVN && r.MinSVN == 0 {
		return fmt.Errorf("%w: min_svn 0 checks nothing; leave min_svn out of the match spec", ErrInvalidPolicy)
	}
	if m.ConfigHash {
		if err := checkBytes("config_hash", r.ConfigHash); err != nil {
			return err
		}
	}
	if m.MinTCB {
		if len(r.MinTCB) == 0 || len(r.MinTCB) > MaxMapEntries {
			return fmt.Errorf("%w: min_tcb must name 1 to %d components", ErrInvalidPolicy, MaxMapEntries)
		}
		for k, v := range r.MinTCB {
			if err := checkName("TCB component", k); err != nil {
				return err
			}
			if v == 0 {
				return fmt.Errorf("%w: min_tcb[%q] is 0, which checks nothing", ErrInvalidPolicy, k)
			}
		}
	}
	if m.UserData {
		if err := checkBytes("user_data", r.UserData); err != nil {
			return err
		}
	}
	if m.PlatformKeyID {
		if err := checkBytes("platform_key_id", r.PlatformKeyID); err != nil {
			return err
		}
	}
	return nil
}

func (e Expectation) clone() Expectation {
	r := &e.Reference
	r.Measurement = slices.Clone(r.Measurement)
	r.SignerID = slices.Clone(r.SignerID)
	r.ConfigHash = slices.Clone(r.ConfigHash)
	r.UserData = slices.Clone(r.UserData)
	r.PlatformKeyID = slices.Clone(r.PlatformKeyID)
	if r.Measurements != nil {
		m := make(map[string][]byte, len(r.Measurements))
		for k, v := range r.Measurements {
			m[k] = slices.Clone(v)
		}
		r.Measurements = m
	}
	r.MinTCB = maps.Clone(r.MinTCB)
	return e
}

// refusal is one reason a policy refused: a message for people and a sentinel for programs.
type refusal struct {
	err    error
	reason string
}

func (f refusal) error() error { return fmt.Errorf("%w: %s", f.err, f.reason) }

func hexOrNone(b []byte) string {
	if len(b) == 0 {
		return "(none)"
	}
	return hex.EncodeToString(b)
}

// holds reports whether c matches e, without building reasons: the fast path of evaluation.
func (e *Expectation) holds(c *attest.Claims) bool {
	r, m := &e.Reference, &e.Match
	switch {
	case m.Platform && c.Platform != r.Platform,
		m.Measurement && !bytes.Equal(c.Measurement, r.Measurement),
		m.SignerID && !bytes.Equal(c.SignerID, r.SignerID),
		m.ProductID && c.ProductID != r.ProductID,
		m.MinSVN && c.SVN < r.MinSVN,
		m.Debug && c.Debug != r.Debug,
		m.ConfigHash && !bytes.Equal(c.ConfigHash, r.ConfigHash),
		m.UserData && !bytes.Equal(c.UserData, r.UserData),
		m.PlatformKeyID && !bytes.Equal(c.PlatformKeyID, r.PlatformKeyID):
		return false
	}
	if m.Measurements {
		for k, want := range r.Measurements {
			if got, ok := c.Measurements[k]; !ok || !bytes.Equal(got, want) {
				return false
			}
		}
	}
	if m.MinTCB {
		for k, min := range r.MinTCB {
			if got, ok := c.TCB[k]; !ok || got < min {
				return false
			}
		}
	}
	return true
}

// check compares c against e and returns every mismatch, labelled with where.
func (e *Expectation) check(c *attest.Claims, where string, out []refusal) []refusal {
	r, m := &e.Reference, &e.Match
	label := where
	if e.Name != "" {
		label = where + " (" + strconv.Quote(e.Name) + ")"
	}
	add := func(err error, field, expected, got string) {
		out = append(out, refusal{err, fmt.Sprintf("%s: %s: expected %s, got %s", label, field, expected, got)})
	}
	if m.Platform && c.Platform != r.Platform {
		add(ErrPlatformNotAllowed, "platform", strconv.Quote(string(r.Platform)), strconv.Quote(string(c.Platform)))
	}
	if m.Measurement && !bytes.Equal(c.Measurement, r.Measurement) {
		add(ErrMeasurementMismatch, "measurement", hexOrNone(r.Measurement), hexOrNone(c.Measurement))
	}
	if m.Measurements {
		for _, k := range sortedKeys(r.Measurements) {
			got, ok := c.Measurements[k]
			if !ok || !bytes.Equal(got, r.Measurements[k]) {
				add(ErrMeasurementMismatch, "measurements["+strconv.Quote(k)+"]", hexOrNone(r.Measurements[k]), hexOrNone(got))
			}
		}
	}
	if m.SignerID && !bytes.Equal(c.SignerID, r.SignerID) {
		add(ErrSignerMismatch, "signer_id", hexOrNone(r.SignerID), hexOrNone(c.SignerID))
	}
	if m.ProductID && c.ProductID != r.ProductID {
		add(ErrProductMismatch, "product_id", fmt.Sprint(r.ProductID), fmt.Sprint(c.ProductID))
	}
	if m.MinSVN && c.SVN < r.MinSVN {
		add(ErrSVNTooLow, "svn", fmt.Sprintf(">= %d", r.MinSVN), fmt.Sprint(c.SVN))
	}
	if m.Debug && c.Debug != r.Debug {
		err := ErrDebugMismatch
		if c.Debug {
			err = ErrDebugNotAllowed
		}
		add(err, "debug", fmt.Sprint(r.Debug), fmt.Sprint(c.Debug))
	}
	if m.ConfigHash && !bytes.Equal(c.ConfigHash, r.ConfigHash) {
		add(ErrConfigMismatch, "config_hash", hexOrNone(r.ConfigHash), hexOrNone(c.ConfigHash))
	}
	if m.MinTCB {
		for _, k := range sortedKeys(r.MinTCB) {
			got, ok := c.TCB[k]
			if !ok {
				add(ErrSVNTooLow, "tcb["+strconv.Quote(k)+"]", fmt.Sprintf(">= %d", r.MinTCB[k]), "(none)")
			} else if got < r.MinTCB[k] {
				add(ErrSVNTooLow, "tcb["+strconv.Quote(k)+"]", fmt.Sprintf(">= %d", r.MinTCB[k]), fmt.Sprint(got))
			}
		}
	}
	if m.UserData && !bytes.Equal(c.UserData, r.UserData) {
		add(ErrUserDataMismatch, "user_data", hexOrNone(r.UserData), hexOrNone(c.UserData))
	}
	if m.PlatformKeyID && !bytes.Equal(c.PlatformKeyID, r.PlatformKeyID) {
		add(ErrPlatformNotAllowed, "platform_key_id", hexOrNone(r.PlatformKeyID), hexOrNone(c.PlatformKeyID))
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

type aclOp uint8

const (
	_ aclOp = iota // the zero ACL is invalid
	opExpect
	opAllOf
	opAnyOf
	opNot
)

// ACL is an identity ACL: an Expectation, or AllOf / AnyOf / Not over ACLs (Asylo's
// IdentityAclPredicate). Build one with Expect, AllOf, AnyOf and Not, or ParseACL; the zero
// ACL is invalid. An ACL is checked when a Policy is built from it (NewACLPolicy) or when it is
// parsed, not when it is assembled.
type ACL struct {
	op   aclOp
	exp  Expectation
	kids []ACL
}

// Expect returns the ACL that holds when e matches. e is copied.
func Expect(e Expectation) ACL { return ACL{op: opExpect, exp: e.clone()} }

// AllOf returns the ACL that holds when every one of acls holds. It needs at least one.
func AllOf(acls ...ACL) ACL { return ACL{op: opAllOf, kids: slices.Clone(acls)} }

// AnyOf returns the ACL that holds when at least one of acls holds. It needs at least one.
func AnyOf(acls ...ACL) ACL { return ACL{op: opAnyOf, kids: slices.Clone(acls)} }

// Not returns the ACL that holds when acl does not. Not inverts only the identity match: the
// rules every Policy applies (debug, platform) sit outside the ACL and cannot be negated.
func Not(acl ACL) ACL { return ACL{op: opNot, kids: []ACL{acl}} }

// Validate reports whether a is well formed: no zero ACLs, no empty AllOf / AnyOf, every
// expectation valid, and within MaxACLDepth and MaxACLNodes.
func (a ACL) Validate() error {
	nodes := 0
	return a.validate(1, &nodes, "acl")
}

func (a *ACL) validate(depth int, nodes *int, where string) error {
	*nodes++
	if *nodes > MaxACLNodes {
		return fmt.Errorf("%w: ACL has more than %d nodes", ErrInvalidPolicy, MaxACLNodes)
	}
	if depth > MaxACLDepth {
		return fmt.Errorf("%w: ACL nested deeper than %d", ErrInvalidPolicy, MaxACLDepth)
	}
	switch a.op {
	case opExpect:
		if err := a.exp.Validate(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		return nil
	case opAllOf, opAnyOf:
		if len(a.kids) == 0 {
			return fmt.Errorf("%w: %s: %s needs at least one operand", ErrInvalidPolicy, where, a.op.name())
		}
	case opNot:
		if len(a.kids) != 1 {
			return fmt.Errorf("%w: %s: not needs exactly one operand", ErrInvalidPolicy, where)
		}
	default:
		return fmt.Errorf("%w: %s: zero ACL; build ACLs with Expect, AllOf, AnyOf or Not", ErrInvalidPolicy, where)
	}
	for i := range a.kids {
		if err := a.kids[i].validate(depth+1, nodes, a.kids[i].path(where, a.op, i)); err != nil {
			return err
		}
	}
	return nil
}

func (o aclOp) name() string {
	switch o {
	case opExpect:
		return "expect"
	case opAllOf:
		return "all_of"
	case opAnyOf:
		return "any_of"
	case opNot:
		return "not"
	}
	return "invalid"
}

// path names child i of a node with operator op at where, e.g. acl.all_of[1].
func (a *ACL) path(where string, op aclOp, i int) string {
	if op == opNot {
		return where + ".not"
	}
	return where + "." + op.name() + "[" + strconv.Itoa(i) + "]"
}

// holds reports whether a holds for c, without building reasons.
func (a *ACL) holds(c *attest.Claims) bool {
	switch a.op {
	case opExpect:
		return a.exp.holds(c)
	case opAllOf:
		for i := range a.kids {
			if !a.kids[i].holds(c) {
				return false
			}
		}
		return true
	case opAnyOf:
		for i := range a.kids {
			if a.kids[i].holds(c) {
				return true
			}
		}
		return false
	case opNot:
		return !a.kids[0].holds(c)
	}
	return false
}

// eval reports whether a holds for c and, when it does not, why. It evaluates every operand of
// AllOf so that all reasons are reported, and stops AnyOf at the first operand that holds.
func (a *ACL) eval(c *attest.Claims, where string, out []refusal) (bool, []refusal) {
	switch a.op {
	case opExpect:
		n := len(out)
		out = a.exp.check(c, where, out)
		return len(out) == n, out
	case opAllOf:
		ok := true
		for i := range a.kids {
			var kidOK bool
			kidOK, out = a.kids[i].eval(c, a.path(where, opAllOf, i), out)
			ok = ok && kidOK
		}
		return ok, out
	case opAnyOf:
		n := len(out)
		for i := range a.kids {
			var kidOK bool
			kidOK, out = a.kids[i].eval(c, a.path(where, opAnyOf, i), out)
			if kidOK {
				return true, out[:n]
			}
		}
		return false, append(out, refusal{ErrACLNotSatisfied, where + ": any_of: no operand matched"})
	case opNot:
		if a.kids[0].holds(c) {
			return false, append(out, refusal{ErrACLNotSatisfied, where + ": not: the negated ACL matched " + a.kids[0].describe()})
		}
		return true, out
	}
	return false, append(out, refusal{ErrInvalidPolicy, where + ": zero ACL"})
}

// describe summarises an ACL for a reason: its JSON form, cut short.
func (a *ACL) describe() string {
	b, err := a.MarshalJSON()
	if err != nil {
		return a.op.name()
	}
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// errRefusals joins the errors of refusals.
func errRefusals(rs []refusal) error {
	errs := make([]error, len(rs))
	for i, r := range rs {
		errs[i] = r.error()
	}
	return errors.Join(errs...)
}
