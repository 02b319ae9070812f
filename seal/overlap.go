package seal

import "unsafe"

// overlaps reports whether x and y share memory. It compares addresses only
// and reads nothing. Sealing and unsealing into a caller's buffer use it to
// take the direct path (input and output apart, as fast as AES-GCM with
// separate buffers) when they can, and the memmove-then-in-place path when the
// caller's dst overlaps the input; crypto/cipher would otherwise panic on the
// inexact overlap that the 88-byte header creates.
func overlaps(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 {
		return false
	}
	x0, x1 := uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&x[len(x)-1]))
	y0, y1 := uintptr(unsafe.Pointer(&y[0])), uintptr(unsafe.Pointer(&y[len(y)-1]))
	return x0 <= y1 && y0 <= x1
}
