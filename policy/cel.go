package policy

import (
	"encoding/hex"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"

	"github.com/asylo-go/asylo/attest"
)

// Limits on CEL policies, in one place.
const (
	// MaxPolicySourceSize bounds a CEL policy's source, in Unicode code points.
	MaxPolicySourceSize = 16 << 10
	// maxParserRecursion bounds the parser's recursion (expression nesting).
	maxParserRecursion = 64
	// maxExpressionNodes bounds the expression nodes, macro expansions included.
	maxExpressionNodes = 4096
	// maxComprehensionNesting bounds nested comprehensions (all, exists, map, filter).
	maxComprehensionNesting = 2
	// DefaultCostLimit is the runtime cost limit of a CEL policy unless WithCostLimit sets
	// another. One unit is roughly one operation; typical policies cost under 100.
	DefaultCostLimit = 10_000
	// MaxCostLimit bounds WithCostLimit.
	MaxCostLimit = 1_000_000
)

// celClaims is attest.Claims as the CEL variable `claims` sees it (docs/policy.md). It is a
// native Go type exposed through ext.NativeTypes; its `cel` tags are the field names in CEL.
type celClaims struct {
	Platform      string            `cel:"platform"`
	Measurement   []byte            `cel:"measurement"`
	Measurements  map[string][]byte `cel:"measurements"`
	SignerID      []byte            `cel:"signer_id"`
	ProductID     uint64            `cel:"product_id"`
	SVN           uint64            `cel:"svn"`
	Debug         bool              `cel:"debug"`
	ConfigHash    []byte            `cel:"config_hash"`
	TCB           map[string]uint64 `cel:"tcb"`
	UserData      []byte            `cel:"user_data"`
	IssuedAt      time.Time         `cel:"issued_at"`
	PlatformKeyID []byte            `cel:"platform_key_id"`
}

func toCEL(c *attest.Claims) *celClaims {
	return &celClaims{
		Platform:      string(c.Platform),
		Measurement:   c.Measurement,
		Measurements:  c.Measurements,
		SignerID:      c.SignerID,
		ProductID:     uint64(c.ProductID),
		SVN:           uint64(c.SVN),
		Debug:         c.Debug,
		ConfigHash:    c.ConfigHash,
		TCB:           c.TCB,
		UserData:      c.UserData,
		IssuedAt:      c.IssuedAt,
		PlatformKeyID: c.PlatformKeyID,
	}
}

// celEnv is the one CEL environment every policy compiles in. A cel.Env is immutable and safe
// for concurrent use; it is built on first use because building it takes milliseconds.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[celClaims](), ext.ParseStructTags(true)),
		cel.Variable("claims", cel.ObjectType("policy.celClaims")),
		cel.Function("hex",
			cel.Overload("hex_bytes", []*cel.Type{cel.BytesType}, cel.StringType,
				cel.UnaryBinding(func(v ref.Val) ref.Val {
					b, ok := v.(types.Bytes)
					if !ok {
						return types.NewErr("hex: want bytes")
					}
					return types.String(hex.EncodeToString(b))
				}))),
		cel.Function("unhex",
			cel.Overload("unhex_string", []*cel.Type{cel.StringType}, cel.BytesType,
				cel.UnaryBinding(func(v ref.Val) ref.Val {
					s, ok := v.(types.String)
					if !ok {
						return types.NewErr("unhex: want string")
					}
					b, err := hex.DecodeString(string(s))
					if err != nil {
						return types.NewErr("unhex: %v", err)
					}
					return types.Bytes(b)
				}))),
		cel.ParserExpressionSizeLimit(MaxPolicySourceSize),
		cel.ParserRecursionLimit(maxParserRecursion),
		cel.ExpressionNodeLimit(maxExpressionNodes),
		cel.ASTValidators(cel.ValidateComprehensionNestingLimit(maxComprehensionNesting)),
	)
})

// compileCEL checks src in the policy environment and plans it under costLimit.
func compileCEL(src string, costLimit uint64) (cel.Program, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("%w: CEL environment: %v", ErrInvalidPolicy, err)
	}
	if len(src) > 4*MaxPolicySourceSize {
		return nil, fmt.Errorf("%w: CEL source longer than %d code points", ErrInvalidPolicy, MaxPolicySourceSize)
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%w: CEL: %v", ErrInvalidPolicy, iss.Err())
	}
	// The result type is checked here, not at evaluation: a policy that may return anything
	// but a bool is refused, dyn included.
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("%w: CEL policy returns %s; it must return bool", ErrInvalidPolicy, ast.OutputType())
	}
	prog, err := env.Program(ast,
		cel.CostLimit(costLimit),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: CEL: %v", ErrInvalidPolicy, err)
	}
	return prog, nil
}

// evalCEL runs prog over c. Anything but a clean true is a refusal.
func evalCEL(prog cel.Program, c *attest.Claims, out []refusal) []refusal {
	val, _, err := prog.Eval(map[string]any{"claims": toCEL(c)})
	if err != nil {
		return append(out, refusal{ErrPolicyError, "cel: " + err.Error()})
	}
	b, ok := val.(types.Bool)
	if !ok {
		return append(out, refusal{ErrPolicyError, fmt.Sprintf("cel: result is %s, not bool", val.Type())})
	}
	if !b {
		return append(out, refusal{ErrPolicyFalse, "cel: policy returned false"})
	}
	return out
}
