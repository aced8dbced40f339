package ingress

import "errors"

// ErrRunTwice is returned by Run when it is called a second time.
var ErrRunTwice = errors.New("ingress: Run called twice")

// Why a matched route has no endpoint to go to; each is a 503.
var (
	errNoService   = errors.New("service not found")
	errNoPort      = errors.New("service has no such port")
	errNoEndpoints = errors.New("no ready endpoints")
)
