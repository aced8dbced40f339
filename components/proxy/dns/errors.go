package dns

import "errors"

// ErrRunTwice is returned by Run when it is called a second time.
var ErrRunTwice = errors.New("dns: Run called twice")
