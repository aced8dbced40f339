package apiserver

import (
	"errors"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"kiln.dev/kiln/components/apiserver/resources"
	"kiln.dev/kiln/components/store"
)

// These tests drive a pods cache with synthetic store events; the watch
// semantics over real etcd and HTTPS are in informer_test.go and
// watchcache_e2e_test.go.

func podsCache(t *testing.T) *watchCache {
	t.Helper()
	r, ok := resources.NewCatalog(resources.Builtin()).Lookup("", "v1", "pods")
	if !ok {
		t.Fatal("no pods resource")
	}
	return &watchCache{res: newResource(r), all: map[*cacheWatcher]struct{}{}, byNode: map[string]map[*cacheWatcher]struct{}{}}
}

func podKV(ns, name, node, app string, rev int64) store.KV {
	v := fmt.Sprintf(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":%q,"namespace":%q,"labels":{"app":%q}},"spec":{"nodeName":%q}}`, name, ns, app, node)
	return store.KV{Key: store.Prefix("", "pods", ns) + name, Value: []byte(v), ModRevision: rev}
}

func put(wc *watchCache, kv store.KV, prev *store.KV) {
	wc.add(newCachedEvent(wc.res, store.Event{Type: store.Put, KV: kv, Prev: prev, Revision: kv.ModRevision}))
}

func del(wc *watchCache, last store.KV, rev int64) {
	last.ModRevision = rev
	wc.add(newCachedEvent(wc.res, store.Event{Type: store.Deleted, KV: last, Revision: rev}))
}

func mustSelector(t *testing.T, ls, fs string) filter {
	t.Helper()
	l, err := labels.Parse(ls)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fields.ParseSelector(fs)
	if err != nil {
		t.Fatal(err)
	}
	return filter{labels: l, fields: f}
}

// drain returns what the watcher has queued as "TYPE name@rev".
func drain(cw *cacheWatcher) []string {
	var out []string
	for {
		select {
		case it, ok := <-cw.ch:
			if !ok {
				return append(out, "closed")
			}
			out = append(out, describe(it))
		default:
			return out
		}
	}
}

func describe(it watchItem) string {
	if it.ce == nil {
		return fmt.Sprintf("BOOKMARK @%d", it.progress)
	}
	kv := it.kv()
	return fmt.Sprintf("%s %s@%d", it.typ, kv.Key[len(store.Prefix("", "pods", "")):], kv.ModRevision)
}

func wantItems(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestWatchCache_nodeIndex_transitions(t *testing.T) {
	wc := podsCache(t)
	n1, _, _ := wc.attach(store.Prefix("", "pods", ""), mustSelector(t, "", "spec.nodeName=n1"), 0, false)
	all, _, _ := wc.attach(store.Prefix("", "pods", "default"), mustSelector(t, "app=web", ""), 0, false)
	if n1.node != "n1" || len(wc.byNode["n1"]) != 1 || len(wc.all) != 1 {
		t.Fatalf("index: node %q, byNode %v, all %d", n1.node, wc.byNode, len(wc.all))
	}

	a1 := podKV("default", "a", "", "web", 10)
	put(wc, a1, nil)
	a2 := podKV("default", "a", "n1", "web", 11) // bound to n1
	put(wc, a2, &a1)
	a3 := podKV("default", "a", "n1", "db", 12) // relabelled
	put(wc, a3, &a2)
	b := podKV("other", "b", "n2", "web", 13) // another node and namespace
	put(wc, b, nil)
	del(wc, a3, 14)

	wantItems(t, "node n1", drain(n1), "ADDED default/a@11", "MODIFIED default/a@12", "DELETED default/a@14")
	wantItems(t, "app=web in default", drain(all), "ADDED default/a@10", "MODIFIED default/a@11", "DELETED default/a@12")

	// The stopped-matching DELETED carries the last matching state,
	// encoded once, at the revision of the change.
	wc.detach(n1)
	wc.detach(all)
	if len(wc.byNode) != 0 || len(wc.all) != 0 {
		t.Fatalf("detach left %v %v", wc.byNode, wc.all)
	}
}

func TestWatchCache_attach_backlogAfterRevision(t *testing.T) {
	wc := podsCache(t)
	wc.lowRev, wc.curRev = 4, 4
	for rev := int64(5); rev <= 9; rev++ {
		put(wc, podKV("default", fmt.Sprint("p", rev), "", "web", rev), nil)
	}
	if _, _, ok := wc.attach(store.Prefix("", "pods", ""), filter{labels: labels.Everything(), fields: fields.Everything()}, 3, false); ok {
		t.Fatal("attached from before the window")
	}
	cw, backlog, ok := wc.attach(store.Prefix("", "pods", ""), filter{labels: labels.Everything(), fields: fields.Everything()}, 7, true)
	if !ok {
		t.Fatal("no attach inside the window")
	}
	var got []string
	for _, it := range backlog {
		got = append(got, describe(it))
	}
	wantItems(t, "backlog after 7", got, "ADDED default/p8@8", "ADDED default/p9@9")

	// Progress reaches bookmark watchers only when it moves forward.
	wc.progress(9)
	wc.progress(12)
	wantItems(t, "progress", drain(cw), "BOOKMARK @12")
}

func TestWatchCache_ring_windowMoves(t *testing.T) {
	wc := podsCache(t)
	everything := filter{labels: labels.Everything(), fields: fields.Everything()}
	n := int64(watchCacheSize + 10)
	for rev := int64(1); rev <= n; rev++ {
		put(wc, podKV("default", "p", "", "web", rev), nil)
	}
	if wc.lowRev != 10 || len(wc.ring) != watchCacheSize {
		t.Fatalf("lowRev %d, ring %d; want 10, %d", wc.lowRev, len(wc.ring), watchCacheSize)
	}
	if _, _, ok := wc.attach(store.Prefix("", "pods", ""), everything, 9, false); ok {
		t.Fatal("attached from an evicted revision")
	}
	_, backlog, ok := wc.attach(store.Prefix("", "pods", ""), everything, n-2, false)
	if !ok || len(backlog) != 2 || backlog[0].ce.ev.Revision != n-1 {
		t.Fatalf("attach at %d: ok %v, backlog %d", n-2, ok, len(backlog))
	}
}

func TestWatchCache_slowWatcher_dropped(t *testing.T) {
	wc := podsCache(t)
	cw, _, _ := wc.attach(store.Prefix("", "pods", ""), filter{labels: labels.Everything(), fields: fields.Everything()}, 0, false)
	for rev := int64(1); rev <= watcherBuffer+1; rev++ {
		put(wc, podKV("default", "p", "", "web", rev), nil)
	}
	got := drain(cw)
	if len(got) != watcherBuffer+1 || got[len(got)-1] != "closed" || cw.err != nil {
		t.Fatalf("slow watcher: %d items, last %q, err %v", len(got), got[len(got)-1], cw.err)
	}
	if len(wc.all) != 0 {
		t.Fatal("dropped watcher still registered")
	}
	wc.detach(cw) // the handler's deferred detach is harmless
}

func TestWatchCache_stop_endsWatchersWithError(t *testing.T) {
	wc := podsCache(t)
	a, _, _ := wc.attach(store.Prefix("", "pods", ""), mustSelector(t, "", "spec.nodeName=n1"), 0, false)
	b, _, _ := wc.attach(store.Prefix("", "pods", ""), filter{labels: labels.Everything(), fields: fields.Everything()}, 0, false)
	wc.stop(store.ErrCompacted)
	for _, cw := range []*cacheWatcher{a, b} {
		if _, ok := <-cw.ch; ok || !errors.Is(cw.err, store.ErrCompacted) {
			t.Fatalf("watcher after stop: open %v, err %v", ok, cw.err)
		}
	}
	if _, _, ok := wc.attach(store.Prefix("", "pods", ""), filter{labels: labels.Everything(), fields: fields.Everything()}, 0, false); ok {
		t.Fatal("attached to a stopped cache")
	}
}
