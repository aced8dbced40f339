package routes

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("routes: Run called twice")
