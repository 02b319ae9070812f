// Package evidencetest holds the checks the evidence verifiers' tests share: every refusal wraps
// exactly one of the package's sentinel errors, and no single-byte change of genuine evidence
// verifies.
package evidencetest

import (
	"bytes"
	"errors"
	"testing"
)

// OneSentinel fails tb unless err wraps exactly one of sentinels.
func OneSentinel(tb testing.TB, err error, sentinels []error) {
	tb.Helper()
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		tb.Fatalf("error %q wraps %d sentinels, want 1", err, n)
	}
}

// Flips flips every step-th byte of data (XOR 0xff), one at a time, and has verify check each
// copy: none may verify, and each refusal must wrap exactly one of sentinels. It logs and
// returns how many refusals each sentinel took.
func Flips(tb testing.TB, data []byte, step int, verify func([]byte) error, sentinels []error) map[string]int {
	tb.Helper()
	counts := map[string]int{}
	for i := 0; i < len(data); i += step {
		b := bytes.Clone(data)
		b[i] ^= 0xff
		err := verify(b)
		if err == nil {
			tb.Errorf("flip of byte %#x verifies", i)
			continue
		}
		OneSentinel(tb, err, sentinels)
		for _, s := range sentinels {
			if errors.Is(err, s) {
				counts[s.Error()]++
			}
		}
	}
	tb.Logf("refusals by sentinel: %v", counts)
	return counts
}
