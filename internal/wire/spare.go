package wire

import "sync"

// Reuse sizes: bodies from MinReuse bytes go through a Spare; one larger than MaxReuse is not
// kept between messages.
const (
	MinReuse = 64 << 10
	MaxReuse = 8 << 20
)

// Spare is one buffer for large message bodies, reused from message to message by whoever
// owns it between Take and Give (a receiver that knows the body's reader will not keep it:
// enclave.HandleBorrowed, host.CallInto). It is safe for concurrent use.
type Spare struct {
	mu sync.Mutex
	b  []byte
}

// Take returns the spare buffer if it can hold n bytes and n is at least MinReuse, and then
// holds none until Give; otherwise nil.
func (s *Spare) Take(n int) []byte {
	if n < MinReuse {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cap(s.b) < n {
		return nil
	}
	b := s.b
	s.b = nil
	return b
}

// Give makes b the spare buffer, unless it is outside [MinReuse, MaxReuse] or the one held is
// larger. The caller must not use b afterwards.
func (s *Spare) Give(b []byte) {
	if cap(b) < MinReuse || cap(b) > MaxReuse {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cap(b) > cap(s.b) {
		s.b = b[:0]
	}
}
