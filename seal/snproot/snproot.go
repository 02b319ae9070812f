// Package snproot is the SEV-SNP sealing root: a seal.Root whose policy keys
// come from the AMD secure processor's MSG_KEY_REQ (the SNP "derived key"),
// sent through the guest's /dev/sev-guest device.
//
// Specification: docs/sealing.md §4.4. In short, for a seal.KeyRequest the
// root, after the checks of seal.CheckKeyRequest, asks the firmware for a key
// derived from the chip's VCEK and the guest's own launch values:
//
//   - ROOT_KEY_SELECT = VCEK; VMPL = the guest's VMPL (Config.VMPL);
//   - measurement policy: GUEST_POLICY | MEASUREMENT | TCB_VERSION;
//   - signer policy: GUEST_POLICY | FAMILY_ID | IMAGE_ID | GUEST_SVN |
//     TCB_VERSION, with GUEST_SVN = the request's SVN (the firmware refuses
//     one above the launch GUEST_SVN, as SGX refuses an ISVSVN above the
//     enclave's);
//   - TCB_VERSION = the request's key id read as a TCB version (the firmware
//     refuses one above the committed TCB, the CPUSVN analogue).
//
// The 32-byte derived key then takes the place of the secret S of §4.2: the
// policy key is HKDF over the 50-byte request, so blobs have the format and
// the key-id semantics of every other root. The key id of a blob is the TCB
// version it was sealed at.
//
// Security: MSG_KEY_REQ cannot mix the ID key or author key into a key. A
// host that can launch its own image on the same chip with an ID block
// carrying the same FAMILY_ID, IMAGE_ID, GUEST_SVN and POLICY derives the
// same signer-policy key. The signer policy is therefore only served when
// the Config says the ID block is trusted (Config.IDBlockTrusted); the
// measurement policy, which the firmware binds to the launch digest, has no
// such caveat.
package snproot

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"

	labi "github.com/google/go-sev-guest/client/linuxabi"

	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/seal"
)

// Labels of docs/sealing.md §4.2, applied to the derived key (§4.4).
const (
	labelRootSalt  = "asylo-seal/v1 root"
	labelPolicyKey = "asylo-seal/v1 policy key\x00"
)

// Config describes the guest the root serves. The root cannot check it: it
// trusts the caller (the guest's trusted runtime, which read its own
// attestation report) as seal.NewSoftwareRoot trusts its identity. A Config
// that does not match the launch makes the firmware refuse key requests
// (ErrDevice) or yields keys that another launch with the same values shares.
type Config struct {
	// Identity is the asylo identity of the guest. Its debug flag must be the
	// launch POLICY.DEBUG bit, its SVN the launch GUEST_SVN, and, when signed,
	// its signer and product id the ones the ID block carries (IDBlockFields).
	Identity identity.Identity

	// VMPL is the guest's VMPL (0-3), mixed into every key: software at a
	// less privileged VMPL cannot request these keys.
	VMPL uint32

	// TCB is the TCB_VERSION new blobs are sealed at, normally the
	// COMMITTED_TCB of the guest's attestation report. It is the root's key
	// id; blobs sealed at a lower TCB (component-wise) still unseal, blobs
	// sealed at a higher TCB are refused (seal.ErrUnknownKey).
	TCB uint64

	// IDBlockTrusted says that this guest can only have been launched with an
	// ID block its signer made, so that FAMILY_ID, IMAGE_ID and GUEST_SVN
	// stand for the signer, product id and SVN. MSG_KEY_REQ does not mix the
	// ID key, so without that guarantee anyone who can launch a guest on the
	// chip can derive the signer-policy keys. New refuses a signed identity
	// unless it is set; pass an unsigned identity (signer fields zero) to
	// seal to the measurement only.
	IDBlockTrusted bool
}

// Root is the SEV-SNP sealing root. It is safe for concurrent use; it
// serializes its requests to the device.
type Root struct {
	dev   Device
	id    identity.Identity
	vmpl  uint32
	tcb   uint64
	keyID seal.KeyID
	mu    sync.Mutex
}

var _ seal.Root = (*Root)(nil)

