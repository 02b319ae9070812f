package seal

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/asylo-go/asylo/identity"
)

// Inputs of the test vectors in docs/sealing.md §5.
var (
	vecSecret = mustHex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	vecSalt   = mustHex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
	vecID     = identity.Identity{
		Backend:     "sim",
		Measurement: identity.Measurement(bytes.Repeat([]byte{0x4d}, 32)),
		Signed:      true,
		SignerID:    identity.SignerID(bytes.Repeat([]byte{0x53}, 32)),
		ProductID:   7,
		SVN:         3,
	}
	vecPlaintext = []byte("asylo sealing test vector")
	vecAD        = []byte("ad")
)

// Expected values, copied from docs/sealing.md §5 (computed there
// independently of this code).
const (
	vecKeyID       = "cf39248e5521d2b3"
	vecPK1         = "4b1ecdedca344dfe9af26de0c635e85cb2edccc8bddb810d1863ccdb788a7575"
	vecBlob1Header = "41534c44010101004d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d0000000000000000cf39248e5521d2b3808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
	vecBlob1Body   = "42072a4655be5d05084b997122fd5569158eb93369cc815500b756fe922351cfa55c9c6c5200d8810d"
	vecPK2         = "ef994e32edbec8e5380edd0cdc3ddc81f9eb000f29bdeec7f529a377d3ec7a7e"
	vecBlob2Header = "41534c440102010053535353535353535353535353535353535353535353535353535353535353530000000700000003cf39248e5521d2b3808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
	vecBlob2Body   = "201868216333033b61c5fe5b2334968ce197f4c848d9891430a2f3e18ff15badec89f51704aef79109"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// repeatReader yields the same bytes forever (a deterministic "random" salt).
type repeatReader []byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r[i%len(r)]
	}
	return len(p), nil
}

