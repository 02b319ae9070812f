package snproot_test

import (
	"bytes"
	"context"
	"fmt"
	"log"

	labi "github.com/google/go-sev-guest/client/linuxabi"
	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/seal"
	"github.com/asylo-go/asylo/seal/snproot"
)

func Example() {
	// In a guest, dev is the device from go-sev-guest's client.OpenDevice and
	// TCB the COMMITTED_TCB of the guest's attestation report. Here it is
	// go-sev-guest's test device, programmed with the two MSG_KEY_REQ it
	// will see (key material a real device derives from the VCEK).
	const tcb = 0x7308000000000003
	dev := &sevtest.Device{Keys: map[string][]byte{
		sevtest.DerivedKeyRequestToString(&labi.SnpDerivedKeyReqABI{
			GuestFieldSelect: snproot.MeasurementFields, TCBVersion: tcb}): bytes.Repeat([]byte{0xa1}, 32),
		sevtest.DerivedKeyRequestToString(&labi.SnpDerivedKeyReqABI{
			GuestFieldSelect: snproot.SignerFields, GuestSVN: 2, TCBVersion: tcb}): bytes.Repeat([]byte{0xb2}, 32),
	}}
	id := identity.Identity{
		Backend:     "sev-snp",
		Measurement: identity.Measurement{1},
		Signed:      true,
		SignerID:    identity.SignerID{2},
		ProductID:   7,
		SVN:         2,
	}
	root, err := snproot.New(dev, snproot.Config{Identity: id, TCB: tcb, IDBlockTrusted: true})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	s, err := seal.New(ctx, root)
	if err != nil {
		log.Fatal(err)
	}
	blob, err := s.SealToSigner([]byte("database key"), nil)
	if err != nil {
		log.Fatal(err)
	}
	h, _ := seal.ParseHeader(blob)
	fmt.Println("key id (TCB version):", h.KeyID, "svn:", h.SVN)
	pt, err := s.Unseal(ctx, blob, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", pt)
	// Output:
	// key id (TCB version): 7308000000000003 svn: 2
	// database key
}