// New returns the root of the guest cfg describes, deriving keys through dev.
// It refuses an inconsistent identity (seal.ErrWrongIdentity), a signed
// identity without cfg.IDBlockTrusted (seal.ErrWrongIdentity), and a VMPL
// above 3. It does not talk to the device; seal.New does, for the guest's own
// keys.
func New(dev Device, cfg Config) (*Root, error) {
	if dev == nil {
		return nil, fmt.Errorf("snproot: new: nil Device")
	}
	if cfg.VMPL > 3 {
		return nil, fmt.Errorf("snproot: new: VMPL %d, SEV-SNP has VMPL 0-3", cfg.VMPL)
	}
	id := cfg.Identity
	// CheckKeyRequest of the guest's own measurement request checks the
	// identity's consistency (zero measurement, signer fields) as seal does.
	if err := seal.CheckKeyRequest(id, seal.KeyRequest{Policy: seal.PolicyMeasurement, Debug: id.Debug, Measurement: id.Measurement}); err != nil {
		return nil, fmt.Errorf("snproot: new: %w", err)
	}
	if id.Signed && !cfg.IDBlockTrusted {
		return nil, fmt.Errorf("snproot: new: %w: MSG_KEY_REQ cannot bind a key to the ID key, so signer-policy keys are only as trustworthy as the ID block; set Config.IDBlockTrusted if only the signer can launch this guest, or pass the identity unsigned to seal to the measurement only", seal.ErrWrongIdentity)
	}
	r := &Root{dev: dev, id: id, vmpl: cfg.VMPL, tcb: cfg.TCB}
	binary.BigEndian.PutUint64(r.keyID[:], cfg.TCB)
	return r, nil
}

// Identity returns the identity of the guest the root serves.
func (r *Root) Identity() identity.Identity { return r.id }

// KeyID returns the TCB version new blobs are sealed at, big-endian.
func (r *Root) KeyID() seal.KeyID { return r.keyID }

// DeriveKey returns the policy key for req. It refuses, before asking the
// device, everything seal.CheckKeyRequest refuses (seal.ErrWrongIdentity,
// seal.ErrSVNTooHigh, seal.ErrMalformed) and a key id whose TCB version is
// above the root's in any component (seal.ErrUnknownKey). Device failures
// wrap ErrDevice.
func (r *Root) DeriveKey(ctx context.Context, req seal.KeyRequest) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("snproot: derive key: %w", err)
	}
	if err := seal.CheckKeyRequest(r.id, req); err != nil {
		return nil, fmt.Errorf("snproot: %w", err)
	}
	tcb := binary.BigEndian.Uint64(req.KeyID[:])
	if !tcbAtMost(tcb, r.tcb) {
		return nil, fmt.Errorf("snproot: key request: %w: sealed at TCB version %016x, this platform's is %016x (sealed on newer firmware, or the firmware was rolled back)", seal.ErrUnknownKey, tcb, r.tcb)
	}
	dk, err := r.msgKeyReq(r.firmwareRequest(req, tcb))
	if err != nil {
		return nil, fmt.Errorf("snproot: derive key (%s policy): %w", req.Policy, err)
	}
	defer clear(dk)
	prk, err := hkdf.Extract(sha256.New, dk, []byte(labelRootSalt))
	if err != nil {
		return nil, fmt.Errorf("snproot: derive key: %w", err)
	}
	defer clear(prk)
	enc, err := req.MarshalBinary() // the 50-byte encoding of docs/sealing.md §4.1
	if err != nil {
		return nil, fmt.Errorf("snproot: key request: %w", err)
	}
	info := append([]byte(labelPolicyKey), enc...)
	k, err := hkdf.Expand(sha256.New, prk, string(info), seal.PolicyKeySize)
	if err != nil {
		return nil, fmt.Errorf("snproot: derive key: %w", err)
	}
	return k, nil
}

// firmwareRequest maps a checked key request to MSG_KEY_REQ
// (docs/sealing.md §4.4).
func (r *Root) firmwareRequest(req seal.KeyRequest, tcb uint64) *labi.SnpDerivedKeyReqABI {
	fr := &labi.SnpDerivedKeyReqABI{
		RootKeySelect: rootKeyVCEK,
		Vmpl:          r.vmpl,
		TCBVersion:    tcb,
	}
	if req.Policy == seal.PolicySigner {
		fr.GuestFieldSelect = SignerFields
		fr.GuestSVN = req.SVN
	} else {
		fr.GuestFieldSelect = MeasurementFields
	}
	return fr
}

func (r *Root) msgKeyReq(fr *labi.SnpDerivedKeyReqABI) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return msgKeyReq(r.dev, fr)
}

// tcbAtMost reports whether every component (byte) of TCB version a is at
// most the same component of b. Component-wise comparison does not depend on
// the product's TCB layout: reserved bytes are zero in both.
func tcbAtMost(a, b uint64) bool {
	for i := 0; i < 64; i += 8 {
		if byte(a>>i) > byte(b>>i) {
			return false
		}
	}
	return true
}

// IDBlockFields returns the ID block values a launcher must give a signed
// guest for the signer policy to mean what seal says (docs/sealing.md §4.4):
// FAMILY_ID = the first 16 bytes of the signer id, IMAGE_ID = the product id
// (big-endian, in the first 4 bytes, the rest zero), GUEST_SVN = the SVN.
func IDBlockFields(id identity.Identity) (familyID, imageID [16]byte, guestSVN uint32) {
	copy(familyID[:], id.SignerID[:16])
	binary.BigEndian.PutUint32(imageID[:], id.ProductID)
	return familyID, imageID, id.SVN
}
