package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	f.Add(append(mustHex(vecHeader), make([]byte, NodeSize-headerUsed)...))
	f.Add([]byte("ASFS"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			if h != nil || !(errors.Is(err, ErrMalformed) || errors.Is(err, ErrTruncated)) {
				t.Fatalf("parseHeader: %v, %v", h, err)
			}
			return
		}
		// A parsed header re-encodes to the same fields (the MAC aside).
		enc := h.marshal(make([]byte, 32))
		if !bytes.Equal(enc[:headerMACOff], b[:headerMACOff]) || !allZero(b[headerUsed:NodeSize]) {
			t.Fatalf("re-encoded header differs")
		}
		h2, err := parseHeader(enc)
		if err != nil || *h2 != *h {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

func FuzzParseJournal(f *testing.F) {
	k, _ := deriveKeys(testKey)
	f.Add([]byte("ASFJ"))
	// A valid journal: preamble, header record, trailer.
	h := header{NameHash: nameHash("x"), Commit: 2}
	jb := journalPreambleBytes(h.FileID, h.NameHash)
	jb = append(jb, make([]byte, 8)...)
	jb = append(jb, h.marshal(k.header)...)
	jb = append(jb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1)
	f.Add(jb)
	f.Fuzz(func(t *testing.T, b []byte) {
		// Sign whatever the fuzzer gives, so parsing past the MAC is reached.
		if len(b) >= 32 {
			m := hmacSHA256(k.journal, b[:len(b)-32])
			copy(b[len(b)-32:], m)
		}
		j, err := parseJournal(b, k.journal)
		if err != nil {
			if j != nil || !(errors.Is(err, ErrMalformed) || errors.Is(err, ErrCorrupt)) {
				t.Fatalf("parseJournal: %v, %v", j, err)
			}
			return
		}
		if j.Header == nil || len(j.Records) == 0 || j.Records[len(j.Records)-1].phys != 0 {
			t.Fatal("accepted journal without a final header record")
		}
	})
}

// FuzzOpen opens a protected file whose backing bytes (and journal) are
// arbitrary, then reads all of it: only the package's errors, no panics, no
// unbounded allocation.
func FuzzOpen(f *testing.F) {
	ctx := context.Background()
	seedDir := f.TempDir()
	smallFile(&testing.T{}, seedDir, "s", noCounter())
	b, _ := os.ReadFile(filepath.Join(seedDir, "s"))
	f.Add(b, []byte(nil), false, false)
	f.Add(b[:2*NodeSize], []byte(nil), true, true)
	f.Add(b, []byte("ASFJ\x01"), true, false)
	// A file of 40 data nodes: reading it whole takes the bulk path (bulk.go), which checks
	// tree entries and nodes read straight from the host.
	bulkFile(&testing.T{}, seedDir, "big", 40)
	big, _ := os.ReadFile(filepath.Join(seedDir, "big"))
	f.Add(big, []byte(nil), false, false)
	f.Add(big, []byte(nil), false, true)
	k, _ := deriveKeys(testKey)
	f.Fuzz(func(t *testing.T, main, journal []byte, pending, sign bool) {
		if len(main) > 64*NodeSize || len(journal) > 64*NodeSize {
			return
		}
		if sign && len(main) >= NodeSize {
			// Re-MAC the header so that the checks behind it are reached.
			main = bytes.Clone(main)
			copy(main[headerMACOff:], hmacSHA256(k.header, main[:headerMACOff]))
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "s"), main, 0o600)
		if journal != nil {
			os.WriteFile(filepath.Join(dir, "s"+suffixJournal), journal, 0o600)
		}
		if pending {
			os.WriteFile(filepath.Join(dir, "s"+suffixPending), nil, 0o600)
		}
		fl, err := Open(ctx, DirFS(dir), "s", testKey, noCounter())
		if err != nil {
			if !isOurs(err) {
				t.Fatalf("Open: unexpected error %v", err)
			}
			return
		}
		p := make([]byte, min(fl.Size(), 1<<20))
		if _, err := fl.ReadAt(ctx, p, 0); err != nil && err != io.EOF && !isOurs(err) {
			t.Fatalf("ReadAt: unexpected error %v", err)
		}
		fl.Close(ctx)
	})
}

func isOurs(err error) bool {
	for _, e := range []error{ErrCorrupt, ErrWrongFile, ErrTruncated, ErrRollback, ErrMalformed, ErrTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
