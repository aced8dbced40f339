package worker

import "errors"

// terminalError marks an error that retrying cannot fix (an invalid
// selector): the worker logs it and drops the key until the object
// changes again.
type terminalError struct{ err error }

func (e terminalError) Error() string { return e.err.Error() }
func (e terminalError) Unwrap() error { return e.err }

// Terminal wraps err so that the worker does not requeue its key. The
// result's message is err's, and errors.Is and errors.As see through it.
func Terminal(err error) error { return terminalError{err: err} }

// IsTerminal reports whether err, or an error it wraps, came from
// Terminal.
func IsTerminal(err error) bool {
	var t terminalError
	return errors.As(err, &t)
}
