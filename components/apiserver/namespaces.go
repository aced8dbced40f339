package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/store"
)

// namespaceCache mirrors which namespaces exist and which are terminating,
// fed by a watch on the store, so a create does not pay an etcd read for
// its namespace (kube's NamespaceLifecycle admission reads an informer
// too). The create's transaction still requires the namespace key, so a
// stale cache can refuse too little only for terminating namespaces, never
// let an object into a namespace that is gone.
type namespaceCache struct {
	mu sync.RWMutex
	// terminating is keyed by name; present means the namespace exists.
	terminating map[string]bool
}

// lookup reports whether a namespace is terminating; known is false
// before the first list or for a name not seen yet, and the caller asks
// the store.
func (c *namespaceCache) lookup(ns string) (terminating, known bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.terminating[ns]
	return t, ok
}

func (c *namespaceCache) set(m map[string]bool) {
	c.mu.Lock()
	c.terminating = m
	c.mu.Unlock()
}

func (c *namespaceCache) update(name string, terminating, deleted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.terminating == nil {
		return
	}
	if deleted {
		delete(c.terminating, name)
	} else {
		c.terminating[name] = terminating
	}
}

func namespaceTerminating(data []byte) (bool, error) {
	var ns struct {
		Metadata struct {
			DeletionTimestamp *metav1.Time `json:"deletionTimestamp"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &ns); err != nil {
		return false, err
	}
	return ns.Metadata.DeletionTimestamp != nil, nil
}

// watchNamespaces keeps the cache current until ctx is done: list, then
// watch from the list's revision; after any watch error (compaction), list
// again.
func (s *Server) watchNamespaces(ctx context.Context) error {
	prefix := store.Prefix("", "namespaces", "")
	for ctx.Err() == nil {
		lr, err := s.store.List(ctx, prefix, store.ListOptions{})
		if err != nil {
			s.namespaces.set(nil)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		m := make(map[string]bool, len(lr.KVs))
		for _, kv := range lr.KVs {
			t, _ := namespaceTerminating(kv.Value)
			m[strings.TrimPrefix(kv.Key, prefix)] = t
		}
		s.namespaces.set(m)
		for ev := range s.store.Watch(ctx, prefix, lr.Revision+1) {
			if ev.Type == store.Error {
				break
			}
			if ev.Type == store.Progress {
				continue
			}
			name := strings.TrimPrefix(ev.KV.Key, prefix)
			t, _ := namespaceTerminating(ev.KV.Value)
			s.namespaces.update(name, t, ev.Type == store.Deleted)
		}
		// Until the relist, fall back to the store.
		s.namespaces.set(nil)
	}
	return nil
}

// checkNamespaceActive refuses creates in a missing or terminating
// namespace with kube's errors.
func (s *Server) checkNamespaceActive(ctx context.Context, res *resource, ns string) error {
	if !res.Namespaced {
		return nil
	}
	terminating, known := s.namespaces.lookup(ns)
	if !known {
		kv, err := s.store.Get(ctx, nsKey(ns))
		if errors.Is(err, store.ErrNotFound) {
			return apierrors.NewNotFound(corev1.Resource("namespaces"), ns)
		}
		if err != nil {
			return err
		}
		if terminating, err = namespaceTerminating(kv.Value); err != nil {
			return err
		}
	}
	if terminating {
		// With kube's cause, so that controllers can tell it from a
		// refusal by RBAC.
		msg := "unable to create new content in namespace " + ns + " because it is being terminated"
		err := apierrors.NewForbidden(res.gr, "", errors.New(msg))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: corev1.NamespaceTerminatingCause, Message: msg, Field: "metadata.namespace"})
		return err
	}
	return nil
}
