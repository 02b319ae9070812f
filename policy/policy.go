package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/google/cel-go/cel"

	"github.com/asylo-go/asylo/attest"
)

// Option configures a Policy. Options are checked when the Policy is built.
type Option func(*config) error

type config struct {
	id         string
	allowDebug bool
	simKeys    [][32]byte
	costLimit  uint64
	now        func() time.Time
}

// AllowDebug accepts debug enclaves, whose memory the host can read. Without it every debug
// enclave is refused with ErrDebugNotAllowed, whatever the ACL or CEL policy says. An accepted
// debug enclave gets StatusWarning.
func AllowDebug() Option {
	return func(c *config) error { c.allowDebug = true; return nil }
}

// AcceptSimPlatform accepts sim-platform claims whose PlatformKeyID equals keyID (the SHA-256
// of the sim platform root's SubjectPublicKeyInfo). Without it all sim claims are refused with
// ErrPlatformNotAllowed. It may be given more than once. The sim platform offers no hardware
// protection: accepted sim claims get StatusWarning.
func AcceptSimPlatform(keyID [32]byte) Option {
	return func(c *config) error {
		if keyID == ([32]byte{}) {
			return fmt.Errorf("%w: AcceptSimPlatform: zero key id", ErrInvalidPolicy)
		}
		c.simKeys = append(c.simKeys, keyID)
		return nil
	}
}

// WithID sets the identifier reported as Result.PolicyID (for example "policy://payments/v3").
// By default it is derived from a hash of the policy and its options.
func WithID(id string) Option {
	return func(c *config) error {
		if id == "" || len(id) > 256 {
			return fmt.Errorf("%w: WithID: id must be 1 to 256 bytes", ErrInvalidPolicy)
		}
		c.id = id
		return nil
	}
}

// WithCostLimit sets the runtime cost limit of a CEL policy (default DefaultCostLimit, at most
// MaxCostLimit). A policy that exceeds it is refused with ErrPolicyError. ACL policies ignore
// it: their cost is bounded by MaxACLNodes.
func WithCostLimit(limit uint64) Option {
	return func(c *config) error {
		if limit == 0 || limit > MaxCostLimit {
			return fmt.Errorf("%w: WithCostLimit: %d not in 1..%d", ErrInvalidPolicy, limit, MaxCostLimit)
		}
		c.costLimit = limit
		return nil
	}
}

// WithClock sets the clock that stamps Result.IssuedAt (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock: nil clock", ErrInvalidPolicy)
		}
		c.now = now
		return nil
	}
}

func newConfig(opts []Option) (config, error) {
	c := config{costLimit: DefaultCostLimit, now: time.Now}
	for _, o := range opts {
		if o == nil {
			return config{}, fmt.Errorf("%w: nil option", ErrInvalidPolicy)
		}
		if err := o(&c); err != nil {
			return config{}, err
		}
	}
	return c, nil
}

// Policy decides whether claims are acceptable. It is immutable and safe for concurrent use.
// Build one with NewACLPolicy, Compile, or a preset (ExactMeasurement, SignerProduct).
type Policy struct {
	cfg  config
	acl  *ACL        // set for ACL policies
	prog cel.Program // set for CEL policies
}

// NewACLPolicy returns a Policy that accepts claims that satisfy acl and the default rules.
func NewACLPolicy(acl ACL, opts ...Option) (*Policy, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	canon, err := acl.MarshalJSON() // validates
	if err != nil {
		return nil, err
	}
	acl = cloneACL(acl)
	p := &Policy{cfg: cfg, acl: &acl}
	p.setID("acl", canon)
	return p, nil
}

// Compile compiles a CEL policy: an expression over the variable `claims` that must have type
// bool (docs/policy.md lists the fields and functions). It is compiled once; Evaluate runs it
// under the cost limit. The default rules apply as for every Policy.
func Compile(src string, opts ...Option) (*Policy, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	prog, err := compileCEL(src, cfg.costLimit)
	if err != nil {
		return nil, err
	}
	p := &Policy{cfg: cfg, prog: prog}
	p.setID("cel", []byte(src))
	return p, nil
}

