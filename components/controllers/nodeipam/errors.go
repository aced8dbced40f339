package nodeipam

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("nodeipam: Run called twice")

// ErrRangeFull is returned (and retried) by a sync that found no free block.
var ErrRangeFull = errors.New("nodeipam: no pod CIDR left in the cluster CIDR")
