package snproot

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"strings"
	"syscall"
	"testing"

	labi "github.com/google/go-sev-guest/client/linuxabi"
	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/seal"
)

// tcb is a Milan-layout TCB_VERSION: bootloader 3, TEE 0, SNP 8, microcode 115.
const tcb uint64 = 3 | 8<<48 | 115<<56

var chip = [32]byte{1, 2, 3}

func testIdentity() identity.Identity {
	return identity.Identity{
		Backend:     "sev-snp",
		Measurement: identity.Measurement{0x4d, 1},
		Signed:      true,
		SignerID:    identity.SignerID{0x53, 1},
		ProductID:   7,
		SVN:         3,
	}
}

// guest launches id on the test chip and returns its fake secure processor
// and root.
func guest(t *testing.T, id identity.Identity) (*fakeSP, *Root) {
	t.Helper()
	sp := &fakeSP{chip: chip, launch: launchFor(id, 0, tcb)}
	r, err := New(sp, Config{Identity: id, TCB: tcb, IDBlockTrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	return sp, r
}

func ownRequest(r *Root, p seal.Policy) seal.KeyRequest {
	id := r.Identity()
	req := seal.KeyRequest{Policy: p, Debug: id.Debug, KeyID: r.KeyID()}
	if p == seal.PolicySigner {
		req.SignerID, req.ProductID, req.SVN = id.SignerID, id.ProductID, id.SVN
	} else {
		req.Measurement = id.Measurement
	}
	return req
}

func derive(t *testing.T, r *Root, req seal.KeyRequest) []byte {
	t.Helper()
	k, err := r.DeriveKey(context.Background(), req)
	if err != nil {
		t.Fatalf("DeriveKey(%+v): %v", req, err)
	}
	if len(k) != seal.PolicyKeySize {
		t.Fatalf("key of %d bytes", len(k))
	}
	return k
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	_, r := guest(t, testIdentity())
	s, err := seal.New(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.SealToMeasurement([]byte("by measurement"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.SealToSigner([]byte("by signer"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := seal.ParseHeader(g)
	if h.KeyID != r.KeyID() || h.SVN != 3 {
		t.Errorf("header key id %s svn %d, want %s 3", h.KeyID, h.SVN, r.KeyID())
	}
	// A Sealer over a fresh root for the same guest (a restart) unseals both.
	_, r2 := guest(t, testIdentity())
	s2, err := seal.New(ctx, r2)
	if err != nil {
		t.Fatal(err)
	}
	for blob, want := range map[string]string{string(m): "by measurement", string(g): "by signer"} {
		ad := []byte(nil)
		if want == "by measurement" {
			ad = []byte("ad")
		}
		pt, err := s2.Unseal(ctx, []byte(blob), ad)
		if err != nil || string(pt) != want {
			t.Errorf("Unseal = %q, %v; want %q", pt, err, want)
		}
	}

	// An upgraded build (new measurement, SVN 4) unseals the signer blob,
	// not the measurement blob.
	up := testIdentity()
	up.Measurement[0]++
	up.SVN = 4
	_, ru := guest(t, up)
	su, err := seal.New(ctx, ru)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := su.Unseal(ctx, g, nil); err != nil || string(pt) != "by signer" {
		t.Errorf("upgraded Unseal(signer blob) = %q, %v", pt, err)
	}
	if _, err := su.Unseal(ctx, m, []byte("ad")); !errors.Is(err, seal.ErrWrongIdentity) {
		t.Errorf("upgraded Unseal(measurement blob) = %v, want ErrWrongIdentity", err)
	}
	// And the old build cannot unseal what the new one sealed.
	g4, err := su.SealToSigner([]byte("v4"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unseal(ctx, g4, nil); !errors.Is(err, seal.ErrSVNTooHigh) {
		t.Errorf("old Unseal(svn 4 blob) = %v, want ErrSVNTooHigh", err)
	}
}

func TestKeys(t *testing.T) {
	base := testIdentity()
	_, r := guest(t, base)
	meas, sign := derive(t, r, ownRequest(r, seal.PolicyMeasurement)), derive(t, r, ownRequest(r, seal.PolicySigner))
	if bytes.Equal(meas, sign) {
		t.Fatal("measurement and signer keys equal")
	}
	if !bytes.Equal(meas, derive(t, r, ownRequest(r, seal.PolicyMeasurement))) ||
		!bytes.Equal(sign, derive(t, r, ownRequest(r, seal.PolicySigner))) {
		t.Error("same request gave another key")
	}

	// Another chip (VCEK) gives other keys for the same guest.
	sp2 := &fakeSP{chip: [32]byte{9}, launch: launchFor(base, 0, tcb)}
	r2, _ := New(sp2, Config{Identity: base, TCB: tcb, IDBlockTrusted: true})
	if bytes.Equal(meas, derive(t, r2, ownRequest(r2, seal.PolicyMeasurement))) {
		t.Error("another chip gave the same measurement key")
	}

	for _, tc := range []struct {
		name               string
		change             func(*identity.Identity)
		sameMeas, sameSign bool
	}{
		{"measurement", func(id *identity.Identity) { id.Measurement[5] ^= 1 }, false, true},
		{"signer", func(id *identity.Identity) { id.SignerID[0] ^= 1 }, true, false},
		{"signer beyond FAMILY_ID", func(id *identity.Identity) { id.SignerID[31] ^= 1 }, true, false},
		{"product", func(id *identity.Identity) { id.ProductID++ }, true, false},
		{"svn", func(id *identity.Identity) { id.SVN++ }, true, false},
		{"debug", func(id *identity.Identity) { id.Debug = true }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := base
			tc.change(&id)
			_, ro := guest(t, id)
			if got := bytes.Equal(meas, derive(t, ro, ownRequest(ro, seal.PolicyMeasurement))); got != tc.sameMeas {
				t.Errorf("measurement key equal = %t, want %t", got, tc.sameMeas)
			}
			if got := bytes.Equal(sign, derive(t, ro, ownRequest(ro, seal.PolicySigner))); got != tc.sameSign {
				t.Errorf("signer key equal = %t, want %t", got, tc.sameSign)
			}
		})
	}

	// Lower SVNs: every SVN up to the guest's has its own key, and a guest
	// at a higher SVN derives the same key for it.
	up := base
	up.SVN = 5
	_, ru := guest(t, up)
	seen := map[string]bool{}
	for svn := uint32(0); svn <= 3; svn++ {
		req := ownRequest(r, seal.PolicySigner)
		req.SVN = svn
		k := derive(t, r, req)
		if seen[string(k)] {
			t.Errorf("svn %d: key repeats", svn)
		}
		seen[string(k)] = true
		if !bytes.Equal(k, derive(t, ru, req)) {
			t.Errorf("svn %d: the svn-5 guest derived another key", svn)
		}
	}

	// A lower TCB version is a key of its own, which a later TCB still derives.
	low := ownRequest(r, seal.PolicyMeasurement)
	low.KeyID = seal.KeyID{0: 0, 1: 8, 7: 2} // SNP 8, bootloader 2
	if bytes.Equal(meas, derive(t, r, low)) {
		t.Error("lower TCB gave the same key")
	}
}

// TestFieldSelect asserts the MSG_KEY_REQ fields of docs/sealing.md §4.4.
func TestFieldSelect(t *testing.T) {
	id := testIdentity()
	sp := &fakeSP{chip: chip, launch: launchFor(id, 1, tcb)}
	r, err := New(sp, Config{Identity: id, VMPL: 1, TCB: tcb, IDBlockTrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	if MeasurementFields != 0x29 || SignerFields != 0x37 {
		t.Fatalf("field selections 0x%x 0x%x, documented 0x29 0x37", MeasurementFields, SignerFields)
	}
	older := ownRequest(r, seal.PolicySigner)
	older.SVN = 1
	older.KeyID = seal.KeyID{7: 1}
	for _, tc := range []struct {
		req  seal.KeyRequest
		want labi.SnpDerivedKeyReqABI
	}{
		{ownRequest(r, seal.PolicyMeasurement), labi.SnpDerivedKeyReqABI{RootKeySelect: 0, GuestFieldSelect: 0x29, Vmpl: 1, GuestSVN: 0, TCBVersion: tcb}},
		{ownRequest(r, seal.PolicySigner), labi.SnpDerivedKeyReqABI{RootKeySelect: 0, GuestFieldSelect: 0x37, Vmpl: 1, GuestSVN: 3, TCBVersion: tcb}},
		{older, labi.SnpDerivedKeyReqABI{RootKeySelect: 0, GuestFieldSelect: 0x37, Vmpl: 1, GuestSVN: 1, TCBVersion: 1}},
	} {
		sp.reset()
		derive(t, r, tc.req)
		got := sp.requests()
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s svn %d: device saw %+v, want [%+v]", tc.req.Policy, tc.req.SVN, got, tc.want)
		}
	}
}

// TestRefusedBeforeDevice: every refusal of seal.CheckKeyRequest, and a TCB
// above the root's, happens without a device request.
func TestRefusedBeforeDevice(t *testing.T) {
	sp, r := guest(t, testIdentity())
	mod := func(p seal.Policy, f func(*seal.KeyRequest)) seal.KeyRequest {
		req := ownRequest(r, p)
		f(&req)
		return req
	}
	for _, tc := range []struct {
		name string
		req  seal.KeyRequest
		want error
	}{
		{"svn above", mod(seal.PolicySigner, func(q *seal.KeyRequest) { q.SVN = 4 }), seal.ErrSVNTooHigh},
		{"svn max", mod(seal.PolicySigner, func(q *seal.KeyRequest) { q.SVN = ^uint32(0) }), seal.ErrSVNTooHigh},
		{"other signer", mod(seal.PolicySigner, func(q *seal.KeyRequest) { q.SignerID[3] = 1 }), seal.ErrWrongIdentity},
		{"other product", mod(seal.PolicySigner, func(q *seal.KeyRequest) { q.ProductID = 8 }), seal.ErrWrongIdentity},
		{"other measurement", mod(seal.PolicyMeasurement, func(q *seal.KeyRequest) { q.Measurement[0] = 0 }), seal.ErrWrongIdentity},
		{"debug", mod(seal.PolicyMeasurement, func(q *seal.KeyRequest) { q.Debug = true }), seal.ErrWrongIdentity},
		{"svn under measurement", mod(seal.PolicyMeasurement, func(q *seal.KeyRequest) { q.SVN = 1 }), seal.ErrMalformed},
		{"policy 0", mod(seal.PolicyMeasurement, func(q *seal.KeyRequest) { q.Policy = 0 }), seal.ErrMalformed},
		{"tcb above", mod(seal.PolicySigner, func(q *seal.KeyRequest) { q.KeyID[0]++ }), seal.ErrUnknownKey},
		{"tcb one component above", mod(seal.PolicyMeasurement, func(q *seal.KeyRequest) { q.KeyID = seal.KeyID{6: 1} }), seal.ErrUnknownKey},
	} {
		_, err := r.DeriveKey(context.Background(), tc.req)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if n := len(sp.requests()); n != 0 {
			t.Fatalf("%s: device asked %d times", tc.name, n)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.DeriveKey(ctx, ownRequest(r, seal.PolicySigner)); !errors.Is(err, context.Canceled) || len(sp.requests()) != 0 {
		t.Errorf("canceled: %v", err)
	}
}

func TestDeviceErrors(t *testing.T) {
	id := testIdentity()
	for _, tc := range []struct {
		name   string
		set    func(*fakeSP)
		substr string
	}{
		{"ioctl", func(sp *fakeSP) { sp.ioctlErr = syscall.EIO }, "input/output error"},
		{"firmware", func(sp *fakeSP) { sp.ioctlErr, sp.fwErr = syscall.EIO, 0x16 }, "invalid parameter"},
		{"es result", func(sp *fakeSP) { sp.esResult = uintptr(labi.EsVmmError) }, "VMM"},
		{"zero key", func(sp *fakeSP) { sp.zeroKey = true }, "all-zero"},
		// The config claims SVN 3, the launch has GUEST_SVN 2: the firmware refuses.
		{"svn above launch", func(sp *fakeSP) { sp.launch.guestSVN = 2 }, "status 0x16"},
		{"tcb above committed", func(sp *fakeSP) { sp.launch.committedTCB = tcb - 1 }, "status 0x16"},
		{"vmpl below launch", func(sp *fakeSP) { sp.launch.vmpl = 2 }, "status 0x16"},
	} {
		sp, r := guest(t, id)
		tc.set(sp)
		_, err := seal.New(context.Background(), r)
		if !errors.Is(err, ErrDevice) || !strings.Contains(err.Error(), tc.substr) {
			t.Errorf("%s: seal.New: %v; want ErrDevice mentioning %q", tc.name, err, tc.substr)
		}
	}
}

func TestNew(t *testing.T) {
	id := testIdentity()
	sp := &fakeSP{chip: chip, launch: launchFor(id, 0, tcb)}
	if _, err := New(nil, Config{Identity: id, IDBlockTrusted: true}); err == nil {
		t.Error("nil device accepted")
	}
	if _, err := New(sp, Config{Identity: id, VMPL: 4, IDBlockTrusted: true}); err == nil {
		t.Error("VMPL 4 accepted")
	}
	if _, err := New(sp, Config{Identity: id}); !errors.Is(err, seal.ErrWrongIdentity) {
		t.Errorf("signed identity without IDBlockTrusted: %v", err)
	}
	if _, err := New(sp, Config{Identity: identity.Identity{Signed: false, SVN: 1, Measurement: id.Measurement}}); !errors.Is(err, seal.ErrWrongIdentity) {
		t.Errorf("inconsistent identity: %v", err)
	}
	if _, err := New(sp, Config{Identity: identity.Identity{}}); !errors.Is(err, seal.ErrWrongIdentity) {
		t.Errorf("zero measurement, not debug: %v", err)
	}
	// Unsigned: the measurement policy only.
	un := identity.Identity{Backend: "sev-snp", Measurement: id.Measurement}
	r, err := New(sp, Config{Identity: un, TCB: tcb})
	if err != nil {
		t.Fatal(err)
	}
	s, err := seal.New(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SealToSigner([]byte("x"), nil); !errors.Is(err, seal.ErrWrongIdentity) {
		t.Errorf("SealToSigner unsigned: %v", err)
	}
	if got := r.KeyID().String(); got != "7308000000000003" {
		t.Errorf("KeyID = %s, want the TCB version 7308000000000003", got)
	}
}

// TestPolicyKeyConstruction checks the policy key against docs/sealing.md
// §4.4 computed from the device's key with crypto/hkdf directly.
func TestPolicyKeyConstruction(t *testing.T) {
	sp, r := guest(t, testIdentity())
	req := ownRequest(r, seal.PolicySigner)
	req.SVN = 2
	got := derive(t, r, req)
	dk, err := msgKeyReq(sp, r.firmwareRequest(req, tcb))
	if err != nil {
		t.Fatal(err)
	}
	prk, _ := hkdf.Extract(sha256.New, dk, []byte("asylo-seal/v1 root"))
	info := []byte("asylo-seal/v1 policy key\x00")
	info = append(info, 2, 0)
	info = append(info, req.SignerID[:]...)
	info = append(info, 0, 0, 0, 7, 0, 0, 0, 2)
	info = append(info, req.KeyID[:]...)
	want, _ := hkdf.Expand(sha256.New, prk, string(info), 32)
	if !bytes.Equal(got, want) {
		t.Errorf("policy key %x, want %x", got, want)
	}
}

// TestLibraryFakeDevice runs the root over go-sev-guest's own test device,
// whose key table answers only the exact requests of §4.4.
func TestLibraryFakeDevice(t *testing.T) {
	id := testIdentity()
	dev := &sevtest.Device{Keys: map[string][]byte{
		sevtest.DerivedKeyRequestToString(&labi.SnpDerivedKeyReqABI{GuestFieldSelect: 0x29, TCBVersion: tcb}):              bytes.Repeat([]byte{1}, 32),
		sevtest.DerivedKeyRequestToString(&labi.SnpDerivedKeyReqABI{GuestFieldSelect: 0x37, GuestSVN: 3, TCBVersion: tcb}): bytes.Repeat([]byte{2}, 32),
	}}
	r, err := New(dev, Config{Identity: id, TCB: tcb, IDBlockTrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := seal.New(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := s.SealToSigner([]byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := s.Unseal(ctx, blob, nil); err != nil || string(pt) != "secret" {
		t.Errorf("Unseal = %q, %v", pt, err)
	}
	// SVN 2 is not in the table: the device's error surfaces.
	req := ownRequest(r, seal.PolicySigner)
	req.SVN = 2
	if _, err := r.DeriveKey(ctx, req); !errors.Is(err, ErrDevice) || !strings.Contains(err.Error(), "unmapped key request") {
		t.Errorf("unmapped request: %v", err)
	}
}

func TestTCBAtMost(t *testing.T) {
	for _, tc := range []struct {
		a, b uint64
		want bool
	}{
		{0, 0, true}, {tcb, tcb, true}, {tcb - 1, tcb, true}, {1 << 56, 2 << 56, true},
		{tcb + 1, tcb, false}, {2 << 56, 1<<56 | 0xff, false}, {0xff, 1 << 8, false},
	} {
		if got := tcbAtMost(tc.a, tc.b); got != tc.want {
			t.Errorf("tcbAtMost(%016x, %016x) = %t", tc.a, tc.b, got)
		}
	}
}
