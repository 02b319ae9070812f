package storage

import "errors"

// Errors returned by this package. Callers test for them with errors.Is; the
// returned errors wrap them with the operation that failed. No error message
// contains key material or plaintext.
var (
	// ErrCorrupt means an integrity check failed: a node's tag does not
	// verify against its parent (tampered, swapped, from another file or an
	// older version), the header's MAC does not verify, or a journal's MAC
	// does not verify. The data cannot be trusted; restore from a backup.
	ErrCorrupt = errors.New("protected file failed integrity check")

	// ErrWrongFile means the header authenticates under the storage key but
	// belongs to another logical name: the host swapped or renamed files.
	ErrWrongFile = errors.New("protected file belongs to another name")

	// ErrTruncated means the backing file's length does not match its
	// authenticated header: it was truncated or extended, or the host
	// returned short reads.
	ErrTruncated = errors.New("protected file truncated or extended")

	// ErrRollback means the file's commit number does not match the
	// configured monotonic counter: the host presented an older committed
	// version (or the counter's own storage was rolled back).
	ErrRollback = errors.New("protected file rolled back to an older version")

	// ErrMalformed means a header or journal does not follow docs/storage.md:
	// wrong magic, unknown version or suite, non-zero reserved bytes,
	// out-of-range fields.
	ErrMalformed = errors.New("malformed protected file")

	// ErrClosed means the File was closed.
	ErrClosed = errors.New("protected file closed")

	// ErrTooLarge means an offset or size above MaxSize, or a file whose key
	// has reached its encryption budget (MaxWrites node encryptions): copy
	// the data into a new file, which gets a new key.
	ErrTooLarge = errors.New("protected file too large")

	// ErrInvalidArgument means a bad key, name, offset or option.
	ErrInvalidArgument = errors.New("invalid argument")
)
