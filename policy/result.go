package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/asylo-go/asylo/attest"
)

// Status is the appraisal outcome, the trust tiers of EAR (draft-ietf-rats-ear-04 §3.2, after
// AR4SI). The zero Status is invalid and never allows anything. EAR's fourth tier, "none", is
// not used: a Policy always reaches a decision.
type Status uint8

// Statuses.
const (
	_ Status = iota
	// StatusAffirming: every check passed with no opt-out in play.
	StatusAffirming
	// StatusWarning: accepted, but only because the policy opted in to something weaker: a
	// debug enclave under AllowDebug, or the sim platform under AcceptSimPlatform.
	StatusWarning
	// StatusContraindicated: refused; Result.Reasons says why.
	StatusContraindicated
)

var statusNames = [...]string{StatusAffirming: "affirming", StatusWarning: "warning", StatusContraindicated: "contraindicated"}

// String returns the EAR name of s ("affirming", ...), or "invalid".
func (s Status) String() string {
	if s > 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "invalid"
}

// MarshalText encodes s by its EAR name and refuses the zero Status.
func (s Status) MarshalText() ([]byte, error) {
	if s.String() == "invalid" {
		return nil, fmt.Errorf("policy: invalid status %d", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes an EAR status name.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if n != "" && n == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("policy: unknown status %q", b)
}

// Result is a policy decision, modelled on an EAT Attestation Result (EAR,
// draft-ietf-rats-ear-04) for one attester. It is not signed: it is a local decision, and its
// JSON form is for logs and for passing on inside a process or an already-authenticated channel.
type Result struct {
	// Status is the decision. Use Allowed rather than comparing it.
	Status Status
	// PolicyID identifies the policy that decided (EAR's ear.appraisal-policy-id).
	PolicyID string
	// IssuedAt is when the decision was made, by the policy's clock (EAR's iat).
	IssuedAt time.Time
	// Claims are the claims that were appraised (not copied).
	Claims *attest.Claims
	// Reasons has one entry per refusal: which rule or expectation, which field, expected and
	// got (byte strings in hex). Empty when allowed.
	Reasons []string
	// Warnings says which opt-in made an allowed result a warning.
	Warnings []string
	// Err is nil when allowed; otherwise it joins one error per refusal, each wrapping its
	// sentinel (ErrMeasurementMismatch, ...), for errors.Is. It is not part of the JSON form.
	Err error
}

// Allowed reports whether the claims were accepted (affirming or warning).
func (r Result) Allowed() bool {
	return (r.Status == StatusAffirming || r.Status == StatusWarning) && r.Err == nil
}

// ResultProfile is the eat_profile of the JSON form of a Result.
const ResultProfile = "tag:github.com,2026:asylo-go/asylo/policy-result/v1"

// resultSubmod is the name of the one EAR submodule a Result describes.
const resultSubmod = "enclave"

// MaxResultJSONSize bounds the JSON form of a Result that ParseResult accepts.
const MaxResultJSONSize = 256 << 10

type jsonVerifierID struct {
	Developer string `json:"developer"`
	Build     string `json:"build"`
}

type jsonSubmod struct {
	Status   Status         `json:"ear.status"`
	PolicyID string         `json:"ear.appraisal-policy-id"`
	Claims   *attest.Claims `json:"asylo.claims,omitempty"`
	Reasons  []string       `json:"asylo.reasons,omitempty"`
	Warnings []string       `json:"asylo.warnings,omitempty"`
}

type jsonResult struct {
	Profile    string                `json:"eat_profile"`
	IssuedAt   int64                 `json:"iat"`
	VerifierID jsonVerifierID        `json:"ear.verifier-id"`
	Submods    map[string]jsonSubmod `json:"submods"`
}

// MarshalJSON encodes r in an EAR-shaped JSON object (docs/policy.md, "Result").
func (r Result) MarshalJSON() ([]byte, error) {
	if _, err := r.Status.MarshalText(); err != nil {
		return nil, err
	}
	return json.Marshal(jsonResult{
		Profile:    ResultProfile,
		IssuedAt:   r.IssuedAt.Unix(),
		VerifierID: jsonVerifierID{Developer: "asylo-go", Build: "github.com/asylo-go/asylo/policy"},
		Submods: map[string]jsonSubmod{resultSubmod: {
			Status: r.Status, PolicyID: r.PolicyID, Claims: r.Claims, Reasons: r.Reasons, Warnings: r.Warnings,
		}},
	})
}

// ParseResult decodes the JSON form of a Result. Err is not encoded: a parsed contraindicated
// Result has a nil Err and Allowed still reports false. IssuedAt has one-second resolution.
func ParseResult(b []byte) (Result, error) {
	if err := scanJSON(b, MaxResultJSONSize, 8); err != nil {
		return Result{}, fmt.Errorf("policy: result JSON: %v", err)
	}
	var j jsonResult
	if err := decodeStrict(b, &j); err != nil {
		return Result{}, fmt.Errorf("policy: result JSON: %v", err)
	}
	if j.Profile != ResultProfile {
		return Result{}, fmt.Errorf("policy: result JSON: eat_profile %q, want %q", j.Profile, ResultProfile)
	}
	sm, ok := j.Submods[resultSubmod]
	if len(j.Submods) != 1 || !ok {
		return Result{}, fmt.Errorf("policy: result JSON: want exactly the submodule %q", resultSubmod)
	}
	if sm.Status == 0 {
		return Result{}, fmt.Errorf("policy: result JSON: no ear.status")
	}
	return Result{
		Status:   sm.Status,
		PolicyID: sm.PolicyID,
		IssuedAt: time.Unix(j.IssuedAt, 0).UTC(),
		Claims:   sm.Claims,
		Reasons:  sm.Reasons,
		Warnings: sm.Warnings,
	}, nil
}

// UnmarshalJSON is ParseResult.
func (r *Result) UnmarshalJSON(b []byte) error {
	p, err := ParseResult(b)
	if err != nil {
		return err
	}
	*r = p
	return nil
}

func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
