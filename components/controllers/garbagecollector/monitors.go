package garbagecollector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// monitor watches one resource and feeds the graph.
type monitor struct {
	gvr      schema.GroupVersionResource
	kind     string
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc
	// stopped makes late events of a stopped informer no-ops, so they
	// cannot bring back the nodes its resource had.
	stopped atomic.Bool
}

// resyncMonitors runs discovery and watches every resource that supports
// list, watch and delete, stopping monitors of resources no longer
// served. Monitors of groups whose discovery failed are kept: a group
// that is briefly unavailable must not look like a group whose objects
// are all gone.
func (c *Controller) resyncMonitors(ctx context.Context) error {
	c.mapper.Reset()
	lists, err := discovery.ServerPreferredResources(c.cached)
	failed := map[schema.GroupVersion]bool{}
	if err != nil {
		var gdf *discovery.ErrGroupDiscoveryFailed
		if !errors.As(err, &gdf) {
			return fmt.Errorf("discovery: %w", err)
		}
		for gv := range gdf.Groups {
			failed[gv] = true
		}
		c.log.Warn("discovery failed for some groups", logKeyError, err)
	}
	want := map[schema.GroupVersionResource]string{} // → kind
	for _, l := range lists {
		if l == nil {
			continue
		}
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			gvr := gv.WithResource(r.Name)
			if strings.Contains(r.Name, "/") || ignoredResources[gvr.GroupResource()] ||
				!slices.Contains(r.Verbs, "list") || !slices.Contains(r.Verbs, "watch") || !slices.Contains(r.Verbs, "delete") {
				continue
			}
			want[gvr] = r.Kind
		}
	}

	c.monMu.Lock()
	defer c.monMu.Unlock()
	for gvr, m := range c.monitors {
		if _, ok := want[gvr]; ok || failed[gvr.GroupVersion()] {
			continue
		}
		m.stopped.Store(true)
		m.cancel()
		delete(c.monitors, gvr)
		c.enqueue(c.graph.forgetResource(gvr)...)
		c.log.Info("stopped watching", logKeyResource, gvr.String())
	}
	added := 0
	for gvr, kind := range want {
		if _, ok := c.monitors[gvr]; ok {
			continue
		}
		if err := c.startMonitor(ctx, gvr, kind); err != nil {
			return err
		}
		added++
	}
	if added > 0 {
		c.log.Debug("watching resources", logKeyCount, added, logKeyTotal, len(c.monitors))
	}
	return nil
}

// startMonitor starts a metadata-only informer for gvr; c.monMu is held.
func (c *Controller) startMonitor(ctx context.Context, gvr schema.GroupVersionResource, kind string) error {
	inf := dynamicinformer.NewFilteredDynamicInformer(c.cfg.Dynamic, gvr, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	if err := inf.SetTransform(stripToMetadata); err != nil {
		return fmt.Errorf("watch %s: %w", gvr, err)
	}
	m := &monitor{gvr: gvr, kind: kind, informer: inf}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.observe(m, obj) },
		UpdateFunc: func(_, obj any) { c.observe(m, obj) },
		DeleteFunc: func(obj any) { c.forget(m, obj) },
	}); err != nil {
		return fmt.Errorf("watch %s: %w", gvr, err)
	}
	mctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	c.monitors[gvr] = m
	c.monWG.Go(func() { inf.RunWithContext(mctx) })
	return nil
}

// stopMonitors stops every informer and waits for them to exit.
func (c *Controller) stopMonitors() {
	c.monMu.Lock()
	for _, m := range c.monitors {
		m.stopped.Store(true)
		m.cancel()
	}
	c.monMu.Unlock()
	c.monWG.Wait()
}

// synced says every informer has listed its resource once, so the graph
// knows every dependent that existed when the collector started.
func (c *Controller) synced() bool {
	c.monMu.Lock()
	defer c.monMu.Unlock()
	if len(c.monitors) == 0 {
		return false
	}
	for _, m := range c.monitors {
		if !m.informer.HasSynced() {
			return false
		}
	}
	return true
}

// hasSyncedChecks returns the HasSynced of every current monitor.
func (c *Controller) hasSyncedChecks() []cache.InformerSynced {
	c.monMu.Lock()
	defer c.monMu.Unlock()
	var out []cache.InformerSynced
	for _, m := range c.monitors {
		out = append(out, m.informer.HasSynced)
	}
	return out
}

func (c *Controller) observe(m *monitor, obj any) {
	if m.stopped.Load() {
		return
	}
	n, ok := newNode(m, obj)
	if !ok {
		return
	}
	c.enqueue(c.graph.observe(n)...)
}

func (c *Controller) forget(m *monitor, obj any) {
	if m.stopped.Load() {
		return
	}
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	o, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	c.enqueue(c.graph.forget(o.GetUID())...)
}

func (c *Controller) enqueue(uids ...types.UID) {
	for _, uid := range uids {
		c.queue.Add(uid)
	}
}

func newNode(m *monitor, obj any) (*node, bool) {
	o, err := meta.Accessor(obj)
	if err != nil || o.GetUID() == "" {
		return nil, false
	}
	return &node{
		gvr: m.gvr, kind: m.kind, namespace: o.GetNamespace(), name: o.GetName(), uid: o.GetUID(),
		owners: o.GetOwnerReferences(), deleting: o.GetDeletionTimestamp() != nil, finalizers: o.GetFinalizers(),
	}, true
}

// stripToMetadata keeps only the metadata the collector reads, so the
// informer caches hold no specs, data or Secret values.
func stripToMetadata(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil // already stripped, or a tombstone
	}
	return &metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: u.GetAPIVersion(), Kind: u.GetKind()},
		ObjectMeta: metav1.ObjectMeta{
			Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(), ResourceVersion: u.GetResourceVersion(),
			DeletionTimestamp: u.GetDeletionTimestamp(), Finalizers: u.GetFinalizers(), OwnerReferences: u.GetOwnerReferences(),
		},
	}, nil
}
