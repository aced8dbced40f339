package nodelifecycle

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("nodelifecycle: Run called twice")
