package kubelet

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("kubelet: Run called twice")
