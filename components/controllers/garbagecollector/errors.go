package garbagecollector

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("garbagecollector: Run called twice")

// errNotSynced defers a decision that needs every dependent in the graph
// (orphaning, removing foregroundDeletion) until every informer has
// listed once; the worker retries it shortly, without backoff growth.
var errNotSynced = errors.New("informers have not synced yet")
