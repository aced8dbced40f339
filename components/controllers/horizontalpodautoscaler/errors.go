package horizontalpodautoscaler

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("horizontalpodautoscaler: Run called twice")

// errNoCustomMetrics is what a request to custom.metrics.k8s.io or
// external.metrics.k8s.io gets from kiln's API server, which serves
// neither; kube's controller reports the same error when no adapter is
// installed.
var errNoCustomMetrics = errors.New("the server could not find the requested resource")
