package proxy

import "errors"

// ErrRunTwice is returned by Run when it is called a second time.
var ErrRunTwice = errors.New("proxy: Run called twice")
