// Package platform is the sim back-end's software platform: the keys that stand in for a CPU's
// attestation and sealing keys. It signs sim attestation evidence (docs/evidence-sim.md) for
// enclaves the sim back-end measured, and holds the platform secret that sim sealing derives from.
//
// The platform lives in a state directory (DefaultDir, or one the caller names), created on
// first use, readable only by its owner. It runs in the host process: anyone who can read that
// directory, root included, can forge sim evidence and unseal sim-sealed data. That is why
// verifiers never trust sim evidence unless a policy names this platform's root explicitly.
package platform

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// File names inside the state directory.
const (
	rootCertFile   = "root.pem"
	rootKeyFile    = "root.key"
	attestCertFile = "attestation.pem"
	attestKeyFile  = "attestation.key"
	sealSecretFile = "seal.secret"
)

// Errors.
var (
	// ErrNotInitialized: the state directory holds no platform; run `asylo platform init`.
	ErrNotInitialized = errors.New("sim platform: not initialized")
	// ErrCorrupt: the state directory exists but its files are unreadable or inconsistent.
	ErrCorrupt = errors.New("sim platform: state is corrupt")
)

// Platform is an initialized sim platform.
type Platform struct {
	dir        string
	root       *x509.Certificate
	attestCert *x509.Certificate
	attestKey  ed25519.PrivateKey
	sealSecret []byte
}

// DefaultDir is $XDG_STATE_HOME/asylo/sim-platform, or ~/.local/state/asylo/sim-platform.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "asylo", "sim-platform"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("sim platform: no state directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "asylo", "sim-platform"), nil
}

// Open loads the platform in dir, creating it first if dir holds none. Concurrent first uses
// are safe: the platform is built in a temporary directory and renamed into place.
func Open(dir string) (*Platform, error) {
	p, err := Load(dir)
	if !errors.Is(err, ErrNotInitialized) {
		return p, err
	}
	if err := create(dir); err != nil {
		return nil, err
	}
	return Load(dir)
}

// Load loads the platform in dir, which must exist.
func Load(dir string) (*Platform, error) {
	if _, err := os.Stat(filepath.Join(dir, rootCertFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (run `asylo platform init`)", ErrNotInitialized, dir)
	}
	p := &Platform{dir: dir}
	var err error
	if p.root, err = readCert(filepath.Join(dir, rootCertFile)); err != nil {
		return nil, err
	}
	if p.attestCert, err = readCert(filepath.Join(dir, attestCertFile)); err != nil {
		return nil, err
	}
	if p.attestKey, err = readKey(filepath.Join(dir, attestKeyFile)); err != nil {
		return nil, err
	}
	if p.sealSecret, err = os.ReadFile(filepath.Join(dir, sealSecretFile)); err != nil || len(p.sealSecret) != 32 {
		return nil, fmt.Errorf("%w: %s: want 32 bytes (%v)", ErrCorrupt, sealSecretFile, err)
	}
	// The attestation key must be the one the root certified.
	if err := p.attestCert.CheckSignatureFrom(p.root); err != nil {
		return nil, fmt.Errorf("%w: attestation certificate not signed by the root: %v", ErrCorrupt, err)
	}
	pub, ok := p.attestCert.PublicKey.(ed25519.PublicKey)
	if !ok || !pub.Equal(p.attestKey.Public()) {
		return nil, fmt.Errorf("%w: attestation key does not match its certificate", ErrCorrupt)
	}
	return p, nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: %s is not a PEM certificate", ErrCorrupt, path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return c, nil
}

func readKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: %s is not a PEM private key", ErrCorrupt, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not an Ed25519 key", ErrCorrupt, path)
	}
	return ek, nil
}

// create builds a new platform in a temporary sibling of dir and renames it into place. If
// another process got there first, its platform stands.
func create(dir string) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("sim platform: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".sim-platform-")
	if err != nil {
		return fmt.Errorf("sim platform: %w", err)
	}
	defer os.RemoveAll(tmp)

	// Ed25519 throughout: small, deterministic signatures and the fastest verification in the
	// standard library, which matters to verifiers checking thousands of tokens a second.
	rootPub, rootKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	attPub, attKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "asylo sim platform root (NOT a hardware root of trust)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootPub, rootKey)
	if err != nil {
		return err
	}
	root, _ := x509.ParseCertificate(rootDER)
	attTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "asylo sim platform attestation key"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(20, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	attDER, err := x509.CreateCertificate(rand.Reader, attTmpl, root, attPub, rootKey)
	if err != nil {
		return err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	rootKeyDER, _ := x509.MarshalPKCS8PrivateKey(rootKey)
	attKeyDER, _ := x509.MarshalPKCS8PrivateKey(attKey)
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{rootCertFile, pemBlock("CERTIFICATE", rootDER), 0o644},
		{rootKeyFile, pemBlock("PRIVATE KEY", rootKeyDER), 0o600},
		{attestCertFile, pemBlock("CERTIFICATE", attDER), 0o644},
		{attestKeyFile, pemBlock("PRIVATE KEY", attKeyDER), 0o600},
		{sealSecretFile, secret, 0o600},
	} {
		if err := os.WriteFile(filepath.Join(tmp, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("sim platform: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, rootCertFile)); statErr == nil {
			return nil // another process created it meanwhile
		}
		return fmt.Errorf("sim platform: %w", err)
	}
	return nil
}

func serial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// Dir returns the state directory.
func (p *Platform) Dir() string { return p.dir }

// Root returns the platform's root certificate: what a verifier must be given to accept this
// platform's evidence.
func (p *Platform) Root() *x509.Certificate { return p.root }

// RootPEM returns the root certificate in PEM, as `asylo platform export-root` prints it.
func (p *Platform) RootPEM() []byte { return pemBlock("CERTIFICATE", p.root.Raw) }

// KeyID returns the SHA-256 of the root's SubjectPublicKeyInfo: the platform's identity in
// verified claims (attest.Claims.PlatformKeyID) and policies.
func (p *Platform) KeyID() [32]byte { return sha256.Sum256(p.root.RawSubjectPublicKeyInfo) }

// SealSecret returns the platform secret that sim sealing roots derive from. Only the sim
// back-end should call it.
func (p *Platform) SealSecret() []byte { return append([]byte(nil), p.sealSecret...) }
