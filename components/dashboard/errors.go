package dashboard

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("dashboard: Run called twice")
