package scheduler

import (
	"maps"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// cache is the scheduler's view of the cluster: every node, every pod
// placed on one (bound, as the informer shows, or assumed: decided by
// this scheduler with its bind in flight), and namespace labels. Informer
// handlers and the binders change it; the scheduling loop copies the
// changes into its snapshot at the start of each cycle.
//
// An assumed pod counts on its node at once, so the next decision sees it
// although the API has not answered; a failed bind forgets it. When the
// informer shows the pod bound, the assumption is replaced by the real
// pod (on whichever node it was really bound to).
type cache struct {
	mu    sync.Mutex
	nodes map[string]*nodeInfo
	pods  map[types.UID]*cachedPod
	// namespaces maps a namespace to its labels; replaced, never changed
	// in place, so a snapshot can share it.
	namespaces map[string]labels.Set

	// dirty names the nodes changed since the last snapshot update.
	dirty        map[string]struct{}
	namespacesCh bool
}

// cachedPod is where the cache placed a pod.
type cachedPod struct {
	info    *podInfo
	node    string
	assumed bool
}

func newCache() *cache {
	return &cache{
		nodes:      map[string]*nodeInfo{},
		pods:       map[types.UID]*cachedPod{},
		namespaces: map[string]labels.Set{},
		dirty:      map[string]struct{}{},
	}
}

// setNodeInfo publishes ni for name (nil removes it) and marks it dirty.
// c.mu must be held.
func (c *cache) setNodeInfo(name string, ni *nodeInfo) {
	if ni == nil || (ni.node == nil && len(ni.pods) == 0) {
		delete(c.nodes, name)
	} else {
		c.nodes[name] = ni
	}
	c.dirty[name] = struct{}{}
}

// nodeInfoFor returns the node's info, creating an empty placeholder for
// pods that arrive before their node. c.mu must be held.
func (c *cache) nodeInfoFor(name string) *nodeInfo {
	if ni, ok := c.nodes[name]; ok {
		return ni
	}
	return &nodeInfo{}
}

func (c *cache) addNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setNodeInfo(node.Name, c.nodeInfoFor(node.Name).withNode(node))
}

func (c *cache) removeNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni, ok := c.nodes[name]
	if !ok {
		return
	}
	// Pods still bound to a deleted node keep their placeholder until the
	// pod GC deletes them, as in kube.
	c.setNodeInfo(name, ni.withNode(nil))
}

// place adds p to node. c.mu must be held.
func (c *cache) place(p *podInfo, node string, assumed bool) {
	c.setNodeInfo(node, c.nodeInfoFor(node).withPod(p))
	c.pods[p.pod.UID] = &cachedPod{info: p, node: node, assumed: assumed}
}

// unplace removes the pod with uid from wherever it is. c.mu must be held.
func (c *cache) unplace(uid types.UID) {
	cp, ok := c.pods[uid]
	if !ok {
		return
	}
	delete(c.pods, uid)
	if ni, ok := c.nodes[cp.node]; ok {
		if out, removed := ni.withoutPod(uid); removed {
			c.setNodeInfo(cp.node, out)
		}
	}
}

// assume places a pod this scheduler decided to bind to node.
func (c *cache) assume(p *podInfo, node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unplace(p.pod.UID)
	c.place(p, node, true)
}

// forget drops an assumption whose bind failed; a pod the informer has
// since shown bound stays.
func (c *cache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cp, ok := c.pods[uid]; ok && cp.assumed {
		c.unplace(uid)
	}
}

// isAssumed reports whether the pod is placed by this scheduler and not
// yet seen bound.
func (c *cache) isAssumed(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.pods[uid]
	return ok && cp.assumed
}

// setPod records a pod the informer shows bound, replacing any earlier
// version or assumption of it.
func (c *cache) setPod(pod *corev1.Pod) {
	p := newPodInfo(pod)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unplace(pod.UID)
	c.place(p, pod.Spec.NodeName, false)
}

// removePod drops a pod that was deleted or finished.
func (c *cache) removePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unplace(uid)
}

// setNamespace records a namespace's labels; deleteNamespace drops it.
// The map is copied on write, since snapshots share it.
func (c *cache) setNamespace(name string, l map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := maps.Clone(c.namespaces)
	next[name] = labels.Set(maps.Clone(l))
	c.namespaces = next
	c.namespacesCh = true
}

func (c *cache) deleteNamespace(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := maps.Clone(c.namespaces)
	delete(next, name)
	c.namespaces = next
	c.namespacesCh = true
}

// counts reports the nodes (with a Node object) and placed pods, for
// tests and logs.
func (c *cache) counts() (nodes, pods int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ni := range c.nodes {
		if ni.node != nil {
			nodes++
		}
	}
	return nodes, len(c.pods)
}

// snapshot is the cluster as one scheduling cycle sees it. Only the
// scheduling loop uses it, and it is not changed during a cycle.
type snapshot struct {
	nodes []*nodeInfo
	index map[string]int // position in nodes
	// havePodsWithAffinity and havePodsWithRequiredAntiAffinity list the
	// nodes hosting such pods.
	havePodsWithAffinity             []*nodeInfo
	havePodsWithRequiredAntiAffinity []*nodeInfo
	namespaces                       map[string]labels.Set
}

func newSnapshot() *snapshot {
	return &snapshot{index: map[string]int{}, namespaces: map[string]labels.Set{}}
}

// update brings s up to date with the cache, touching only the nodes
// changed since the previous update.
func (c *cache) update(s *snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.namespacesCh {
		s.namespaces = c.namespaces
		c.namespacesCh = false
	}
	if len(c.dirty) == 0 {
		return
	}
	affinityChanged := false
	for name := range c.dirty {
		ni := c.nodes[name]
		if ni != nil && ni.node == nil {
			ni = nil // pods without their node are not schedulable onto
		}
		i, had := s.index[name]
		if had {
			old := s.nodes[i]
			if len(old.podsWithAffinity) > 0 {
				affinityChanged = true
			}
		}
		if ni != nil && len(ni.podsWithAffinity) > 0 {
			affinityChanged = true
		}
		switch {
		case had && ni != nil:
			s.nodes[i] = ni
		case had:
			last := len(s.nodes) - 1
			s.nodes[i] = s.nodes[last]
			s.index[s.nodes[i].name()] = i
			s.nodes = s.nodes[:last]
			delete(s.index, name)
		case ni != nil:
			s.index[name] = len(s.nodes)
			s.nodes = append(s.nodes, ni)
		}
	}
	clear(c.dirty)
	// The lists hold only nodes with affinity pods, so a change elsewhere
	// leaves them current; podsWithRequiredAntiAffinity is a subset of
	// podsWithAffinity.
	if affinityChanged {
		s.havePodsWithAffinity = s.havePodsWithAffinity[:0]
		s.havePodsWithRequiredAntiAffinity = s.havePodsWithRequiredAntiAffinity[:0]
		for _, ni := range s.nodes {
			if len(ni.podsWithAffinity) > 0 {
				s.havePodsWithAffinity = append(s.havePodsWithAffinity, ni)
			}
			if len(ni.podsWithRequiredAntiAffinity) > 0 {
				s.havePodsWithRequiredAntiAffinity = append(s.havePodsWithRequiredAntiAffinity, ni)
			}
		}
	}
}
