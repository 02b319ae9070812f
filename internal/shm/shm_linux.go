package shm

import (
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// New creates the shared region and returns the creator's endpoint and the
// memfd to hand to the peer process (e.g. via exec.Cmd.ExtraFiles). The
// caller owns the returned file and should close it once the peer has it;
// the Conn does not need it.
func New(opts Options) (*Conn, *os.File, error) {
	size := uint64(DefaultSize)
	if opts.Size != 0 {
		if opts.Size < 0 || !validSize(uint64(opts.Size)) {
			return nil, nil, fmt.Errorf("shm: invalid ring size %d (power of two in [%d, %d])", opts.Size, MinSize, MaxSize)
		}
		size = uint64(opts.Size)
	}
	total := headerSize + 2*size
	fd, err := unix.MemfdCreate("asylo-shm", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, nil, fmt.Errorf("shm: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "asylo-shm")
	fail := func(what string, err error) (*Conn, *os.File, error) {
		f.Close()
		return nil, nil, fmt.Errorf("shm: %s: %w", what, err)
	}
	if err := unix.Ftruncate(fd, int64(total)); err != nil {
		return fail("ftruncate", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		return fail("seal", err)
	}
	mem, err := unix.Mmap(fd, 0, int(total), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap", err)
	}
	atomic.StoreUint64(u64(mem, offRingSize), size)
	atomic.StoreUint32(u32(mem, offHdrSize), headerSize)
	atomic.StoreUint32(u32(mem, offVersion), version)
	atomic.StoreUint64(u64(mem, offMagic), magic)
	c, err := newConn(mem, true, opts)
	if err != nil {
		unix.Munmap(mem)
		f.Close()
		return nil, nil, err
	}
	c.mapped = true
	return c, f, nil
}

// Open maps a region received from the creator and returns the peer
// endpoint. f may be closed after Open returns.
func Open(f *os.File, opts Options) (*Conn, error) {
	if opts.Size != 0 && (opts.Size < 0 || !validSize(uint64(opts.Size))) {
		return nil, fmt.Errorf("shm: invalid ring size %d", opts.Size)
	}
	fd := int(f.Fd())
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: not a sealable memfd: %w", err)
	}
	if seals&unix.F_SEAL_SHRINK == 0 {
		return nil, corruptf("memfd is not sealed against shrinking")
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shm: fstat: %w", err)
	}
	if st.Size < headerSize+2*MinSize || st.Size > headerSize+2*MaxSize {
		return nil, corruptf("region size %d out of bounds", st.Size)
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: mmap: %w", err)
	}
	c, err := newConn(mem, false, opts)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	c.mapped = true
	return c, nil
}
