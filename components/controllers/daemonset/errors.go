package daemonset

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("daemonset: Run called twice")

// terminalError marks an error that retrying cannot fix (an invalid
// selector): the worker logs it and drops the key until the DaemonSet
// changes again.
type terminalError struct{ err error }

func (e terminalError) Error() string { return e.err.Error() }
func (e terminalError) Unwrap() error { return e.err }

// terminal wraps err so that the worker does not requeue it.
func terminal(err error) error { return terminalError{err: err} }

func isTerminal(err error) bool {
	var t terminalError
	return errors.As(err, &t)
}
