package store

import "errors"

var (
	// ErrNotFound is returned when a key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned by Create when the key already exists.
	ErrExists = errors.New("already exists")
	// ErrConflict is returned when a compare-and-swap fails because the key
	// changed since the given revision.
	ErrConflict = errors.New("revision conflict")
	// ErrCompacted is returned when a read or watch asks for a revision that
	// compaction has removed.
	ErrCompacted = errors.New("required revision has been compacted")
	// ErrFutureRevision is returned when a read asks for a revision the
	// store has not reached yet.
	ErrFutureRevision = errors.New("required revision is a future revision")
	// ErrTooLarge is returned when a value exceeds what etcd accepts in one
	// request.
	ErrTooLarge = errors.New("request is too large")
	// ErrPrecondition is returned by Txn when one of its extra conditions
	// does not hold.
	ErrPrecondition = errors.New("precondition failed")
)
