package apiserver

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"

	"kiln.dev/kiln/components/store"
)

// The watch cache is the small version of kube-apiserver's cacher
// (k8s.io/apiserver/pkg/storage/cacher): each resource that is watched
// gets one store watch, started on its first client watch; every event is
// decoded once into the attributes selectors read and encoded once, and
// fanned out to the client watches on those. Before it, each client watch
// was its own etcd watch that decoded every event of the resource twice,
// and 100 kubelets' pod watches spent a third of the server's CPU there.
//
// A cache starts by replaying the history etcd keeps, then follows it. A
// watch attaches at its start revision when the cache holds every event
// after it (the window of the last watchCacheSize events); an older
// revision that etcd still keeps gets a direct store watch, as before, and
// a compacted one 410 Gone, checked against the store.

// watchCacheSize is how many recent events a resource's cache keeps: a
// reconnecting watcher resumes from memory when its revision is inside
// them. kube keeps about 75 s of history; 4096 pod events is a scale-up of
// 1000 pods through create, bind and status.
const watchCacheSize = 4096

// watcherBuffer is how many events a client watch may fall behind its
// cache before the cache drops it; the client watches again from its last
// revision, as kube's cacher makes it do.
const watcherBuffer = 1024

// cachedEvent is one store event, decoded and encoded once for every watch.
type cachedEvent struct {
	ev                store.Event
	cur, prev         objAttrs
	curOK, prevOK     bool // the attributes decoded
	curNode, prevNode string
	curJSON           func() []byte // the object at ev.KV.ModRevision, as stored; watches of a kind with a conversion make their own (sendItem)
	prevJSON          func() []byte // the previous state, at the revision of the change
}

func newCachedEvent(res *resource, ev store.Event) *cachedEvent {
	ce := &cachedEvent{ev: ev}
	var err error
	ce.cur, err = attrsOf(res, ev.KV.Value)
	ce.curOK = err == nil
	ce.curNode = ce.cur.fields["spec.nodeName"]
	kv := ev.KV
	ce.curJSON = sync.OnceValue(func() []byte { return withResourceVersion(kv.Value, kv.ModRevision) })
	if ev.Type == store.Put && ev.Prev != nil {
		ce.prev, err = attrsOf(res, ev.Prev.Value)
		ce.prevOK = err == nil
		ce.prevNode = ce.prev.fields["spec.nodeName"]
		prev := ev.Prev.Value
		ce.prevJSON = sync.OnceValue(func() []byte { return withResourceVersion(prev, kv.ModRevision) })
	}
	return ce
}

// watchItem is what one watch sends for one cached event: a change typed
// for that watch's selector, or a progress bookmark (ce nil).
type watchItem struct {
	ce       *cachedEvent
	typ      string
	usePrev  bool // send the previous state (it stopped matching)
	progress int64
}

// kv is the state the item sends, at the revision of the change.
func (it watchItem) kv() store.KV {
	if it.usePrev {
		kv := *it.ce.ev.Prev
		kv.ModRevision = it.ce.ev.KV.ModRevision
		return kv
	}
	return it.ce.ev.KV
}

func (it watchItem) json() []byte {
	if it.usePrev {
		return it.ce.prevJSON()
	}
	return it.ce.curJSON()
}

// cacheWatcher is one client watch attached to a cache. The cache owns ch:
// it sends and, when it drops the watcher, sets err and closes ch.
type cacheWatcher struct {
	prefix    string // namespace key prefix
	f         filter
	from      int64 // send only what is newer
	bookmarks bool
	node      string // exact spec.nodeName the selector asks for, "" none
	ch        chan watchItem
	err       error
}

