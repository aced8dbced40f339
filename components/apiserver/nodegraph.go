package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"kiln.dev/kiln/components/store"
)

// The node graph is the small version of kube's node authorizer graph
// (plugin/pkg/auth/authorizer/node/graph.go): which pods are bound to
// which node, and which Secrets, ConfigMaps and PersistentVolumeClaims
// those pods use. The node
// authorizer answers from it with map lookups, since a kubelet reads its
// pods' Secrets and writes their status on every sync.
//
// It follows the pods in the store with one watch of its own, started on
// the first request of a node user, so a server without nodes pays
// nothing. It lags the store by the watch's delay: a miss is never final,
// the authorizer then asks the store (nodeauthz.go), so a kubelet reading
// a Secret right after its pod was bound is not refused.

// graphRetry is how long the graph waits before listing again after its
// watch failed (compaction, a lost etcd leader).
const graphRetry = time.Second

// nodeRef is one object a node's pods use.
type nodeRef struct {
	node, resource, namespace, name string
}

// graphPod is what the graph keeps of one pod.
type graphPod struct {
	node string
	refs []nodeRef
}

// nodeGraph is the server's graph. The zero value waits for start.
type nodeGraph struct {
	mu     sync.RWMutex
	ctx    context.Context // nil until Run starts it, and after it stops
	st     *store.Store
	prefix string
	wg     sync.WaitGroup

	running bool
	synced  bool                // the pods are loaded and followed
	pods    map[string]graphPod // by namespace/name
	refs    map[nodeRef]int     // how many of the node's pods use it
}

// start lets the graph run once asked, until ctx is done.
func (g *nodeGraph) start(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ctx = ctx
}

// wait stops the graph from starting and waits for it to stop.
func (g *nodeGraph) wait() {
	g.mu.Lock()
	g.ctx = nil
	g.mu.Unlock()
	g.wg.Wait()
}

// ensure starts following the pods under prefix, once; it reports
// whether the graph is synced, that is, fit to answer.
func (g *nodeGraph) ensure(st *store.Store, prefix string) bool {
	g.mu.RLock()
	synced, running := g.synced, g.running
	g.mu.RUnlock()
	if synced || running {
		return synced
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running || g.ctx == nil || g.ctx.Err() != nil {
		return g.synced
	}
	g.running, g.st, g.prefix = true, st, prefix
	ctx := g.ctx
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.run(ctx)
	}()
	return false
}

// run lists and follows the pods until ctx is done, listing again after a
// failed watch.
func (g *nodeGraph) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := g.follow(ctx)
		g.mu.Lock()
		g.synced = false
		g.mu.Unlock()
		if err == nil || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(graphRetry):
		}
	}
}

// follow loads every pod, then applies the store's changes until the
// watch ends.
func (g *nodeGraph) follow(ctx context.Context) error {
	pods := map[string]graphPod{}
	refs := map[nodeRef]int{}
	var rev int64
	start := ""
	for {
		page, err := g.st.List(ctx, g.prefix, store.ListOptions{StartKey: start, Revision: rev, Limit: 500})
		if err != nil {
			return err
		}
		rev = page.Revision
		for _, kv := range page.KVs {
			if p, key, ok := decodeGraphPod(kv.Value); ok {
				addPod(pods, refs, key, p)
			}
		}
		if !page.More || len(page.KVs) == 0 {
			break
		}
		start = page.KVs[len(page.KVs)-1].Key + "\x00"
	}
	g.mu.Lock()
	g.pods, g.refs, g.synced = pods, refs, true
	g.mu.Unlock()
	for ev := range g.st.Watch(ctx, g.prefix, rev+1) {
		switch ev.Type {
		case store.Error:
			return ev.Err
		case store.Progress:
		case store.Deleted:
			if _, key, ok := decodeGraphPod(ev.KV.Value); ok {
				g.mu.Lock()
				removePod(g.pods, g.refs, key)
				g.mu.Unlock()
			}
		case store.Put:
			p, key, ok := decodeGraphPod(ev.KV.Value)
			if !ok {
				continue
			}
			g.mu.Lock()
			removePod(g.pods, g.refs, key)
			addPod(g.pods, g.refs, key, p)
			g.mu.Unlock()
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("node graph: pod watch ended")
}

func addPod(pods map[string]graphPod, refs map[nodeRef]int, key string, p graphPod) {
	if p.node == "" {
		return // unbound pods give no node anything
	}
	pods[key] = p
	for _, r := range p.refs {
		refs[r]++
	}
}

func removePod(pods map[string]graphPod, refs map[nodeRef]int, key string) {
	p, ok := pods[key]
	if !ok {
		return
	}
	delete(pods, key)
	for _, r := range p.refs {
		if refs[r]--; refs[r] <= 0 {
			delete(refs, r)
		}
	}
}

// podOn reports whether the graph has pod namespace/name bound to node.
func (g *nodeGraph) podOn(node, namespace, name string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	p, ok := g.pods[namespace+"/"+name]
	return ok && p.node == node
}

// uses reports whether the graph has a pod on r.node using r.
func (g *nodeGraph) uses(r nodeRef) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.refs[r] > 0
}

// graphPodJSON is the part of a stored pod the graph reads: decoding only
// this is several times cheaper than a whole corev1.Pod.
type graphPodJSON struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
		Volumes  []struct {
			PersistentVolumeClaim *struct {
				ClaimName string `json:"claimName"`
			} `json:"persistentVolumeClaim"`
			Secret *struct {
				SecretName string `json:"secretName"`
			} `json:"secret"`
			ConfigMap *struct {
				Name string `json:"name"`
			} `json:"configMap"`
			Projected *struct {
				Sources []struct {
					Secret *struct {
						Name string `json:"name"`
					} `json:"secret"`
					ConfigMap *struct {
						Name string `json:"name"`
					} `json:"configMap"`
				} `json:"sources"`
			} `json:"projected"`
		} `json:"volumes"`
		Containers          []graphContainerJSON `json:"containers"`
		InitContainers      []graphContainerJSON `json:"initContainers"`
		EphemeralContainers []graphContainerJSON `json:"ephemeralContainers"`
		ImagePullSecrets    []struct {
			Name string `json:"name"`
		} `json:"imagePullSecrets"`
	} `json:"spec"`
}

