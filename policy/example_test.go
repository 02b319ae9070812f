package policy_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/asylo-go/asylo/attest"
	"github.com/asylo-go/asylo/policy"
)

func exampleClaims() *attest.Claims {
	return &attest.Claims{
		Platform:    attest.PlatformSNP,
		Measurement: bytes.Repeat([]byte{0xaa}, 48),
		SignerID:    bytes.Repeat([]byte{0x51}, 48),
		ProductID:   7,
		SVN:         2,
		TCB:         map[string]uint64{"snp.microcode": 219},
	}
}

func ExampleCompile() {
	p, err := policy.Compile(`
		hex(claims.signer_id).startsWith('5151') &&
		claims.product_id == 7u &&
		claims.svn >= 2u &&
		claims.tcb['snp.microcode'] >= 200u`)
	if err != nil {
		panic(err)
	}
	r := p.Evaluate(exampleClaims())
	fmt.Println(r.Status, r.Allowed())
	// Output: affirming true
}

func ExampleCompile_refused() {
	p, _ := policy.Compile(`claims.svn >= 3u`)
	r := p.Evaluate(exampleClaims())
	fmt.Println(r.Status, errors.Is(r.Err, policy.ErrPolicyFalse))
	fmt.Println(r.Reasons)
	// Output:
	// contraindicated true
	// [cel: policy returned false]
}

func ExampleSignerProduct() {
	p, _ := policy.SignerProduct(bytes.Repeat([]byte{0x51}, 48), 7, 3)
	r := p.Evaluate(exampleClaims())
	fmt.Println(r.Allowed(), errors.Is(r.Err, policy.ErrSVNTooLow))
	fmt.Println(r.Reasons[0])
	// Output:
	// false true
	// acl ("signer, product, minimum SVN"): svn: expected >= 3, got 2
}

func ExampleAcceptSimPlatform() {
	// The sim platform is refused unless the policy names its root key.
	var simRoot [32]byte
	hex.Decode(simRoot[:], []byte("4b1d6e5f3c2a190817263544536271808f9eadbccbdae9f80716253443526170"))
	c := exampleClaims()
	c.Platform, c.PlatformKeyID = attest.PlatformSim, simRoot[:]

	strict, _ := policy.ExactMeasurement(c.Measurement)
	r := strict.Evaluate(c)
	fmt.Println(r.Status, errors.Is(r.Err, policy.ErrPlatformNotAllowed))

	dev, _ := policy.ExactMeasurement(c.Measurement, policy.AcceptSimPlatform(simRoot))
	r = dev.Evaluate(c)
	fmt.Println(r.Status, r.Allowed())
	// Output:
	// contraindicated true
	// warning true
}

func ExampleParseACL() {
	// Signed by 5151..., product 7, SVN >= 2, but not the revoked build aaaa....
	acl, err := policy.ParseACL([]byte(`{"all_of": [
		{"expect": {"reference": {"signer_id": "` + hex.EncodeToString(bytes.Repeat([]byte{0x51}, 48)) + `", "product_id": 7, "min_svn": 2},
		            "match": ["signer_id", "product_id", "min_svn"]}},
		{"not": {"expect": {"name": "revoked build",
		                    "reference": {"measurement": "` + hex.EncodeToString(bytes.Repeat([]byte{0xaa}, 48)) + `"},
		                    "match": ["measurement"]}}}
	]}`))
	if err != nil {
		panic(err)
	}
	p, _ := policy.NewACLPolicy(acl, policy.WithID("policy://example/v1"),
		policy.WithClock(func() time.Time { return time.Unix(0, 0) }))
	r := p.Evaluate(exampleClaims())
	fmt.Println(r.PolicyID, r.Status, errors.Is(r.Err, policy.ErrACLNotSatisfied))
	// Output: policy://example/v1 contraindicated true
}
