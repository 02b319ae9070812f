// Package policy decides whether verified attestation claims (attest.Claims) are acceptable.
//
// It sits on the relying party's side, after a verifier (attest/sim, attest/snp, attest/nitro,
// ...) has checked evidence signatures and chains: it sees only claims that verifier vouched
// for, and it never parses evidence itself.
//
// Two ways to write a policy, one result type:
//
//   - Identity ACLs, modelled on Asylo's EnclaveIdentityExpectation and IdentityAclPredicate
//     (asylo/identity/identity_acl.proto): an Expectation is a reference identity plus a match
//     spec naming the fields that must match; expectations combine with AllOf, AnyOf and Not.
//     ACLs have a strict JSON form (docs/policy.md, "asylo-acl/v1").
//   - CEL expressions (https://cel.dev, via github.com/google/cel-go) over a typed variable
//     `claims`, compiled once with Compile, checked to return bool, and run under a cost limit.
//
// Both are wrapped in a Policy that also enforces the rules every policy has unless it opts out
// by name: debug enclaves are refused unless AllowDebug is given, and the sim platform is refused
// unless AcceptSimPlatform names its root key. Policy.Evaluate returns a Result modelled on the
// EAT Attestation Result (EAR, draft-ietf-rats-ear-04): a status (affirming, warning,
// contraindicated), the claims, the deciding policy's id, the time, and a reason per refusal.
// The Result is not a signed EAR token.
//
// Every refusal wraps one of the exported sentinel errors (ErrMeasurementMismatch, ...), so
// callers can branch with errors.Is. Specification: docs/policy.md.
package policy
