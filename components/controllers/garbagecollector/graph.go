package garbagecollector

import (
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// node is what the collector knows of one object from its informer. A
// node is never modified once in the graph (an update replaces it), so it
// may be read without the graph's lock.
type node struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespace  string
	name       string
	uid        types.UID
	owners     []metav1.OwnerReference
	deleting   bool
	finalizers []string
}

func (n *node) hasFinalizer(f string) bool { return slices.Contains(n.finalizers, f) }

// orphaning says the owner is being deleted with propagation Orphan.
func (n *node) orphaning() bool {
	return n.deleting && n.hasFinalizer(metav1.FinalizerOrphanDependents)
}

// deletingDependents says the owner is being deleted with propagation
// Foreground: it stays until its blocking dependents are gone.
func (n *node) deletingDependents() bool {
	return n.deleting && n.hasFinalizer(metav1.FinalizerDeleteDependents)
}

// ownerRef returns n's reference to owner, if any.
func (n *node) ownerRef(owner types.UID) (metav1.OwnerReference, bool) {
	for _, r := range n.owners {
		if r.UID == owner {
			return r, true
		}
	}
	return metav1.OwnerReference{}, false
}

// blocks says n's reference to owner has blockOwnerDeletion set.
func (n *node) blocks(owner types.UID) bool {
	r, ok := n.ownerRef(owner)
	return ok && r.BlockOwnerDeletion != nil && *r.BlockOwnerDeletion
}

// is says n is the object ref names, as seen from a dependent in
// namespace ns: same group, kind, name and UID, and in ns unless n is
// cluster-scoped.
func (n *node) is(ref metav1.OwnerReference, ns string) bool {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && n.uid == ref.UID && n.gvr.Group == gv.Group && n.kind == ref.Kind && n.name == ref.Name &&
		(n.namespace == "" || n.namespace == ns)
}

func (n *node) String() string {
	gr := n.gvr.GroupResource().String()
	if n.namespace == "" {
		return gr + "/" + n.name
	}
	return gr + "/" + n.namespace + "/" + n.name
}

// graph holds every watched object and indexes dependents by owner UID.
type graph struct {
	mu    sync.RWMutex
	nodes map[types.UID]*node
	// dependents maps an owner UID to the UIDs of the nodes that name it,
	// whether or not the owner itself is (still) a node.
	dependents map[types.UID]map[types.UID]struct{}
}

func newGraph() *graph {
	return &graph{nodes: map[types.UID]*node{}, dependents: map[types.UID]map[types.UID]struct{}{}}
}

// observe records an added or updated object and returns the UIDs whose
// decision may have changed: the object itself when it has owners or is
// being deleted with a propagation finalizer, and those of its owners
// that are waiting on or orphaning their dependents.
func (g *graph) observe(n *node) []types.UID {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.nodes[n.uid]
	g.nodes[n.uid] = n
	ownersChanged := old == nil || !slices.EqualFunc(old.owners, n.owners, ownerRefEqual)
	stateChanged := old == nil || old.deleting != n.deleting || !slices.Equal(old.finalizers, n.finalizers)
	if ownersChanged {
		if old != nil {
			for _, r := range old.owners {
				g.unlink(r.UID, n.uid)
			}
		}
		for _, r := range n.owners {
			g.link(r.UID, n.uid)
		}
	}
	if !ownersChanged && !stateChanged {
		return nil
	}
	var out []types.UID
	if len(n.owners) > 0 || n.orphaning() || n.deletingDependents() {
		out = append(out, n.uid)
	}
	var owners []metav1.OwnerReference
	if old != nil {
		owners = old.owners
	}
	for _, r := range append(slices.Clone(owners), n.owners...) {
		if o := g.nodes[r.UID]; o != nil && o != n && (o.deletingDependents() || o.orphaning()) && !slices.Contains(out, r.UID) {
			out = append(out, r.UID)
		}
	}
	return out
}