type graphContainerJSON struct {
	Env []struct {
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `json:"name"`
			} `json:"secretKeyRef"`
			ConfigMapKeyRef *struct {
				Name string `json:"name"`
			} `json:"configMapKeyRef"`
		} `json:"valueFrom"`
	} `json:"env"`
	EnvFrom []struct {
		SecretRef *struct {
			Name string `json:"name"`
		} `json:"secretRef"`
		ConfigMapRef *struct {
			Name string `json:"name"`
		} `json:"configMapRef"`
	} `json:"envFrom"`
}

// decodeGraphPod reads a stored pod's node and the Secrets, ConfigMaps
// and PersistentVolumeClaims it uses; key is namespace/name.
func decodeGraphPod(data []byte) (p graphPod, key string, ok bool) {
	var j graphPodJSON
	if err := json.Unmarshal(data, &j); err != nil || j.Metadata.Name == "" {
		return p, "", false
	}
	ns, node := j.Metadata.Namespace, j.Spec.NodeName
	p.node = node
	seen := map[nodeRef]bool{}
	add := func(resource, name string) {
		r := nodeRef{node: node, resource: resource, namespace: ns, name: name}
		if name != "" && !seen[r] {
			seen[r] = true
			p.refs = append(p.refs, r)
		}
	}
	for _, v := range j.Spec.Volumes {
		if v.Secret != nil {
			add("secrets", v.Secret.SecretName)
		}
		if v.ConfigMap != nil {
			add("configmaps", v.ConfigMap.Name)
		}
		if v.PersistentVolumeClaim != nil {
			add("persistentvolumeclaims", v.PersistentVolumeClaim.ClaimName)
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					add("secrets", src.Secret.Name)
				}
				if src.ConfigMap != nil {
					add("configmaps", src.ConfigMap.Name)
				}
			}
		}
	}
	for _, cs := range [][]graphContainerJSON{j.Spec.Containers, j.Spec.InitContainers, j.Spec.EphemeralContainers} {
		for _, c := range cs {
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if e.ValueFrom.SecretKeyRef != nil {
					add("secrets", e.ValueFrom.SecretKeyRef.Name)
				}
				if e.ValueFrom.ConfigMapKeyRef != nil {
					add("configmaps", e.ValueFrom.ConfigMapKeyRef.Name)
				}
			}
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil {
					add("secrets", e.SecretRef.Name)
				}
				if e.ConfigMapRef != nil {
					add("configmaps", e.ConfigMapRef.Name)
				}
			}
		}
	}
	for _, s := range j.Spec.ImagePullSecrets {
		add("secrets", s.Name)
	}
	return p, ns + "/" + j.Metadata.Name, true
}

// usesRef reports whether p uses r (r.node aside).
func (p graphPod) usesRef(resource, name string) bool {
	for _, r := range p.refs {
		if r.resource == resource && r.name == name {
			return true
		}
	}
	return false
}