// item types the event for this watcher's selector, as handle does for a
// direct store watch: an object that stops matching is DELETED, one that
// starts matching ADDED.
func (cw *cacheWatcher) item(ce *cachedEvent) (watchItem, bool) {
	if ce.ev.Revision <= cw.from || !strings.HasPrefix(ce.ev.KV.Key, cw.prefix) {
		return watchItem{}, false
	}
	empty := cw.f.empty()
	cur := empty || (ce.curOK && cw.f.matchesAttrs(ce.cur))
	if ce.ev.Type == store.Deleted {
		return watchItem{ce: ce, typ: "DELETED"}, cur
	}
	prev := ce.ev.Prev != nil && (empty || (ce.prevOK && cw.f.matchesAttrs(ce.prev)))
	switch {
	case cur && prev:
		return watchItem{ce: ce, typ: "MODIFIED"}, true
	case cur:
		return watchItem{ce: ce, typ: "ADDED"}, true
	case prev:
		return watchItem{ce: ce, typ: "DELETED", usePrev: true}, true
	}
	return watchItem{}, false
}

// watchCache is one resource's cache.
type watchCache struct {
	res   *resource
	store *store.Store
	ctx   context.Context // the store watch's; RequestProgress needs it

	mu     sync.Mutex
	dead   bool
	lowRev int64 // every event after lowRev is in ring
	curRev int64 // the last revision seen (event or progress)
	ring   []*cachedEvent
	start  int // index of the oldest event in ring once it is full
	all    map[*cacheWatcher]struct{}
	byNode map[string]map[*cacheWatcher]struct{}
}

// watchCaches holds the caches of the resources being watched.
type watchCaches struct {
	mu      sync.Mutex
	ctx     context.Context // nil until Run starts them, and after it stops
	wg      sync.WaitGroup
	byPrefx map[string]*watchCache
}

// start lets caches start, each living until ctx is done.
func (c *watchCaches) start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ctx = ctx
	c.byPrefx = map[string]*watchCache{}
}

// wait stops new caches and waits for the running ones, which end with
// the ctx given to start.
func (c *watchCaches) wait() {
	c.mu.Lock()
	c.ctx = nil
	c.mu.Unlock()
	c.wg.Wait()
}

// get returns the resource's cache, starting it; nil when caches are not
// running (the server's handler used without Run) or the store fails.
func (c *watchCaches) get(s *store.Store, res *resource) *watchCache {
	prefix := res.listPrefix("")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil || c.ctx.Err() != nil {
		return nil
	}
	if wc := c.byPrefx[prefix]; wc != nil {
		return wc
	}
	// Replay all the history etcd keeps: a client lists, then watches
	// from the list's revision, usually before the cache started, and
	// its watch should not need a store watch of its own.
	oldest, _, err := s.OldestRevision(c.ctx)
	if err != nil {
		return nil
	}
	wc := &watchCache{res: res, store: s, ctx: c.ctx, lowRev: oldest - 1, curRev: oldest - 1,
		all: map[*cacheWatcher]struct{}{}, byNode: map[string]map[*cacheWatcher]struct{}{}}
	events := s.Watch(c.ctx, prefix, oldest)
	c.byPrefx[prefix] = wc
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := wc.run(events)
		c.mu.Lock()
		if c.byPrefx[prefix] == wc {
			delete(c.byPrefx, prefix)
		}
		c.mu.Unlock()
		wc.stop(err)
	}()
	return wc
}

// run applies store events until the store watch ends, and returns why.
func (wc *watchCache) run(events <-chan store.Event) error {
	for ev := range events {
		switch ev.Type {
		case store.Error:
			return ev.Err
		case store.Progress:
			wc.progress(ev.Revision)
		default:
			wc.add(newCachedEvent(wc.res, ev))
		}
	}
	return context.Canceled
}

func (wc *watchCache) add(ce *cachedEvent) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if len(wc.ring) < watchCacheSize {
		wc.ring = append(wc.ring, ce)
	} else {
		wc.lowRev = wc.ring[wc.start].ev.Revision
		wc.ring[wc.start] = ce
		wc.start = (wc.start + 1) % watchCacheSize
	}
	wc.curRev = ce.ev.Revision
	wc.dispatch(ce, wc.all)
	if ce.curNode != "" {
		wc.dispatch(ce, wc.byNode[ce.curNode])
	}
	if ce.prevNode != "" && ce.prevNode != ce.curNode {
		wc.dispatch(ce, wc.byNode[ce.prevNode])
	}
}

