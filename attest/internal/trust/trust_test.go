package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestPinnedCert(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	sum := sha256.Sum256(der)
	fp := hex.EncodeToString(sum[:])
	if _, err := PinnedCert(p, strings.ToUpper(fp)); err != nil {
		t.Fatal(err)
	}
	if _, err := PinnedCert(p, strings.Repeat("00", 32)); err == nil {
		t.Error("accepted a wrong fingerprint")
	}
	if _, err := PinnedCert(append(append([]byte{}, p...), p...), fp); err == nil {
		t.Error("accepted two PEM blocks")
	}
	if _, err := PinnedCert(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), fp); err == nil {
		t.Error("accepted a non-certificate block")
	}
}
