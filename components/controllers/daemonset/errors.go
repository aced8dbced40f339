package daemonset

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("daemonset: Run called twice")