func newTestSealer(t testing.TB, secret []byte, id identity.Identity) *Sealer {
	t.Helper()
	root, err := NewSoftwareRoot(secret, id)
	if err != nil {
		t.Fatalf("NewSoftwareRoot: %v", err)
	}
	s, err := New(context.Background(), root)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestVectors(t *testing.T) {
	doc, err := os.ReadFile("../docs/sealing.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{vecKeyID, vecPK1, vecBlob1Header, vecBlob1Body, vecPK2, vecBlob2Header, vecBlob2Body} {
		if !strings.Contains(string(doc), v) {
			t.Errorf("docs/sealing.md does not contain %s: test and specification disagree", v)
		}
	}

	root, err := NewSoftwareRoot(vecSecret, vecID)
	if err != nil {
		t.Fatal(err)
	}
	if got := root.KeyID().String(); got != vecKeyID {
		t.Errorf("key id = %s, want %s", got, vecKeyID)
	}
	s, err := New(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	s.rand = repeatReader(vecSalt)

	for _, tc := range []struct {
		name   string
		policy Policy
		seal   func(pt, ad []byte) ([]byte, error)
		pk     string
		blob   string
	}{
		{"measurement", PolicyMeasurement, s.SealToMeasurement, vecPK1, vecBlob1Header + vecBlob1Body},
		{"signer", PolicySigner, s.SealToSigner, vecPK2, vecBlob2Header + vecBlob2Body},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pk, err := root.DeriveKey(context.Background(), s.ownRequest(tc.policy))
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(pk); got != tc.pk {
				t.Errorf("policy key = %s, want %s", got, tc.pk)
			}
			blob, err := tc.seal(vecPlaintext, vecAD)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(blob); got != tc.blob {
				t.Errorf("blob =\n%s\nwant\n%s", got, tc.blob)
			}
			pt, err := s.Unseal(context.Background(), mustHex(tc.blob), vecAD)
			if err != nil || !bytes.Equal(pt, vecPlaintext) {
				t.Errorf("Unseal(vector) = %q, %v; want %q", pt, err, vecPlaintext)
			}
			h, err := ParseHeader(mustHex(tc.blob))
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(h.appendTo(nil)); got != tc.blob[:2*HeaderSize] {
				t.Errorf("re-encoded header = %s", got)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	s := newTestSealer(t, vecSecret, vecID)
	ctx := context.Background()
	for _, size := range []int{0, 1, 15, 16, 17, 1000, 1 << 16} {
		pt := bytes.Repeat([]byte{0xa7}, size)
		for _, f := range []func([]byte, []byte) ([]byte, error){s.SealToMeasurement, s.SealToSigner} {
			for _, ad := range [][]byte{nil, {}, []byte("context")} {
				blob, err := f(pt, ad)
				if err != nil {
					t.Fatal(err)
				}
				if len(blob) != size+Overhead {
					t.Errorf("len(blob) = %d, want %d", len(blob), size+Overhead)
				}
				got, err := s.Unseal(ctx, blob, ad)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("Unseal: %v (size %d)", err, size)
				}
			}
		}
	}
}

func TestSealsDiffer(t *testing.T) {
	s := newTestSealer(t, vecSecret, vecID)
	a, _ := s.SealToMeasurement(vecPlaintext, nil)
	b, _ := s.SealToMeasurement(vecPlaintext, nil)
	if bytes.Equal(a, b) || bytes.Equal(a[HeaderSize:], b[HeaderSize:]) {
		t.Error("two seals of the same plaintext are equal")
	}
}

func TestWrongAdditionalData(t *testing.T) {
	s := newTestSealer(t, vecSecret, vecID)
	for _, f := range []func([]byte, []byte) ([]byte, error){s.SealToMeasurement, s.SealToSigner} {
		blob, _ := f(vecPlaintext, []byte("ad-1"))
		for _, ad := range [][]byte{nil, []byte("ad-2"), []byte("ad-1\x00"), []byte("ad-")} {
			if _, err := s.Unseal(context.Background(), blob, ad); !errors.Is(err, ErrAuthentication) {
				t.Errorf("Unseal with ad %q: %v, want ErrAuthentication", ad, err)
			}
		}
	}
}

// withID returns vecID changed by f.
func withID(f func(*identity.Identity)) identity.Identity {
	id := vecID
	f(&id)
	return id
}

func TestIdentityPolicies(t *testing.T) {
	ctx := context.Background()
	s := newTestSealer(t, vecSecret, vecID)
	byMeasurement, _ := s.SealToMeasurement(vecPlaintext, nil)
	bySigner, _ := s.SealToSigner(vecPlaintext, nil)

	for _, tc := range []struct {
		name                 string
		id                   identity.Identity
		wantMeas, wantSigner error // nil: unseals
	}{
		{"same enclave", vecID, nil, nil},
		{"another measurement", withID(func(i *identity.Identity) { i.Measurement[0] ^= 1 }), ErrWrongIdentity, nil},
		{"another signer", withID(func(i *identity.Identity) { i.SignerID[31] ^= 1 }), nil, ErrWrongIdentity},
		{"another product", withID(func(i *identity.Identity) { i.ProductID = 8 }), nil, ErrWrongIdentity},
		{"lower svn", withID(func(i *identity.Identity) { i.SVN = 2 }), nil, ErrSVNTooHigh},
		{"svn 0", withID(func(i *identity.Identity) { i.SVN = 0 }), nil, ErrSVNTooHigh},
		{"higher svn, new build", withID(func(i *identity.Identity) { i.SVN = 4; i.Measurement[5] ^= 1 }), ErrWrongIdentity, nil},
		{"debug", withID(func(i *identity.Identity) { i.Debug = true }), ErrWrongIdentity, ErrWrongIdentity},
		{"unsigned", withID(func(i *identity.Identity) {
			i.Signed, i.SignerID, i.ProductID, i.SVN = false, identity.SignerID{}, 0, 0
		}), nil, ErrWrongIdentity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := newTestSealer(t, vecSecret, tc.id)
			for _, c := range []struct {
				blob []byte
				want error
			}{{byMeasurement, tc.wantMeas}, {bySigner, tc.wantSigner}} {
				pt, err := other.Unseal(ctx, c.blob, nil)
				switch {
				case c.want == nil && (err != nil || !bytes.Equal(pt, vecPlaintext)):
					t.Errorf("Unseal: %v, want success", err)
				case c.want != nil && !errors.Is(err, c.want):
					t.Errorf("Unseal: %v, want %v", err, c.want)
				}
			}
		})
	}
}

func TestHigherSVNUnsealsOlderData(t *testing.T) {
	ctx := context.Background()
	for _, sealSVN := range []uint32{0, 1, 3} {
		old := newTestSealer(t, vecSecret, withID(func(i *identity.Identity) { i.SVN = sealSVN }))
		blob, err := old.SealToSigner(vecPlaintext, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, svn := range []uint32{sealSVN, sealSVN + 1, 1 << 31} {
			newer := newTestSealer(t, vecSecret, withID(func(i *identity.Identity) { i.SVN = svn; i.Measurement[0]++ }))
			for range 2 { // second time from the cache
				if pt, err := newer.Unseal(ctx, blob, nil); err != nil || !bytes.Equal(pt, vecPlaintext) {
					t.Errorf("sealed at svn %d, unseal at %d: %v", sealSVN, svn, err)
				}
			}
			// The newer enclave seals at its own SVN, which the old one cannot read.
			nb, _ := newer.SealToSigner(vecPlaintext, nil)
			if _, err := old.Unseal(ctx, nb, nil); svn > sealSVN && !errors.Is(err, ErrSVNTooHigh) {
				t.Errorf("old enclave (svn %d) unsealing svn %d: %v, want ErrSVNTooHigh", sealSVN, svn, err)
			}
		}
	}
}

// TestRootEnforces checks that the Root itself refuses, so code in the
// enclave that bypasses the format cannot get a key it is not entitled to.
func TestRootEnforces(t *testing.T) {
	ctx := context.Background()
	broker, err := NewMemoryBroker(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	brokerRoot, err := broker.Root(ctx, vecID)
	if err != nil {
		t.Fatal(err)
	}
	softRoot, err := NewSoftwareRoot(vecSecret, vecID)
	if err != nil {
		t.Fatal(err)
	}
	own := (&Sealer{id: vecID, keyID: softRoot.KeyID()}).ownRequest
	for _, root := range []Root{softRoot, brokerRoot} {
		for _, tc := range []struct {
			name string
			req  func() KeyRequest
			want error
		}{
			{"svn+1", func() KeyRequest { r := own(PolicySigner); r.SVN++; return r }, ErrSVNTooHigh},
			{"svn max", func() KeyRequest { r := own(PolicySigner); r.SVN = ^uint32(0); return r }, ErrSVNTooHigh},
			{"other signer", func() KeyRequest { r := own(PolicySigner); r.SignerID[0]++; return r }, ErrWrongIdentity},
			{"other product", func() KeyRequest { r := own(PolicySigner); r.ProductID++; return r }, ErrWrongIdentity},
			{"other measurement", func() KeyRequest { r := own(PolicyMeasurement); r.Measurement[0]++; return r }, ErrWrongIdentity},
			{"debug", func() KeyRequest { r := own(PolicyMeasurement); r.Debug = true; return r }, ErrWrongIdentity},
			{"other key id", func() KeyRequest { r := own(PolicyMeasurement); r.KeyID[0]++; return r }, ErrUnknownKey},
			{"zero policy", func() KeyRequest { r := own(PolicyMeasurement); r.Policy = 0; return r }, ErrMalformed},
			{"measurement with svn", func() KeyRequest { r := own(PolicyMeasurement); r.SVN = 1; return r }, ErrMalformed},
		} {
			if k, err := root.DeriveKey(ctx, tc.req()); !errors.Is(err, tc.want) || k != nil {
				t.Errorf("%T %s: DeriveKey = %x, %v; want %v", root, tc.name, k, err, tc.want)
			}
		}
		// Lower SVNs are derivable, and differ.
		r0, r3 := own(PolicySigner), own(PolicySigner)
		r0.SVN = 0
		k0, err0 := root.DeriveKey(ctx, r0)
		k3, err3 := root.DeriveKey(ctx, r3)
		if err0 != nil || err3 != nil || bytes.Equal(k0, k3) {
			t.Errorf("%T: svn 0 and 3 keys: %v %v equal=%t", root, err0, err3, bytes.Equal(k0, k3))
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := root.DeriveKey(cctx, r3); !errors.Is(err, context.Canceled) {
			t.Errorf("%T: DeriveKey with canceled context: %v", root, err)
		}
	}
}

func TestBrokerMatchesSoftwareRoot(t *testing.T) {
	ctx := context.Background()
	broker, _ := NewMemoryBroker(vecSecret)
	root, err := broker.Root(ctx, vecID)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := New(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	ss := newTestSealer(t, vecSecret, vecID)
	blob, _ := bs.SealToSigner(vecPlaintext, nil)
	if _, err := ss.Unseal(ctx, blob, nil); err != nil {
		t.Errorf("software root unsealing broker blob: %v", err)
	}
	other, _ := NewMemoryBroker(bytes.Repeat([]byte{1}, 32))
	oroot, _ := other.Root(ctx, vecID)
	otherSealer, err := New(ctx, oroot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherSealer.Unseal(ctx, blob, nil); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("other broker: %v, want ErrUnknownKey", err)
	}
}

func TestDebugKeysDiffer(t *testing.T) {
	ctx := context.Background()
	debugID := withID(func(i *identity.Identity) { i.Debug = true })
	prod, _ := NewSoftwareRoot(vecSecret, vecID)
	dbg, _ := NewSoftwareRoot(vecSecret, debugID)
	for _, p := range []Policy{PolicyMeasurement, PolicySigner} {
		rp := (&Sealer{id: vecID, keyID: prod.KeyID()}).ownRequest(p)
		rd := (&Sealer{id: debugID, keyID: dbg.KeyID()}).ownRequest(p)
		kp, err1 := prod.DeriveKey(ctx, rp)
		kd, err2 := dbg.DeriveKey(ctx, rd)
		if err1 != nil || err2 != nil || bytes.Equal(kp, kd) {
			t.Errorf("%v: debug and non-debug keys: %v %v equal=%t", p, err1, err2, bytes.Equal(kp, kd))
		}
	}
	// Even with the debug flag of a blob forged, the non-debug enclave refuses
	// before deriving, and a forged flag fails authentication in any case.
	ds := newTestSealer(t, vecSecret, debugID)
	blob, _ := ds.SealToMeasurement(vecPlaintext, nil)
	h, _ := ParseHeader(blob)
	if !h.Debug {
		t.Error("debug enclave's blob lacks the debug flag")
	}
	blob[offFlags] = 0
	ps := newTestSealer(t, vecSecret, vecID)
	if _, err := ps.Unseal(ctx, blob, nil); !errors.Is(err, ErrAuthentication) {
		t.Errorf("debug blob with the flag cleared: %v, want ErrAuthentication", err)
	}
}

func TestNewSoftwareRootRefuses(t *testing.T) {
	for _, secret := range [][]byte{nil, make([]byte, 16), make([]byte, 31), make([]byte, 32), make([]byte, 33), bytes.Repeat([]byte{1}, 64)} {
		if _, err := NewSoftwareRoot(secret, vecID); !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("NewSoftwareRoot(%d bytes): %v, want ErrInvalidSecret", len(secret), err)
		}
		if _, err := NewMemoryBroker(secret); !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("NewMemoryBroker(%d bytes): %v, want ErrInvalidSecret", len(secret), err)
		}
	}
	for _, id := range []identity.Identity{
		withID(func(i *identity.Identity) { i.Measurement = identity.Measurement{} }),
		withID(func(i *identity.Identity) { i.SignerID = identity.SignerID{} }),
		withID(func(i *identity.Identity) { i.Signed = false }),
	} {
		if _, err := NewSoftwareRoot(vecSecret, id); !errors.Is(err, ErrWrongIdentity) {
			t.Errorf("NewSoftwareRoot(%+v): %v, want ErrWrongIdentity", id, err)
		}
	}
	if _, err := New(context.Background(), nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

func TestInProcessIdentity(t *testing.T) {
	// In-process enclaves: zero measurement, debug, unsigned.
	id := identity.Identity{Backend: "inprocess", Debug: true}
	s := newTestSealer(t, vecSecret, id)
	blob, err := s.SealToMeasurement(vecPlaintext, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := s.Unseal(context.Background(), blob, nil); err != nil || !bytes.Equal(pt, vecPlaintext) {
		t.Errorf("Unseal: %v", err)
	}
	if _, err := s.SealToSigner(vecPlaintext, nil); !errors.Is(err, ErrWrongIdentity) {
		t.Errorf("SealToSigner on unsigned enclave: %v, want ErrWrongIdentity", err)
	}
}

// expectedFlipError is the error of docs/sealing.md §6 for a blob whose byte i
// was XORed with 0xff, for a blob sealed by vecID.
func expectedFlipError(p Policy, i int) error {
	switch {
	case i < offVersion:
		return ErrMalformed // magic
	case i == offVersion, i == offSuite:
		return ErrUnsupportedVersion
	case i == offPolicy, i == offFlags:
		return ErrMalformed // policy 0xfe/0xfd, reserved flag bits
	case i < offProductID:
		return ErrWrongIdentity
	case i < offSVN:
		if p == PolicyMeasurement {
			return ErrMalformed
		}
		return ErrWrongIdentity // another product
	case i < offKeyID:
		if p == PolicyMeasurement {
			return ErrMalformed
		}
		return ErrSVNTooHigh // 3^0xff and every higher byte flipped exceed svn 3
	case i < offSalt:
		return ErrUnknownKey
	}
	return ErrAuthentication // salt, ciphertext, tag
}

func TestFlipEveryByte(t *testing.T) {
	ctx := context.Background()
	s := newTestSealer(t, vecSecret, vecID)
	for p, seal := range map[Policy]func(pt, ad []byte) ([]byte, error){PolicyMeasurement: s.SealToMeasurement, PolicySigner: s.SealToSigner} {
		blob, err := seal(vecPlaintext, vecAD)
		if err != nil {
			t.Fatal(err)
		}
		for i := range blob {
			b := bytes.Clone(blob)
			b[i] ^= 0xff
			want := expectedFlipError(p, i)
			if _, err := s.Unseal(ctx, b, vecAD); !errors.Is(err, want) {
				t.Errorf("%v blob, byte %d flipped: %v, want %v", p, i, err, want)
			}
			// Every single-bit flip is refused with one of the documented errors.
			for bit := range 8 {
				b := bytes.Clone(blob)
				b[i] ^= 1 << bit
				if _, err := s.Unseal(ctx, b, vecAD); !isDocumented(err) {
					t.Errorf("%v blob, byte %d bit %d flipped: %v", p, i, bit, err)
				}
			}
		}
		// A lower SVN in the header is derivable, so it fails authentication.
		if p == PolicySigner {
			b := bytes.Clone(blob)
			b[offSVN+3] = 2
			if _, err := s.Unseal(ctx, b, vecAD); !errors.Is(err, ErrAuthentication) {
				t.Errorf("svn lowered to 2: %v, want ErrAuthentication", err)
			}
		}
	}
}

func isDocumented(err error) bool {
	for _, e := range []error{ErrMalformed, ErrUnsupportedVersion, ErrAuthentication, ErrWrongIdentity, ErrSVNTooHigh, ErrUnknownKey} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func TestTruncate(t *testing.T) {
	ctx := context.Background()
	s := newTestSealer(t, vecSecret, vecID)
	blob, _ := s.SealToSigner(vecPlaintext, vecAD)
	for n := range len(blob) {
		want := ErrAuthentication
		if n < Overhead {
			want = ErrMalformed
		}
		if _, err := s.Unseal(ctx, blob[:n], vecAD); !errors.Is(err, want) {
			t.Errorf("truncated to %d: %v, want %v", n, err, want)
		}
		_, err := ParseHeader(blob[:n])
		if n < HeaderSize && !errors.Is(err, ErrMalformed) || n >= HeaderSize && err != nil {
			t.Errorf("ParseHeader(truncated to %d): %v", n, err)
		}
	}
	// Appended bytes fail authentication too.
	if _, err := s.Unseal(ctx, append(bytes.Clone(blob), 0), vecAD); !errors.Is(err, ErrAuthentication) {
		t.Errorf("extended blob: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	s := newTestSealer(t, vecSecret, vecID)
	big := make([]byte, MaxPlaintextSize+1)
	if _, err := s.SealToMeasurement(big, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("SealToMeasurement(1 GiB + 1): %v, want ErrTooLarge", err)
	}
	if _, err := s.Unseal(context.Background(), make([]byte, Overhead+MaxPlaintextSize+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Unseal(too large): %v, want ErrTooLarge", err)
	}
}

func TestParseHeaderFields(t *testing.T) {
	h, err := ParseHeader(mustHex(vecBlob2Header))
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Version: 1, Policy: PolicySigner, Suite: SuiteHKDFSHA256AES256GCM, SignerID: vecID.SignerID,
		ProductID: 7, SVN: 3, KeyID: KeyID(mustHex(vecKeyID)), Salt: [32]byte(vecSalt)}
	if *h != want {
		t.Errorf("ParseHeader = %+v, want %+v", *h, want)
	}
	// Zero signer id; zero measurement without debug.
	b := mustHex(vecBlob2Header)
	clear(b[offIdentity : offIdentity+32])
	if _, err := ParseHeader(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero signer id: %v", err)
	}
	b = mustHex(vecBlob1Header)
	clear(b[offIdentity : offIdentity+32])
	if _, err := ParseHeader(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero measurement: %v", err)
	}
	b[offFlags] = flagDebug
	if _, err := ParseHeader(b); err != nil {
		t.Errorf("zero measurement, debug: %v", err)
	}
	if PolicyMeasurement.String() != "measurement" || PolicySigner.String() != "signer" || Policy(0).String() != "Policy(0)" {
		t.Error("Policy.String")
	}
}

func TestConcurrent(t *testing.T) {
	s := newTestSealer(t, vecSecret, withID(func(i *identity.Identity) { i.SVN = 40 }))
	var blobs [][]byte
	for svn := range uint32(40) {
		o := newTestSealer(t, vecSecret, withID(func(i *identity.Identity) { i.SVN = svn }))
		b, _ := o.SealToSigner(vecPlaintext, nil)
		blobs = append(blobs, b)
	}
	done := make(chan error)
	for range 4 {
		go func() {
			for _, b := range blobs {
				if _, err := s.Unseal(context.Background(), b, nil); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if len(s.cache) > maxCachedKeys {
		t.Errorf("cache grew to %d", len(s.cache))
	}
}

// TestBlobKeyIsHKDF checks the keyed-HMAC fast path against crypto/hkdf,
// with fresh and recycled scratches.
func TestBlobKeyIsHKDF(t *testing.T) {
	k, err := newBlobPRK(mustHex(vecPK1))
	if err != nil {
		t.Fatal(err)
	}
	blobKey := func(h []byte) []byte {
		sc := k.getScratch()
		defer k.putScratch(sc)
		copy(sc.header(), h)
		sc.deriveKey()
		return bytes.Clone(sc.key[:])
	}
	for range 3 {
		for _, h := range [][]byte{mustHex(vecBlob1Header), mustHex(vecBlob2Header), make([]byte, HeaderSize)} {
			want, err := hkdf.Expand(sha256.New, k.prk, labelBlobKey+string(h), 32)
			if err != nil {
				t.Fatal(err)
			}
			if got := blobKey(h); !bytes.Equal(got, want) {
				t.Errorf("blob key = %x, hkdf.Expand = %x", got, want)
			}
		}
	}
	if hex.EncodeToString(blobKey(mustHex(vecBlob1Header))) != "7c4a3ea7edb90d99f8d7682816e37d833dd4082efddcbbec48e2ac17a66fe71a" {
		t.Error("blob key of vector 1 differs from docs/sealing.md §5.1")
	}
	sc := k.getScratch()
	sc.deriveKey()
	sc.appendAAD([]byte("secret-ish additional data"))
	aad := sc.aad
	k.putScratch(sc)
	if !bytes.Equal(sc.key[:], make([]byte, 32)) || !bytes.Equal(aad, make([]byte, len(aad))) {
		t.Error("putScratch left the blob key or the additional data in the scratch")
	}
}

func TestInputsNotModified(t *testing.T) {
	s := newTestSealer(t, vecSecret, vecID)
	pt := bytes.Clone(vecPlaintext)
	blob, _ := s.SealToSigner(pt, vecAD)
	if !bytes.Equal(pt, vecPlaintext) {
		t.Error("SealToSigner modified the plaintext")
	}
	keep := bytes.Clone(blob)
	if _, err := s.Unseal(context.Background(), blob, vecAD); err != nil || !bytes.Equal(blob, keep) {
		t.Errorf("Unseal modified the blob or failed: %v", err)
	}
	if _, err := s.Unseal(context.Background(), blob, nil); !errors.Is(err, ErrAuthentication) || !bytes.Equal(blob, keep) {
		t.Errorf("failed Unseal modified the blob: %v", err)
	}
}

func TestAppendVariants(t *testing.T) {
	ctx := context.Background()
	s := newTestSealer(t, vecSecret, vecID)
	for _, n := range []int{0, 1, 100, 5000} {
		pt := bytes.Repeat([]byte{0x5a}, n)
		// Append after a prefix, with and without spare capacity.
		for _, dst := range [][]byte{[]byte("prefix"), append(make([]byte, 0, 8192), "prefix"...)} {
			out, err := s.AppendSealToSigner(dst, pt, vecAD)
			if err != nil || !bytes.HasPrefix(out, []byte("prefix")) {
				t.Fatalf("AppendSealToSigner: %v", err)
			}
			got, err := s.AppendUnseal(ctx, []byte("pre"), out[6:], vecAD)
			if err != nil || !bytes.Equal(got, append([]byte("pre"), pt...)) {
				t.Fatalf("AppendUnseal: %v", err)
			}
		}
		// dst overlapping the input, as plaintext[:0] / blob[:0].
		buf := make([]byte, n, n+Overhead+64)
		copy(buf, pt)
		blob, err := s.AppendSealToMeasurement(buf[:0], buf, vecAD)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Unseal(ctx, blob, vecAD); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Unseal of overlapping seal (n=%d): %v", n, err)
		}
		got, err := s.AppendUnseal(ctx, blob[:0], blob, vecAD)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("AppendUnseal overlapping (n=%d): %v", n, err)
		}
	}
	if _, err := (&Sealer{}).AppendSealToSigner(nil, nil, nil); !errors.Is(err, ErrWrongIdentity) {
		t.Errorf("AppendSealToSigner without signer: %v", err)
	}
}

func TestPartialOverlap(t *testing.T) {
	ctx := context.Background()
	s := newTestSealer(t, vecSecret, vecID)
	for _, off := range []int{0, 1, 10, 88, 100, 200} {
		buf := make([]byte, 4096)
		pt := buf[off : off+300]
		for i := range pt {
			pt[i] = byte(i)
		}
		want := bytes.Clone(pt)
		blob, err := s.AppendSealToMeasurement(buf[:0], pt, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Unseal(ctx, blob, nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("off %d: Unseal after overlapping seal: %v", off, err)
		}
		// Unseal into the same buffer at an offset that overlaps the blob.
		blob2 := append(buf[:off:off], blob...)
		got, err = s.AppendUnseal(ctx, buf[:0], blob2[off:], nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("off %d: overlapping AppendUnseal: %v", off, err)
		}
	}
	b := make([]byte, 10)
	if !overlaps(b[2:5], b[4:9]) || overlaps(b[2:4], b[4:9]) || overlaps(b[:0], b) || overlaps(b[:5], make([]byte, 5)) {
		t.Error("overlaps")
	}
}
