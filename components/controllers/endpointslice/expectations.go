package endpointslice

import (
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// objectKind is the kind of object an expectation is about.
type objectKind int

const (
	kindSlice objectKind = iota
	kindEndpoints
)

// expectation is one write of this controller that the informer cache
// must show before a sync may trust the cache again: without it, a sync
// right after a create would not see the new slice and create a second
// one (kube's endpointSliceTracker and ControllerExpectations do the
// same).
type expectation struct {
	kind objectKind
	name string
	// resourceVersion is what a create or update returned; the cache is
	// caught up once it holds that version or a later one.
	resourceVersion string
	// deleted: the cache is caught up once the object of uid is gone.
	deleted bool
	uid     types.UID
	at      time.Time
}

// expectations holds the unobserved writes per Service key. Workers call
// it for different keys at once, hence the mutex.
type expectations struct {
	now func() time.Time

	mu sync.Mutex
	m  map[string][]expectation
}

func newExpectations(now func() time.Time) *expectations {
	return &expectations{now: now, m: map[string][]expectation{}}
}

// expect records a write made for the Service key.
func (e *expectations) expect(key string, x expectation) {
	x.at = e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = append(e.m[key], x)
}

// forget drops the expectations about an object that was deleted by
// someone: its write can no longer be observed.
func (e *expectations) forget(key string, kind objectKind, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	list := e.m[key]
	out := list[:0]
	for _, x := range list {
		if x.kind != kind || x.name != name {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		delete(e.m, key)
		return
	}
	e.m[key] = out
}

// pending drops the expectations of key that observed reports as seen,
// or that are older than expectationTTL, and returns how long the oldest
// of the rest may still wait; ok is false when none are left.
func (e *expectations) pending(key string, observed func(expectation) bool) (wait time.Duration, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	list := e.m[key]
	out := list[:0]
	for _, x := range list {
		left := expectationTTL - now.Sub(x.at)
		if left <= 0 || observed(x) {
			continue
		}
		out = append(out, x)
		wait = max(wait, left)
	}
	if len(out) == 0 {
		delete(e.m, key)
		return 0, false
	}
	e.m[key] = out
	return wait, true
}

// versionAtLeast says whether resource version have is want or later.
// Versions are opaque to clients in general; kiln's, like kube's over
// etcd, are revisions, and anything else compares only for equality.
func versionAtLeast(have, want string) bool {
	if have == want {
		return true
	}
	h, err1 := strconv.ParseUint(have, 10, 64)
	w, err2 := strconv.ParseUint(want, 10, 64)
	return err1 == nil && err2 == nil && h >= w
}
