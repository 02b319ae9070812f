package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// UntrustedFS is the host's storage, as the enclave sees it: every byte of a
// protected file goes through it, and nothing it returns is trusted. The host
// implements it (DirFS over the os package); the enclave reaches it through a
// host call.
//
// For crash safety under power loss (docs/storage.md §5), OpenFile with
// create, Rename and Remove must be durable when they return (fsync the
// directory), and UntrustedFile.Sync must be fsync. Killing only the enclave
// process needs nothing beyond ordinary write semantics.
type UntrustedFS interface {
	// OpenFile opens name for reading and writing, creating it empty if it
	// does not exist and create is true. A missing file without create is an
	// error satisfying errors.Is(err, fs.ErrNotExist).
	OpenFile(ctx context.Context, name string, create bool) (UntrustedFile, error)
	// Rename replaces newName with oldName atomically, as rename(2).
	Rename(ctx context.Context, oldName, newName string) error
	// Remove deletes name; a missing name is an error satisfying
	// errors.Is(err, fs.ErrNotExist).
	Remove(ctx context.Context, name string) error
}

// UntrustedFile is an open host file. ReadAt and WriteAt follow io.ReaderAt
// and io.WriterAt (a short read returns an error); as with those, a File
// calls ReadAt concurrently, and WriteAt concurrently on disjoint ranges.
type UntrustedFile interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	WriteAt(ctx context.Context, p []byte, off int64) (int, error)
	Truncate(ctx context.Context, size int64) error
	Sync(ctx context.Context) error
	Size(ctx context.Context) (int64, error)
	Close() error
}

// DirFS returns an UntrustedFS over the host directory dir, for the host side
// of the storage host call and for tests. Names are confined to dir: a name
// must be a single path element, so "", ".", "..", absolute paths and names
// containing a separator or NUL are refused. Creating, renaming and removing
// files fsync dir before returning.
func DirFS(dir string) UntrustedFS { return dirFS{dir: dir} }

type dirFS struct{ dir string }

// checkName confines name to the directory.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 ||
		strings.ContainsAny(name, "/\\\x00") || filepath.IsAbs(name) || filepath.VolumeName(name) != "" {
		return fmt.Errorf("storage: name %q is not a single path element: %w", name, ErrInvalidArgument)
	}
	return nil
}

func (d dirFS) path(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	return filepath.Join(d.dir, name), nil
}

func (d dirFS) syncDir() error {
	f, err := os.Open(d.dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (d dirFS) OpenFile(ctx context.Context, name string, create bool) (UntrustedFile, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err == nil || !create || !errors.Is(err, fs.ErrNotExist) {
		if err != nil {
			return nil, err
		}
		return &dirFile{f}, nil
	}
	f, err = os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := d.syncDir(); err != nil {
		f.Close()
		return nil, err
	}
	return &dirFile{f}, nil
}

func (d dirFS) Rename(ctx context.Context, oldName, newName string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op, err := d.path(oldName)
	if err != nil {
		return err
	}
	np, err := d.path(newName)
	if err != nil {
		return err
	}
	if err := os.Rename(op, np); err != nil {
		return err
	}
	return d.syncDir()
}

func (d dirFS) Remove(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	return d.syncDir()
}

type dirFile struct{ f *os.File }

func (f *dirFile) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return f.f.ReadAt(p, off)
}

func (f *dirFile) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return f.f.WriteAt(p, off)
}

func (f *dirFile) Truncate(ctx context.Context, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.f.Truncate(size)
}

func (f *dirFile) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return f.f.Sync()
}

func (f *dirFile) Size(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	fi, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f *dirFile) Close() error { return f.f.Close() }
