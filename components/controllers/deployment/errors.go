package deployment

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("deployment: Run called twice")

// errSelectsAll is the terminal error of a Deployment with an empty
// selector, which would claim every pod of its namespace.
var errSelectsAll = errors.New("selector is empty and would select all pods")

// terminalError marks an error that retrying cannot fix (an invalid
// selector): the worker logs it and drops the key until the Deployment
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
