package snproot

import (
	"errors"
	"fmt"

	"github.com/google/go-sev-guest/abi"
	labi "github.com/google/go-sev-guest/client/linuxabi"
)

// Device is the one operation of the SEV guest device (/dev/sev-guest) the
// root uses: the ioctl that carries guest messages to the AMD secure
// processor. It is the Ioctl method of go-sev-guest's client.Device, so a
// device from client.OpenDevice satisfies it, and so does go-sev-guest's
// test device (github.com/google/go-sev-guest/testing.Device).
//
// The root sends MSG_KEY_REQ itself, with the same bytes as
// client.GetDerivedKeyAcknowledgingItsLimitations, rather than calling that
// function: the client package pulls in go-configfs-tsm, which this module
// does not require.
type Device interface {
	Ioctl(command uintptr, argument any) (uintptr, error)
}

// ErrDevice means the SEV guest device or the AMD secure processor did not
// answer a key request: an ioctl error, a firmware status (an SVN, TCB or
// VMPL the firmware refuses, for instance because the guest was launched
// with other values than the Config says), or an all-zero key.
var ErrDevice = errors.New("SEV-SNP guest device failed the key request")

// Guest field select bits of MSG_KEY_REQ (SEV-SNP Firmware ABI, table
// "MSG_KEY_REQ Message Structure"; go-sev-guest's client.GuestFieldSelect).
const (
	FieldGuestPolicy uint64 = 1 << 0 // GUEST_POLICY, with its DEBUG bit
	FieldImageID     uint64 = 1 << 1 // IMAGE_ID of the ID block
	FieldFamilyID    uint64 = 1 << 2 // FAMILY_ID of the ID block
	FieldMeasurement uint64 = 1 << 3 // MEASUREMENT, the launch digest
	FieldGuestSVN    uint64 = 1 << 4 // GUEST_SVN (the request's, at most the launch value)
	FieldTCBVersion  uint64 = 1 << 5 // TCB_VERSION (the request's, at most the committed TCB)
)

// The guest field selection of each policy (docs/sealing.md §4.4).
const (
	MeasurementFields = FieldGuestPolicy | FieldMeasurement | FieldTCBVersion
	SignerFields      = FieldGuestPolicy | FieldImageID | FieldFamilyID | FieldGuestSVN | FieldTCBVersion
)

// rootKeyVCEK is ROOT_KEY_SELECT = 0: derive from the chip's VCEK.
const rootKeyVCEK = 0

// msgKeyReq asks the device for the 32-byte key MSG_KEY_REQ derives from req.
func msgKeyReq(d Device, req *labi.SnpDerivedKeyReqABI) ([]byte, error) {
	rsp := new(labi.SnpDerivedKeyRespABI)
	msg := &labi.SnpUserGuestRequest{ReqData: req, RespData: rsp}
	result, err := d.Ioctl(labi.IocSnpGetDerivedKey, msg)
	if err != nil {
		if msg.FwErr != 0 {
			err = &abi.SevFirmwareErr{Status: abi.SevFirmwareStatus(msg.FwErr)}
		}
		return nil, fmt.Errorf("%w: %w", ErrDevice, err)
	}
	if result != uintptr(labi.EsOk) {
		return nil, fmt.Errorf("%w: %w", ErrDevice, &labi.SevEsErr{Result: labi.EsResult(result)})
	}
	// The Linux device checks STATUS when it copies the response back; a
	// device that does not (a test device) is checked here.
	if rsp.Status != 0 {
		return nil, fmt.Errorf("%w: MSG_KEY_RSP status 0x%x (0x16: invalid parameters)", ErrDevice, rsp.Status)
	}
	if rsp.Data == ([32]byte{}) {
		return nil, fmt.Errorf("%w: all-zero derived key", ErrDevice)
	}
	key := make([]byte, len(rsp.Data))
	copy(key, rsp.Data[:])
	clear(rsp.Data[:])
	return key, nil
}
