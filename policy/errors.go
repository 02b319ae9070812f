package policy

import "errors"

// Refusal kinds. A Result's Err wraps one of these per refusal (errors.Join of them all), and
// construction errors wrap ErrInvalidPolicy.
var (
	// ErrMeasurementMismatch: the primary measurement, or a named measurement register, differs
	// from the reference.
	ErrMeasurementMismatch = errors.New("policy: measurement does not match")
	// ErrSignerMismatch: the signer id differs from the reference.
	ErrSignerMismatch = errors.New("policy: signer id does not match")
	// ErrProductMismatch: the product id differs from the reference.
	ErrProductMismatch = errors.New("policy: product id does not match")
	// ErrSVNTooLow: the SVN, or a named TCB version, is below the required minimum.
	ErrSVNTooLow = errors.New("policy: security version below the minimum")
	// ErrDebugNotAllowed: the enclave is debuggable and the policy does not allow debug.
	ErrDebugNotAllowed = errors.New("policy: debug enclave not allowed")
	// ErrDebugMismatch: an expectation requires a debug enclave and the enclave is not one.
	ErrDebugMismatch = errors.New("policy: debug flag does not match")
	// ErrPlatformNotAllowed: the platform is unknown, differs from the reference, or is the sim
	// platform with a root key the policy did not name.
	ErrPlatformNotAllowed = errors.New("policy: platform not allowed")
	// ErrConfigMismatch: the measured configuration (config hash) differs from the reference.
	ErrConfigMismatch = errors.New("policy: config hash does not match")
	// ErrUserDataMismatch: the user data bound into the evidence differs from the reference.
	ErrUserDataMismatch = errors.New("policy: user data does not match")
	// ErrACLNotSatisfied: an ACL combinator refused (a Not whose operand matched, an AnyOf with
	// no matching branch); it is joined with the specific errors of the branches.
	ErrACLNotSatisfied = errors.New("policy: identity ACL not satisfied")
	// ErrPolicyFalse: a CEL policy evaluated to false.
	ErrPolicyFalse = errors.New("policy: CEL policy returned false")
	// ErrPolicyError: a CEL policy failed to evaluate (runtime error, cost limit exceeded, no
	// claims). Any evaluation error denies.
	ErrPolicyError = errors.New("policy: CEL policy evaluation failed")
	// ErrInvalidPolicy: a policy, ACL or option is malformed: CEL compile errors, ACL JSON
	// errors, expectations that check nothing, out-of-range limits.
	ErrInvalidPolicy = errors.New("policy: invalid policy")
)
