package expectations

import (
	"sync"
	"time"
)

// Tracker is kube's UIDTrackingControllerExpectations: per controller key
// (a ReplicaSet's, Job's or DaemonSet's "namespace/name"), how many Pod
// creates and which Pod deletes a sync has issued that the Pod informer
// has not yet shown. While any are pending the controller's cached Pods
// are known to be stale, so sync neither creates nor deletes (it still
// writes status).
//
// Creates are counted, not named: the name of a generateName Pod is known
// only once the create returns, and the watch may show the Pod before
// that. Any Pod added with the key's object as controller lowers the
// count. Deletes are named ("namespace/name"), so that a deletion seen
// twice (as a deletionTimestamp update and then as the delete) counts once
// and a Pod deleted by someone else does not count at all.
//
// A Tracker is safe for concurrent use.
type Tracker struct {
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

// New returns an empty Tracker whose expectations expire ttl after they
// were recorded, by the clock now.
func New(ttl time.Duration, now func() time.Time) *Tracker {
	return &Tracker{ttl: ttl, now: now, m: map[string]*expectation{}}
}

// Satisfied reports whether key may create or delete Pods: nothing is
// pending, or what is pending has expired. When it may not, wait is the
// time until the pending expectations expire.
func (e *Tracker) Satisfied(key string) (ok bool, wait time.Duration) {
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

// ExpectCreations records that n Pods are about to be created, replacing
// whatever key expected before (it was satisfied, or sync would not act).
func (e *Tracker) ExpectCreations(key string, n int) { e.Expect(key, n, nil) }

// ExpectDeletions records that the named Pods are about to be deleted,
// replacing whatever key expected before.
func (e *Tracker) ExpectDeletions(key string, pods []string) { e.Expect(key, 0, pods) }

// Expect records that n Pods are about to be created and the named Pods
// deleted, replacing whatever key expected before.
func (e *Tracker) Expect(key string, n int, pods []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &expectation{add: n, del: len(pods), deleting: make(map[string]struct{}, len(pods)), at: e.now()}
	for _, p := range pods {
		x.deleting[p] = struct{}{}
	}
	e.m[key] = x
}

// CreationsObserved lowers the pending creates of key by n: the informer
// showed a Pod, or a create failed and will never be shown.
func (e *Tracker) CreationsObserved(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.m[key]; x != nil {
		x.add -= n
	}
}

// DeletionObserved lowers the pending deletes of key if pod is one of
// them; a second observation of the same Pod does nothing.
func (e *Tracker) DeletionObserved(key, pod string) {
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

// Forget drops key, so that an object recreated under the same name
// starts clean.
func (e *Tracker) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
