package wire

import (
	"encoding/binary"
	"time"
	"unicode/utf8"

	"github.com/asylo-go/asylo/identity"
)

// decoder reads fields from a body, bounds-checked. After the first failure every read returns
// zero values and err records what was wrong.
type decoder struct {
	b   []byte
	err error
	of  Kind
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = protoErr("%v body: %s", d.of, what)
	}
	d.b = nil
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.fail("truncated " + what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(what string) uint8 {
	if v := d.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16(what string) uint16 {
	if v := d.take(2, what); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32(what string) uint32 {
	if v := d.take(4, what); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64(what string) uint64 {
	if v := d.take(8, what); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// rest returns the remaining bytes (possibly empty, never nil-vs-empty significant).
func (d *decoder) rest() []byte {
	if d.err != nil {
		return nil
	}
	v := d.b
	d.b = nil
	return v
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

func timeoutNanos(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64(d)
}

func nanosTimeout(v uint64) time.Duration {
	if v > uint64(1<<63-1) {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(v)
}

// Hello is the body of HELLO.
type Hello struct {
	Version uint16
	MaxBody uint32
}

// AppendHello encodes h.
func AppendHello(b []byte, h Hello) []byte {
	b = appendU16(b, h.Version)
	b = appendU16(b, 0)
	return appendU32(b, h.MaxBody)
}

// ParseHello decodes and validates a HELLO body.
func ParseHello(body []byte) (Hello, error) {
	d := decoder{b: body, of: KindHello}
	h := Hello{Version: d.u16("version")}
	if d.u16("reserved") != 0 {
		d.fail("non-zero reserved field")
	}
	h.MaxBody = d.u32("max_body")
	if err := d.end(); err != nil {
		return Hello{}, err
	}
	if h.Version != Version {
		return Hello{}, protoErr("unsupported protocol version %d (this side speaks %d)", h.Version, Version)
	}
	if h.MaxBody < 4096 || h.MaxBody > HardMaxBody {
		return Hello{}, protoErr("max_body %d outside [4096, %d]", h.MaxBody, HardMaxBody)
	}
	return h, nil
}

// InitParams is the body of INIT.
type InitParams struct {
	Timeout  time.Duration
	Name     string
	LogLevel int32
	Identity identity.Identity
	Config   []byte
}

const (
	initFlagSigned = 1 << 0
	initFlagDebug  = 1 << 1
)

// AppendInit encodes p. The caller ensures Name and Identity.Backend respect the limits
// (ValidateName); oversized strings are truncated here so the frame stays valid.
func AppendInit(b []byte, p InitParams) []byte {
	b = appendU64(b, timeoutNanos(p.Timeout))
	name := p.Name
	if len(name) > MaxEnclaveName {
		name = name[:MaxEnclaveName]
	}
	b = append(b, byte(len(name)))
	b = append(b, name...)
	b = appendU32(b, uint32(p.LogLevel))
	be := p.Identity.Backend
	if len(be) > MaxBackendName {
		be = be[:MaxBackendName]
	}
	b = append(b, byte(len(be)))
	b = append(b, be...)
	b = append(b, p.Identity.Measurement[:]...)
	b = append(b, p.Identity.SignerID[:]...)
	b = appendU32(b, p.Identity.ProductID)
	b = appendU32(b, p.Identity.SVN)
	var flags byte
	if p.Identity.Signed {
		flags |= initFlagSigned
	}
	if p.Identity.Debug {
		flags |= initFlagDebug
	}
	b = append(b, flags)
	return append(b, p.Config...)
}

// ParseInit decodes and validates an INIT body.
func ParseInit(body []byte) (InitParams, error) {
	d := decoder{b: body, of: KindInit}
	var p InitParams
	p.Timeout = nanosTimeout(d.u64("timeout"))
	nameLen := int(d.u8("name length"))
	if nameLen > MaxEnclaveName {
		d.fail("enclave name too long")
	}
	name := d.take(nameLen, "name")
	if !utf8.Valid(name) {
		d.fail("enclave name is not UTF-8")
	}
	p.Name = string(name)
	p.LogLevel = int32(d.u32("log level"))
	beLen := int(d.u8("backend length"))
	if beLen > MaxBackendName {
		d.fail("backend name too long")
	}
	be := d.take(beLen, "backend")
	if !printableASCII(be) {
		d.fail("backend name is not printable ASCII")
	}
	p.Identity.Backend = string(be)
	copy(p.Identity.Measurement[:], d.take(identity.MeasurementSize, "measurement"))
	copy(p.Identity.SignerID[:], d.take(len(p.Identity.SignerID), "signer id"))
	p.Identity.ProductID = d.u32("product id")
	p.Identity.SVN = d.u32("svn")
	flags := d.u8("flags")
	if flags&^(initFlagSigned|initFlagDebug) != 0 {
		d.fail("unknown identity flags")
	}
	p.Identity.Signed = flags&initFlagSigned != 0
	p.Identity.Debug = flags&initFlagDebug != 0
	p.Config = d.rest()
	if err := d.end(); err != nil {
		return InitParams{}, err
	}
	return p, nil
}

func printableASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// ValidMethodName reports whether name is a legal method name (docs/wire.md, "Limits").
func ValidMethodName(name string) bool { return validMethodName(name) }

func validMethodName[S string | []byte](name S) bool {
	if len(name) == 0 || len(name) > MaxMethodName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_' || c == '.' || c == ':' || c == '/' || c == '-':
		default:
			return false
		}
	}
	return true
}

// Request is the decoded body of RUN, CALL or FINALIZE.
type Request struct {
	Timeout time.Duration
	Method  []byte // CALL only; aliases the body, like Input
	Input   []byte
}

// AppendRequestHeader encodes the fields of a RUN/CALL/FINALIZE body that precede the input; the
// input is written as a separate part so large inputs are not copied.
func AppendRequestHeader(b []byte, kind Kind, timeout time.Duration, method string) []byte {
	b = appendU64(b, timeoutNanos(timeout))
	if kind == KindCall {
		b = append(b, byte(len(method)))
		b = append(b, method...)
	}
	return b
}

// ParseRequest decodes a RUN, CALL or FINALIZE body.
func ParseRequest(kind Kind, body []byte) (Request, error) {
	d := decoder{b: body, of: kind}
	r := Request{Timeout: nanosTimeout(d.u64("timeout"))}
	if kind == KindCall {
		n := int(d.u8("method length"))
		r.Method = d.take(n, "method")
		if d.err == nil && !validMethodName(r.Method) {
			d.fail("invalid method name")
		}
	}
	r.Input = d.rest()
	if err := d.end(); err != nil {
		return Request{}, err
	}
	return r, nil
}

// AppendStatus encodes the status that starts a RESULT or HOSTRESULT body.
func AppendStatus(b []byte, s Status) []byte { return appendU16(b, uint16(s)) }

// ParseResult decodes a RESULT or HOSTRESULT body into its status and payload. For a non-OK
// status the payload is an error message, which must be UTF-8 and at most MaxErrorMessage bytes.
func ParseResult(kind Kind, body []byte) (Status, []byte, error) {
	d := decoder{b: body, of: kind}
	s := Status(d.u16("status"))
	if d.err == nil && s > maxStatus {
		d.fail("unknown status code")
	}
	p := d.rest()
	if err := d.end(); err != nil {
		return 0, nil, err
	}
	if s != StatusOK && (len(p) > MaxErrorMessage || !utf8.Valid(p)) {
		return 0, nil, protoErr("%v body: error message is not UTF-8 of at most %d bytes", kind, MaxErrorMessage)
	}
	return s, p, nil
}

// TruncateMessage shortens an error message to MaxErrorMessage bytes on a UTF-8 boundary and
// replaces invalid UTF-8, so that the receiver accepts it.
func TruncateMessage(msg string) string {
	msg = toValidUTF8(msg)
	if len(msg) <= MaxErrorMessage {
		return msg
	}
	cut := MaxErrorMessage
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut]
}

func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[:n]...)
		}
		s = s[n:]
	}
	return string(b)
}

