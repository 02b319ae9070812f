package seal

import (
	"encoding/binary"
	"fmt"
)

// MarshalBinary encodes r in the 50-byte form of docs/sealing.md §4.1, the form a key request
// takes when it crosses to a root outside the enclave (the sim platform, a key broker).
func (r KeyRequest) MarshalBinary() ([]byte, error) {
	if !r.Policy.valid() {
		return nil, fmt.Errorf("%w: key request with policy %d", ErrMalformed, r.Policy)
	}
	return r.appendTo(make([]byte, 0, requestSize)), nil
}

// UnmarshalBinary decodes a request made by MarshalBinary, refusing anything else: a wrong
// length, an unknown policy or flag, or fields the policy does not bind that are not zero.
func (r *KeyRequest) UnmarshalBinary(b []byte) error {
	if len(b) != requestSize {
		return fmt.Errorf("%w: key request of %d bytes, want %d", ErrMalformed, len(b), requestSize)
	}
	q := KeyRequest{Policy: Policy(b[0])}
	if !q.Policy.valid() {
		return fmt.Errorf("%w: key request policy %d", ErrMalformed, b[0])
	}
	if b[1]&^flagDebug != 0 {
		return fmt.Errorf("%w: key request flags %#x", ErrMalformed, b[1])
	}
	q.Debug = b[1]&flagDebug != 0
	q.ProductID = binary.BigEndian.Uint32(b[34:38])
	q.SVN = binary.BigEndian.Uint32(b[38:42])
	copy(q.KeyID[:], b[42:50])
	if q.Policy == PolicySigner {
		copy(q.SignerID[:], b[2:34])
	} else {
		copy(q.Measurement[:], b[2:34])
		if q.ProductID != 0 || q.SVN != 0 {
			return fmt.Errorf("%w: measurement key request with product id or SVN", ErrMalformed)
		}
	}
	*r = q
	return nil
}
