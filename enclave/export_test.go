package enclave

import "io"

// WithAttention gives Serve an attention channel, as Run does from the launch contract.
func WithAttention(r io.ReadCloser) Option {
	return func(o *options) error { o.attention = r; return nil }
}
