package wire

import "strconv"

// Host calls for untrusted storage and monotonic counters (docs/wire.md, "Host-call operations").
// The enclave's storage package encrypts and authenticates everything it stores; these calls only
// move opaque bytes, and both sides validate every field.

// Storage and counter operations.
const (
	OpFSOpen        Op = 5
	OpFSRead        Op = 6
	OpFSWrite       Op = 7
	OpFSTruncate    Op = 8
	OpFSSync        Op = 9
	OpFSSize        Op = 10
	OpFSClose       Op = 11
	OpFSRename      Op = 12
	OpFSRemove      Op = 13
	OpCounterGet    Op = 14
	OpCounterInc    Op = 15
	OpListen        Op = 16
	OpAccept        Op = 17
	OpCloseListener Op = 18
	OpDial          Op = 19
)

// Limits of the storage host calls.
const (
	MaxFileName  = 255
	MaxFileIO    = 4 << 20 // bytes per READ or WRITE
	MaxCounterID = 128
)

// FSRequest is the decoded request of a storage or counter host call. Which fields are set
// depends on the op.
type FSRequest struct {
	Create  bool   // OPEN
	Name    string // OPEN, REMOVE, RENAME (old name), COUNTER_*: counter id
	NewName string // RENAME
	Handle  uint32 // READ, WRITE, TRUNCATE, SYNC, SIZE, CLOSE
	Offset  uint64 // READ, WRITE; TRUNCATE: the new size
	Length  uint32 // READ
	Data    []byte // WRITE
}

// AppendFSRequest encodes r for op.
func AppendFSRequest(b []byte, op Op, r FSRequest) []byte {
	switch op {
	case OpFSOpen:
		c := byte(0)
		if r.Create {
			c = 1
		}
		b = append(b, c)
		return append(b, r.Name...)
	case OpFSRemove, OpCounterGet, OpCounterInc:
		return append(b, r.Name...)
	case OpFSRename:
		b = appendU16(b, uint16(len(r.Name)))
		b = append(b, r.Name...)
		return append(b, r.NewName...)
	case OpFSRead:
		b = appendU32(b, r.Handle)
		b = appendU64(b, r.Offset)
		return appendU32(b, r.Length)
	case OpFSWrite:
		b = appendU32(b, r.Handle)
		b = appendU64(b, r.Offset)
		return append(b, r.Data...)
	case OpFSTruncate:
		b = appendU32(b, r.Handle)
		return appendU64(b, r.Offset)
	case OpFSSync, OpFSSize, OpFSClose:
		return appendU32(b, r.Handle)
	}
	return b
}

// ParseFSRequest decodes and validates the request of a storage or counter op.
func ParseFSRequest(op Op, body []byte) (FSRequest, error) {
	d := decoder{b: body, of: KindHostCall}
	var r FSRequest
	name := func(b []byte, max int) string {
		if len(b) == 0 || len(b) > max || !printableASCII(b) {
			d.fail("name must be 1-" + strconv.Itoa(max) + " printable ASCII bytes")
		}
		return string(b)
	}
	switch op {
	case OpFSOpen:
		switch d.u8("create flag") {
		case 0:
		case 1:
			r.Create = true
		default:
			d.fail("create flag must be 0 or 1")
		}
		r.Name = name(d.rest(), MaxFileName)
	case OpFSRemove:
		r.Name = name(d.rest(), MaxFileName)
	case OpCounterGet, OpCounterInc:
		r.Name = name(d.rest(), MaxCounterID)
	case OpFSRename:
		n := int(d.u16("old name length"))
		r.Name = name(d.take(n, "old name"), MaxFileName)
		r.NewName = name(d.rest(), MaxFileName)
	case OpFSRead:
		r.Handle, r.Offset, r.Length = d.u32("handle"), d.u64("offset"), d.u32("length")
		if r.Length > MaxFileIO {
			d.fail("read longer than " + strconv.Itoa(MaxFileIO))
		}
	case OpFSWrite:
		r.Handle, r.Offset = d.u32("handle"), d.u64("offset")
		r.Data = d.rest()
		if len(r.Data) > MaxFileIO {
			d.fail("write longer than " + strconv.Itoa(MaxFileIO))
		}
	case OpFSTruncate:
		r.Handle, r.Offset = d.u32("handle"), d.u64("size")
	case OpFSSync, OpFSSize, OpFSClose:
		r.Handle = d.u32("handle")
	default:
		d.fail("not a storage op")
	}
	if r.Offset > 1<<62 {
		d.fail("offset out of range")
	}
	if err := d.end(); err != nil {
		return FSRequest{}, err
	}
	return r, nil
}

// Limits of LISTEN and DIAL requests.
const (
	MaxNetwork = 8
	MaxAddress = 256
)

// AppendNetAddr encodes a LISTEN or DIAL request: `net_len u8`, network, address.
func AppendNetAddr(b []byte, network, address string) []byte {
	b = append(b, byte(len(network)))
	b = append(b, network...)
	return append(b, address...)
}

// ParseNetAddr decodes a LISTEN or DIAL request. Only TCP networks are accepted, and the address
// must be 1-256 printable ASCII bytes.
func ParseNetAddr(body []byte) (network, address string, err error) {
	d := decoder{b: body, of: KindHostCall}
	network = string(d.take(int(d.u8("network length")), "network"))
	addr := d.rest()
	if err := d.end(); err != nil {
		return "", "", err
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return "", "", protoErr("network %q: want tcp, tcp4 or tcp6", network)
	}
	if len(addr) == 0 || len(addr) > MaxAddress || !printableASCII(addr) {
		return "", "", protoErr("address must be 1-%d printable ASCII bytes", MaxAddress)
	}
	return network, string(addr), nil
}
