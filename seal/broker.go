package seal

import (
	"context"
	"fmt"

	"github.com/asylo-go/asylo/identity"
)

// A Broker is the trusted side of a key broker, for platforms without a
// sealing key of their own (TDX, Nitro): it holds the master secret and
// derives sealing keys for enclaves it has attested (docs/sealing.md §4.3).
//
// The attested channel verifies the enclave's evidence and passes the
// verified identity to Root; the broker never takes an identity from the
// enclave's request. The Root it returns answers that enclave's key requests
// and performs the checks of CheckKeyRequest against the verified identity,
// so the SVN and identity rules are enforced where the trust is. On the
// enclave side, the matching Root sends each KeyRequest over the attested
// channel.
type Broker interface {
	Root(ctx context.Context, verified identity.Identity) (Root, error)
}

// MemoryBroker is an in-process Broker for tests: it holds the master secret
// in memory and derives keys as in docs/sealing.md §4.2.
type MemoryBroker struct {
	d *secretDeriver
}

var _ Broker = (*MemoryBroker)(nil)

// NewMemoryBroker returns a broker with the 32-byte master secret. It refuses
// a secret that is not exactly 32 bytes or is all zero (ErrInvalidSecret).
func NewMemoryBroker(master []byte) (*MemoryBroker, error) {
	d, err := newSecretDeriver(master)
	if err != nil {
		return nil, err
	}
	return &MemoryBroker{d: d}, nil
}

// Root returns a Root for the enclave whose identity the caller has already
// verified by attestation.
func (b *MemoryBroker) Root(ctx context.Context, verified identity.Identity) (Root, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("seal: broker: %w", err)
	}
	if err := checkIdentity(verified); err != nil {
		return nil, err
	}
	return &brokerRoot{d: b.d, id: verified}, nil
}

// brokerRoot answers key requests for one verified identity.
type brokerRoot struct {
	d  *secretDeriver
	id identity.Identity
}

func (r *brokerRoot) Identity() identity.Identity { return r.id }
func (r *brokerRoot) KeyID() KeyID                { return r.d.keyID }
func (r *brokerRoot) DeriveKey(ctx context.Context, req KeyRequest) ([]byte, error) {
	return r.d.deriveFor(ctx, r.id, req)
}
