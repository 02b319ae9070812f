// Command enclave is the trusted half of the quickstart: it creates an AES-256-GCM key that never
// leaves the enclave, and encrypts and decrypts messages for the host with it. It is Asylo's
// quickstart, in Go.
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"

	"github.com/asylo-go/asylo/enclave"
)

const maxMessage = 64 << 10

// additionalData binds ciphertexts to this application and version.
var additionalData = []byte("asylo quickstart v1")

type quickstart struct {
	aead cipher.AEAD
}

// Initialize creates the key. The entropy comes from the enclave's own platform (getrandom on
// sim, the CPU inside a confidential VM), never from the host.
func (q *quickstart) Initialize(ctx context.Context, _ []byte) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	// A random 96-bit nonce per message is safe for far more messages than this key will see.
	q.aead, err = cipher.NewGCM(block)
	return err
}

// Run encrypts its input: the same as the "encrypt" call.
func (q *quickstart) Run(ctx context.Context, input []byte) ([]byte, error) {
	return q.encrypt(ctx, input)
}

func (q *quickstart) Finalize(context.Context, []byte) error {
	q.aead = nil // the key dies with the enclave
	return nil
}

func (q *quickstart) encrypt(_ context.Context, msg []byte) ([]byte, error) {
	if len(msg) > maxMessage {
		return nil, fmt.Errorf("%w: message longer than %d bytes", enclave.ErrInvalidArgument, maxMessage)
	}
	nonce := make([]byte, q.aead.NonceSize(), q.aead.NonceSize()+len(msg)+q.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return q.aead.Seal(nonce, nonce, msg, additionalData), nil
}

func (q *quickstart) decrypt(_ context.Context, ct []byte) ([]byte, error) {
	if len(ct) < q.aead.NonceSize()+q.aead.Overhead() || len(ct) > maxMessage+q.aead.NonceSize()+q.aead.Overhead() {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes", enclave.ErrInvalidArgument, len(ct))
	}
	n := q.aead.NonceSize()
	pt, err := q.aead.Open(nil, ct[:n], ct[n:], additionalData)
	if err != nil {
		// Do not say more: the host is not to learn why a ciphertext failed.
		return nil, fmt.Errorf("%w: ciphertext does not authenticate", enclave.ErrInvalidArgument)
	}
	return pt, nil
}

func main() {
	q := &quickstart{}
	enclave.Run(q, enclave.Handle("encrypt", q.encrypt), enclave.Handle("decrypt", q.decrypt))
}