// forget removes a deleted object and returns the UIDs to re-examine:
// its dependents, whose owner is gone, and its owners that wait on or
// orphan their dependents.
func (g *graph) forget(uid types.UID) []types.UID {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.nodes[uid]
	if n == nil {
		return nil
	}
	delete(g.nodes, uid)
	var out []types.UID
	for _, r := range n.owners {
		g.unlink(r.UID, uid)
		if o := g.nodes[r.UID]; o != nil && (o.deletingDependents() || o.orphaning()) {
			out = append(out, r.UID)
		}
	}
	for d := range g.dependents[uid] {
		out = append(out, d)
	}
	return out
}

func (g *graph) link(owner, dep types.UID) {
	deps := g.dependents[owner]
	if deps == nil {
		deps = map[types.UID]struct{}{}
		g.dependents[owner] = deps
	}
	deps[dep] = struct{}{}
}

func (g *graph) unlink(owner, dep types.UID) {
	deps := g.dependents[owner]
	delete(deps, dep)
	if len(deps) == 0 {
		delete(g.dependents, owner)
	}
}

// node returns the object with uid, or nil.
func (g *graph) node(uid types.UID) *node {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.nodes[uid]
}

// dependentsOf returns the objects that name owner.
func (g *graph) dependentsOf(owner types.UID) []*node {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out []*node
	for d := range g.dependents[owner] {
		if n := g.nodes[d]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// hasBlockingDependents says some object names owner with
// blockOwnerDeletion.
func (g *graph) hasBlockingDependents(owner types.UID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for d := range g.dependents[owner] {
		if n := g.nodes[d]; n != nil && n.blocks(owner) {
			return true
		}
	}
	return false
}

// waitsOn says the foreground deletion of from waits, through a chain of
// blocking dependents that are themselves deleting in the foreground, on
// target: if target waits on from too, neither can ever finish.
func (g *graph) waitsOn(from, target types.UID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	seen := map[types.UID]bool{}
	var walk func(types.UID) bool
	walk = func(u types.UID) bool {
		if seen[u] {
			return false
		}
		seen[u] = true
		for d := range g.dependents[u] {
			n := g.nodes[d]
			if n == nil || !n.blocks(u) {
				continue
			}
			if d == target || n.deletingDependents() && walk(d) {
				return true
			}
		}
		return false
	}
	return walk(from)
}

// forgetResource removes every node of gvr, for a resource no longer
// served, and returns the UIDs to re-examine.
func (g *graph) forgetResource(gvr schema.GroupVersionResource) []types.UID {
	g.mu.RLock()
	var uids []types.UID
	for uid, n := range g.nodes {
		if n.gvr == gvr {
			uids = append(uids, uid)
		}
	}
	g.mu.RUnlock()
	var out []types.UID
	for _, uid := range uids {
		out = append(out, g.forget(uid)...)
	}
	return out
}

func ownerRefEqual(a, b metav1.OwnerReference) bool {
	return a.UID == b.UID && a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Name == b.Name &&
		boolPtrEqual(a.Controller, b.Controller) && boolPtrEqual(a.BlockOwnerDeletion, b.BlockOwnerDeletion)
}

func boolPtrEqual(a, b *bool) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// absentCache remembers owners verified gone, so the dependents of one
// deleted owner cost one read, not one each. A UID never comes back, so
// an entry never goes stale; the oldest entry is evicted when full.
type absentCache struct {
	mu   sync.Mutex
	set  map[absentKey]struct{}
	ring []absentKey
	next int
}

// absentKey is an owner as a dependent names it: a UID absent under one
// name may exist under another.
type absentKey struct {
	uid                        types.UID
	group, kind, namespace, nm string
}

func newAbsentCache(size int) *absentCache {
	return &absentCache{set: map[absentKey]struct{}{}, ring: make([]absentKey, size)}
}

func (c *absentCache) has(k absentKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.set[k]
	return ok
}

func (c *absentCache) add(k absentKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.set[k]; ok {
		return
	}
	if len(c.set) == len(c.ring) {
		delete(c.set, c.ring[c.next])
	}
	c.ring[c.next] = k
	c.set[k] = struct{}{}
	c.next = (c.next + 1) % len(c.ring)
}