func (wc *watchCache) dispatch(ce *cachedEvent, ws map[*cacheWatcher]struct{}) {
	for cw := range ws {
		it, ok := cw.item(ce)
		if !ok {
			continue
		}
		select {
		case cw.ch <- it:
		default:
			wc.drop(cw, nil)
		}
	}
}

func (wc *watchCache) progress(rev int64) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if rev <= wc.curRev {
		return
	}
	wc.curRev = rev
	send := func(cw *cacheWatcher) {
		if !cw.bookmarks || rev <= cw.from {
			return
		}
		select {
		case cw.ch <- watchItem{progress: rev}:
		default: // a bookmark is optional; the next one will do
		}
	}
	for cw := range wc.all {
		send(cw)
	}
	for _, ws := range wc.byNode {
		for cw := range ws {
			send(cw)
		}
	}
}

// requestProgress asks etcd for a progress event on the cache's watch.
func (wc *watchCache) requestProgress() {
	_ = wc.store.RequestProgress(wc.ctx)
}

// attach registers a watch of prefix for events after from and returns it
// with the cached events it must send first; ok is false when the cache
// does not hold every event after from.
func (wc *watchCache) attach(prefix string, f filter, from int64, bookmarks bool) (cw *cacheWatcher, backlog []watchItem, ok bool) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if wc.dead || from < wc.lowRev {
		return nil, nil, false
	}
	cw = &cacheWatcher{prefix: prefix, f: f, from: from, bookmarks: bookmarks, ch: make(chan watchItem, watcherBuffer)}
	if wc.res.Group == "" && wc.res.Name == "pods" {
		cw.node, _ = f.fields.RequiresExactMatch("spec.nodeName")
	}
	// The ring is in revision order from start; skip what from covers.
	n := len(wc.ring)
	first := sort.Search(n, func(i int) bool { return wc.ring[(wc.start+i)%n].ev.Revision > from })
	for i := first; i < n; i++ {
		if it, ok := cw.item(wc.ring[(wc.start+i)%n]); ok {
			backlog = append(backlog, it)
		}
	}
	if cw.node != "" {
		set := wc.byNode[cw.node]
		if set == nil {
			set = map[*cacheWatcher]struct{}{}
			wc.byNode[cw.node] = set
		}
		set[cw] = struct{}{}
	} else {
		wc.all[cw] = struct{}{}
	}
	return cw, backlog, true
}

// detach removes a watch that ended on its own.
func (wc *watchCache) detach(cw *cacheWatcher) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	wc.remove(cw)
}

// remove reports whether cw was registered. Callers hold mu.
func (wc *watchCache) remove(cw *cacheWatcher) bool {
	if cw.node != "" {
		set := wc.byNode[cw.node]
		if _, ok := set[cw]; !ok {
			return false
		}
		delete(set, cw)
		if len(set) == 0 {
			delete(wc.byNode, cw.node)
		}
		return true
	}
	if _, ok := wc.all[cw]; !ok {
		return false
	}
	delete(wc.all, cw)
	return true
}

// drop ends a watcher: it gets err (nil: just end the stream). Callers
// hold mu.
func (wc *watchCache) drop(cw *cacheWatcher, err error) {
	if wc.remove(cw) {
		cw.err = err
		close(cw.ch)
	}
}

// stop ends the cache and every watcher on it with err.
func (wc *watchCache) stop(err error) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	wc.dead = true
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	for cw := range wc.all {
		wc.drop(cw, err)
	}
	for _, ws := range wc.byNode {
		for cw := range ws {
			wc.drop(cw, err)
		}
	}
	wc.ring = nil
}
