package seal_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"

	"github.com/asylo-go/asylo/identity"
	"github.com/asylo-go/asylo/seal"
)

func Example() {
	ctx := context.Background()

	// The enclave's identity, as loaded and verified by the host; on sim the
	// platform secret comes from the platform side (32 random bytes, kept
	// across restarts so sealed data stays readable).
	id := identity.Identity{
		Backend:     "sim",
		Measurement: identity.Measurement{0x4d},
		Signed:      true,
		SignerID:    identity.SignerID{0x53},
		ProductID:   7,
		SVN:         3,
	}
	platformSecret := make([]byte, seal.SecretSize)
	rand.Read(platformSecret)

	root, err := seal.NewSoftwareRoot(platformSecret, id)
	if err != nil {
		log.Fatal(err)
	}
	s, err := seal.New(ctx, root)
	if err != nil {
		log.Fatal(err)
	}

	// Seal to the signer: versions 3 and later of this product can read it.
	blob, err := s.SealToSigner([]byte("database key"), []byte("db.key"))
	if err != nil {
		log.Fatal(err)
	}
	h, _ := seal.ParseHeader(blob)
	fmt.Println("policy:", h.Policy, "svn:", h.SVN, "overhead:", len(blob)-len("database key"))

	// Version 4 of the enclave (new measurement, same signer) unseals it.
	id.Measurement, id.SVN = identity.Measurement{0x4e}, 4
	root4, _ := seal.NewSoftwareRoot(platformSecret, id)
	s4, _ := seal.New(ctx, root4)
	pt, err := s4.Unseal(ctx, blob, []byte("db.key"))
	fmt.Printf("%s %v\n", pt, err)
	// Output:
	// policy: signer svn: 3 overhead: 104
	// database key <nil>
}
