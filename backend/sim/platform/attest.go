package platform

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/veraison/go-cose"

	"github.com/asylo-go/asylo/attest"
	simev "github.com/asylo-go/asylo/attest/sim"
	"github.com/asylo-go/asylo/identity"
)

// Attest signs sim evidence (docs/evidence-sim.md) for an enclave of identity id, binding
// userData (at most 64 bytes). The identity must be the one the sim loader measured and verified:
// the platform vouches for it.
func (p *Platform) Attest(id identity.Identity, userData []byte, now time.Time) (attest.Evidence, error) {
	if len(userData) > attest.MaxUserData {
		return attest.Evidence{}, fmt.Errorf("sim platform: user data of %d bytes exceeds %d", len(userData), attest.MaxUserData)
	}
	if id.Measurement.IsZero() {
		return attest.Evidence{}, fmt.Errorf("sim platform: refusing to attest an enclave without a measurement")
	}
	keyID := p.KeyID()
	cs := simev.ClaimsSet{
		Profile:     simev.Profile,
		IssuedAt:    uint64(max(now.Unix(), 1)),
		UEID:        append([]byte{0x01}, keyID[:]...),
		DbgStat:     1,
		Measurement: id.Measurement[:],
		UserData:    append([]byte{}, userData...),
	}
	if id.Debug {
		cs.DbgStat = 0
	}
	if id.Signed {
		cs.SignerID = id.SignerID[:]
		cs.ProductID, cs.SVN = uint64(id.ProductID), uint64(id.SVN)
	}
	payload, err := cs.Marshal()
	if err != nil {
		return attest.Evidence{}, err
	}
	signer, err := cose.NewSigner(cose.AlgorithmEdDSA, p.attestKey)
	if err != nil {
		return attest.Evidence{}, err
	}
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(cose.AlgorithmEdDSA)
	msg.Headers.Protected[cose.HeaderLabelX5Chain] = p.attestCert.Raw
	msg.Payload = payload
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		return attest.Evidence{}, fmt.Errorf("sim platform: signing: %w", err)
	}
	tok, err := msg.MarshalCBOR()
	if err != nil {
		return attest.Evidence{}, err
	}
	return attest.Evidence{Format: attest.FormatSim, Data: tok}, nil
}
