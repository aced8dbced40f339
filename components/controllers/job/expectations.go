package job

import (
	"sync"
	"time"
)

// expectations are kube's UIDTrackingControllerExpectations: per
// Job key, how many Pod creates and which Pod deletes a sync has
// issued that the Pod informer has not yet shown. While any are pending
// the Job's cached Pods are known to be stale, so sync neither
// creates nor deletes (it still writes status).
//
// Creates are counted, not named: the name of a generateName Pod is known
// only once the create returns, and the watch may show the Pod before
// that. Any Pod added with this Job as controller lowers the count.
// Deletes are named ("namespace/name"), so that a deletion seen twice (as
// a deletionTimestamp update and then as the delete) counts once and a
// Pod deleted by someone else does not count at all.
type expectations struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]*expectation
}

type expectation struct {
	add, del int
	deleting map[string]struct{}
	at       time.Time
}

func newExpectations(ttl time.Duration, now func() time.Time) *expectations {
	return &expectations{ttl: ttl, now: now, m: map[string]*expectation{}}
}

// satisfied reports whether key may create or delete Pods: nothing is
// pending, or what is pending has expired. When it may not, wait is the
// time until the pending expectations expire.
func (e *expectations) satisfied(key string) (ok bool, wait time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.m[key]
	if x == nil || (x.add <= 0 && x.del <= 0) {
		return true, 0
	}
	age := e.now().Sub(x.at)
	if age >= e.ttl {
		return true, 0
	}
	return false, e.ttl - age
}

// expectCreations records that n Pods are about to be created, replacing
// whatever key expected before (it was satisfied, or sync would not act).
func (e *expectations) expectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{add: n, at: e.now()}
}

// expectDeletions records that the named Pods are about to be deleted.
func (e *expectations) expectDeletions(key string, pods []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &expectation{del: len(pods), deleting: make(map[string]struct{}, len(pods)), at: e.now()}
	for _, p := range pods {
		x.deleting[p] = struct{}{}
	}
	e.m[key] = x
}

// creationsObserved lowers the pending creates of key by n: the informer
// showed a Pod, or a create failed and will never be shown.
func (e *expectations) creationsObserved(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.m[key]; x != nil {
		x.add -= n
	}
}

// deletionObserved lowers the pending deletes of key if pod is one of
// them; a second observation of the same Pod does nothing.
func (e *expectations) deletionObserved(key, pod string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.m[key]
	if x == nil {
		return
	}
	if _, ok := x.deleting[pod]; ok {
		delete(x.deleting, pod)
		x.del--
	}
}

// forget drops key, so that a Job recreated under the same name
// starts clean.
func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