// AppendHostCallHeader encodes the op that starts a HOSTCALL body.
func AppendHostCallHeader(b []byte, op Op) []byte { return appendU16(b, uint16(op)) }

// ParseHostCall decodes a HOSTCALL body.
func ParseHostCall(body []byte) (Op, []byte, error) {
	d := decoder{b: body, of: KindHostCall}
	op := Op(d.u16("op"))
	p := d.rest()
	if err := d.end(); err != nil {
		return 0, nil, err
	}
	return op, p, nil
}

// Attr is one key/value of a log record.
type Attr struct{ Key, Value string }

// LogRecord is the body of LOG.
type LogRecord struct {
	Level   int32
	Message string
	Attrs   []Attr
}

// AppendLog encodes r, dropping attributes that would push the record over MaxLogRecord.
func AppendLog(b []byte, r LogRecord) []byte {
	start := len(b)
	msg := r.Message
	if len(msg) > MaxLogRecord/2 {
		msg = msg[:MaxLogRecord/2]
	}
	b = appendU32(b, uint32(r.Level))
	b = appendU16(b, uint16(len(msg)))
	b = append(b, msg...)
	nAt := len(b)
	b = appendU16(b, 0)
	n := 0
	for _, a := range r.Attrs {
		if len(b)-start+4+len(a.Key)+len(a.Value) > MaxLogRecord || len(a.Key) > 0xffff || len(a.Value) > 0xffff {
			continue
		}
		b = appendU16(b, uint16(len(a.Key)))
		b = append(b, a.Key...)
		b = appendU16(b, uint16(len(a.Value)))
		b = append(b, a.Value...)
		n++
	}
	binary.LittleEndian.PutUint16(b[nAt:], uint16(n))
	return b
}

// ParseLog decodes a LOG body. Strings that are not UTF-8 are kept but made valid, because they
// end up in the host's logs.
func ParseLog(body []byte) (LogRecord, error) {
	if len(body) > MaxLogRecord {
		return LogRecord{}, protoErr("LOG body of %d bytes exceeds %d", len(body), MaxLogRecord)
	}
	d := decoder{b: body, of: KindLog}
	r := LogRecord{Level: int32(d.u32("level"))}
	r.Message = toValidUTF8(string(d.take(int(d.u16("message length")), "message")))
	n := int(d.u16("attribute count"))
	for i := 0; i < n && d.err == nil; i++ {
		k := d.take(int(d.u16("key length")), "key")
		v := d.take(int(d.u16("value length")), "value")
		r.Attrs = append(r.Attrs, Attr{Key: toValidUTF8(string(k)), Value: toValidUTF8(string(v))})
	}
	if err := d.end(); err != nil {
		return LogRecord{}, err
	}
	return r, nil
}
