package snproot

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"sync"

	labi "github.com/google/go-sev-guest/client/linuxabi"

	"github.com/asylo-go/asylo/identity"
)

// launch is what the AMD secure processor knows about a running guest: the
// values MSG_KEY_REQ can mix into a key.
type launch struct {
	measurement       [48]byte
	policy            uint64
	familyID, imageID [16]byte
	guestSVN          uint32
	vmpl              uint32
	committedTCB      uint64
}

// policyDebug is the DEBUG bit of the SNP guest policy.
const policyDebug = 1 << 19

// launchFor is the launch of a guest with asylo identity id, following
// IDBlockFields; the launch digest stands in as SHA-384 of the measurement.
func launchFor(id identity.Identity, vmpl uint32, committed uint64) launch {
	l := launch{measurement: sha512.Sum384(id.Measurement[:]), policy: 0x30000, vmpl: vmpl, committedTCB: committed}
	if id.Debug {
		l.policy |= policyDebug
	}
	l.familyID, l.imageID, l.guestSVN = IDBlockFields(id)
	return l
}

// fakeSP answers MSG_KEY_REQ as the AMD secure processor would, for one
// guest on one chip. go-sev-guest's test device answers MSG_KEY_REQ only
// from a table keyed by the request fields; it has no notion of the guest's
// launch values, which the firmware mixes into the key. This stand-in
// computes deterministic key material from a chip secret (standing in for
// the VCEK), the request and the selected launch values, and applies the
// firmware's checks (VMPL, GUEST_SVN, TCB_VERSION, reserved bits). It is not
// AMD's KDF. It records every request, so tests can assert what was sent.
type fakeSP struct {
	chip   [32]byte
	launch launch

	mu    sync.Mutex
	calls []labi.SnpDerivedKeyReqABI
	// Failure injection.
	ioctlErr error
	fwErr    uint64
	esResult uintptr
	zeroKey  bool
}

const statusInvalidParam = 0x16

func (sp *fakeSP) Ioctl(command uintptr, argument any) (uintptr, error) {
	msg, ok := argument.(*labi.SnpUserGuestRequest)
	if !ok || command != labi.IocSnpGetDerivedKey {
		return 0, fmt.Errorf("fake SP: unexpected ioctl 0x%x %T", command, argument)
	}
	req, ok1 := msg.ReqData.(*labi.SnpDerivedKeyReqABI)
	rsp, ok2 := msg.RespData.(*labi.SnpDerivedKeyRespABI)
	if !ok1 || !ok2 {
		return 0, fmt.Errorf("fake SP: unexpected request types %T, %T", msg.ReqData, msg.RespData)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.calls = append(sp.calls, *req)
	if sp.ioctlErr != nil {
		msg.FwErr = sp.fwErr
		return 0, sp.ioctlErr
	}
	if sp.esResult != 0 {
		return sp.esResult, nil
	}
	l := &sp.launch
	if req.RootKeySelect > 1 || req.GuestFieldSelect>>6 != 0 || req.Vmpl > 3 ||
		req.Vmpl < l.vmpl || req.GuestSVN > l.guestSVN || !tcbAtMost(req.TCBVersion, l.committedTCB) {
		rsp.Status = statusInvalidParam
		return 0, nil
	}
	if sp.zeroKey {
		return 0, nil
	}
	mac := hmac.New(sha256.New, sp.chip[:])
	var b []byte
	b = append(b, "fake SNP MSG_KEY_REQ"...)
	b = binary.LittleEndian.AppendUint32(b, req.RootKeySelect)
	b = binary.LittleEndian.AppendUint64(b, req.GuestFieldSelect)
	b = binary.LittleEndian.AppendUint32(b, req.Vmpl)
	sel := req.GuestFieldSelect
	if sel&FieldGuestPolicy != 0 {
		b = binary.LittleEndian.AppendUint64(b, l.policy)
	}
	if sel&FieldImageID != 0 {
		b = append(b, l.imageID[:]...)
	}
	if sel&FieldFamilyID != 0 {
		b = append(b, l.familyID[:]...)
	}
	if sel&FieldMeasurement != 0 {
		b = append(b, l.measurement[:]...)
	}
	if sel&FieldGuestSVN != 0 {
		b = binary.LittleEndian.AppendUint32(b, req.GuestSVN)
	}
	if sel&FieldTCBVersion != 0 {
		b = binary.LittleEndian.AppendUint64(b, req.TCBVersion)
	}
	mac.Write(b)
	copy(rsp.Data[:], mac.Sum(nil))
	return 0, nil
}

func (sp *fakeSP) requests() []labi.SnpDerivedKeyReqABI {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return append([]labi.SnpDerivedKeyReqABI(nil), sp.calls...)
}

func (sp *fakeSP) reset() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.calls = nil
}