// setID derives the default policy id from the policy body and the options that change
// decisions, so two policies that decide differently never share an id.
func (p *Policy) setID(kind string, body []byte) {
	if p.cfg.id != "" {
		return
	}
	h := sha256.New()
	fmt.Fprintf(h, "asylo-policy/v1\x00%s\x00%d\x00", kind, len(body))
	h.Write(body)
	fmt.Fprintf(h, "\x00allow_debug=%t\x00cost_limit=%d", p.cfg.allowDebug, p.cfg.costLimit)
	keys := slices.Clone(p.cfg.simKeys)
	slices.SortFunc(keys, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	for _, k := range keys {
		fmt.Fprintf(h, "\x00sim=%x", k)
	}
	p.cfg.id = kind + ":sha256:" + hex.EncodeToString(h.Sum(nil))
}

func cloneACL(a ACL) ACL {
	a.exp = a.exp.clone()
	if a.kids != nil {
		kids := make([]ACL, len(a.kids))
		for i := range a.kids {
			kids[i] = cloneACL(a.kids[i])
		}
		a.kids = kids
	}
	return a
}

// ID returns the policy's identifier, as reported in Result.PolicyID.
func (p *Policy) ID() string { return p.cfg.id }

// Evaluate appraises verified claims. It never fails open: a nil claims, an ACL mismatch, a
// CEL error or a CEL false all refuse, and the Result says why.
func (p *Policy) Evaluate(c *attest.Claims) Result {
	res := Result{PolicyID: p.cfg.id, IssuedAt: p.cfg.now(), Claims: c}
	if c == nil {
		res.Status = StatusContraindicated
		res.Reasons = []string{"no claims"}
		res.Err = fmt.Errorf("%w: no claims", ErrPolicyError)
		return res
	}
	var refusals []refusal

	// 1. Platform: hardware platforms are accepted here (their verifiers checked the vendor
	// chains); the sim platform only with a root key the policy named; anything else never.
	switch c.Platform {
	case attest.PlatformSNP, attest.PlatformTDX, attest.PlatformNitro:
	case attest.PlatformSim:
		if p.simKeyNamed(c.PlatformKeyID) {
			res.Warnings = append(res.Warnings, "sim platform accepted (AcceptSimPlatform "+hex.EncodeToString(c.PlatformKeyID)+"): no hardware protection")
		} else {
			refusals = append(refusals, refusal{ErrPlatformNotAllowed,
				"platform: sim platform key " + hexOrNone(c.PlatformKeyID) + " not named by AcceptSimPlatform"})
		}
	default:
		refusals = append(refusals, refusal{ErrPlatformNotAllowed, fmt.Sprintf("platform: unknown platform %q", c.Platform)})
	}

	// 2. Debug: refused unless the policy opted in with AllowDebug.
	if c.Debug {
		if p.cfg.allowDebug {
			res.Warnings = append(res.Warnings, "debug enclave accepted (AllowDebug): its memory is readable by the host")
		} else {
			refusals = append(refusals, refusal{ErrDebugNotAllowed, "debug: enclave is debuggable and the policy does not AllowDebug"})
		}
	}

	// 3. The policy body.
	if p.acl != nil {
		// Evaluate without building reasons first; explain only a refusal.
		if !p.acl.holds(c) {
			n := len(refusals)
			if _, refusals = p.acl.eval(c, "acl", refusals); len(refusals) == n {
				// The two passes disagree: a bug. Fail closed.
				refusals = append(refusals, refusal{ErrPolicyError, "acl: internal error: refused without a reason"})
			}
		}
	} else {
		refusals = evalCEL(p.prog, c, refusals)
	}

	if len(refusals) > 0 {
		res.Status = StatusContraindicated
		res.Warnings = nil
		res.Reasons = make([]string, len(refusals))
		for i, r := range refusals {
			res.Reasons[i] = r.reason
		}
		res.Err = errRefusals(refusals)
		return res
	}
	res.Status = StatusAffirming
	if len(res.Warnings) > 0 {
		res.Status = StatusWarning
	}
	return res
}

func (p *Policy) simKeyNamed(id []byte) bool {
	for _, k := range p.cfg.simKeys {
		if bytes.Equal(k[:], id) {
			return true
		}
	}
	return false
}

// Evaluate appraises claims against acl under the default rules and opts, building the Policy
// on the spot. An invalid acl or option gives a contraindicated Result wrapping
// ErrInvalidPolicy. To evaluate the same ACL many times, build it once with NewACLPolicy.
func Evaluate(acl ACL, c *attest.Claims, opts ...Option) Result {
	p, err := NewACLPolicy(acl, opts...)
	if err != nil {
		return Result{Status: StatusContraindicated, IssuedAt: time.Now(), Claims: c,
			Reasons: []string{err.Error()}, Err: err}
	}
	return p.Evaluate(c)
}

// ExactMeasurement returns an ACL policy that accepts exactly the enclave whose primary
// measurement is m (on any platform the default rules accept).
func ExactMeasurement(m []byte, opts ...Option) (*Policy, error) {
	return NewACLPolicy(Expect(Expectation{
		Name:      "exact measurement",
		Reference: Reference{Measurement: m},
		Match:     MatchSpec{Measurement: true},
	}), opts...)
}

// SignerProduct returns an ACL policy that accepts any enclave signed by signer for product
// productID with an SVN of at least minSVN (minSVN 0 accepts every version).
func SignerProduct(signer []byte, productID, minSVN uint32, opts ...Option) (*Policy, error) {
	return NewACLPolicy(Expect(Expectation{
		Name:      "signer, product, minimum SVN",
		Reference: Reference{SignerID: signer, ProductID: productID, MinSVN: minSVN},
		Match:     MatchSpec{SignerID: true, ProductID: true, MinSVN: minSVN != 0},
	}), opts...)
}
