package namespace

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("namespace: Run called twice")

// contentRemainingError says a pass deleted what it could but objects
// remain (terminating pods, finalizers): the worker retries with backoff
// and logs at debug, as this is waiting, not failing.
type contentRemainingError struct{ msg string }

func (e *contentRemainingError) Error() string { return "content remains: " + e.msg }
