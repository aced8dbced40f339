package replicaset

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("replicaset: Run called twice")
