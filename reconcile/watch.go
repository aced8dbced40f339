package reconcile

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

func typesUID(s string) types.UID { return types.UID(s) }

var endpointSlicesGVR = schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}

// watches are the informers over a source's managed objects (by its
// label) and, when it manages Services, over EndpointSlices. They feed
// drift correction and health, which then read their caches instead of
// the API.
type watches struct {
	informers map[schema.GroupVersionResource]cache.SharedIndexInformer
	slices    cache.SharedIndexInformer
	stop      context.CancelFunc
}

// startWatches starts informers for the resources of the inventory. Drift
// events go to l.drift unless the source ignores drift.
func (l *sourceLoop) startWatches(ctx context.Context, wg *sync.WaitGroup) *watches {
	ctx, cancel := context.WithCancel(ctx)
	w := &watches{informers: map[schema.GroupVersionResource]cache.SharedIndexInformer{}, stop: cancel}
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(l.r.dyn, 10*time.Minute, metav1.NamespaceAll, func(o *metav1.ListOptions) {
		o.LabelSelector = LabelSource + "=" + l.name
	})
	// applied maps each object to the resourceVersion the sync left; it is
	// copied so the informers' goroutines never share the loop's state.
	applied := make(map[string]string, len(l.appliedRV))
	for k, v := range l.appliedRV {
		applied[k] = v
	}
	hasServices := false
	for _, e := range l.inventory {
		m, err := l.r.mapper.RESTMapping(schema.GroupKind{Group: e.Group, Kind: e.Kind}, e.Version)
		if err != nil || w.informers[m.Resource] != nil {
			continue
		}
		hasServices = hasServices || (e.Group == "" && e.Kind == "Service")
		inf := f.ForResource(m.Resource).Informer()
		w.informers[m.Resource] = inf
		if l.spec.Drift != "ignore" {
			_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
				// A change between the sync and the informer's first list
				// arrives as an add: compare with what the sync wrote.
				AddFunc: func(obj any) {
					if u, ok := obj.(*unstructured.Unstructured); ok && applied[KeyOf(u)] != u.GetResourceVersion() {
						l.enqueueDrift(ctx, obj)
					}
				},
				UpdateFunc: func(_, obj any) { l.enqueueDrift(ctx, obj) },
				DeleteFunc: func(obj any) { l.enqueueDrift(ctx, obj) },
			})
		}
	}
	var sf dynamicinformer.DynamicSharedInformerFactory
	if hasServices {
		sf = dynamicinformer.NewDynamicSharedInformerFactory(l.r.dyn, 10*time.Minute)
		w.slices = sf.ForResource(endpointSlicesGVR).Informer()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.Start(ctx.Done())
		if sf != nil {
			sf.Start(ctx.Done())
		}
		<-ctx.Done()
		f.Shutdown()
		if sf != nil {
			sf.Shutdown()
		}
	}()
	return w
}

func (l *sourceLoop) enqueueDrift(ctx context.Context, obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	select {
	case l.drift <- KeyOf(u):
	case <-ctx.Done():
	}
}

// correctDrift re-applies one managed object from the last good snapshot;
// when that changed anything, someone else had changed it, and an Event
// says so.
func (l *sourceLoop) correctDrift(ctx context.Context, key string) {
	o, ok := l.objects[key]
	if !ok || l.last == nil {
		return
	}
	action, live, err := l.applier.apply(ctx, o, l.last.Revision, false)
	if err != nil {
		l.log.Warn("drift correction failed", "object", key, "err", err)
		return
	}
	// The object is as kiln wants it at this version: the next watches
	// need not check it again (a sync that skips it keeps this version).
	l.appliedRV[key] = live.GetResourceVersion()
	if action == ActionUnchanged {
		return
	}
	if action == ActionCreated {
		// Recreated: record its new UID so prune keeps working.
		for i, e := range l.inventory {
			if inventoryKey(e) == key {
				l.inventory[i].UID = string(live.GetUID())
			}
		}
	}
	msg := fmt.Sprintf("%s %s was changed outside the repo and was %s from revision %s", o.Obj.GetKind(), nsName(o.Obj.GetNamespace(), o.Obj.GetName()), action, l.last.Revision)
	l.log.Info("drift corrected", "object", key, "action", action)
	l.event(ctx, corev1.EventTypeNormal, "DriftCorrected", msg)
}

// health judges every inventory object from the informer caches and
// returns the overall state and the first unhealthy object's reason, in
// apply order. An object not in the cache yet is Progressing.
func (l *sourceLoop) health(w *watches) Health {
	if w == nil {
		return Health{HealthProgressing, "waiting for the first sync"}
	}
	endpoints := func(ns, svc string) bool {
		if w.slices == nil {
			return false
		}
		for _, o := range w.slices.GetStore().List() {
			u, _ := o.(*unstructured.Unstructured)
			if u == nil || u.GetNamespace() != ns || u.GetLabels()["kubernetes.io/service-name"] != svc {
				continue
			}
			eps, _, _ := unstructured.NestedSlice(u.Object, "endpoints")
			for _, e := range eps {
				ready, found, _ := unstructured.NestedBool(e.(map[string]any), "conditions", "ready")
				if !found || ready {
					return true
				}
			}
		}
		return false
	}
	var worst *Health
	for _, e := range l.inventory {
		m, err := l.r.mapper.RESTMapping(schema.GroupKind{Group: e.Group, Kind: e.Kind}, e.Version)
		if err != nil {
			continue
		}
		inf := w.informers[m.Resource]
		if inf == nil {
			continue
		}
		key := e.Name
		if e.Namespace != "" {
			key = e.Namespace + "/" + e.Name
		}
		obj, exists, _ := inf.GetStore().GetByKey(key)
		var h Health
		if !exists {
			h = Health{HealthProgressing, e.Kind + " " + nsName(e.Namespace, e.Name) + ": not observed yet"}
		} else {
			h = assess(obj.(*unstructured.Unstructured), endpoints)
		}
		switch {
		case h.Status == HealthDegraded && (worst == nil || worst.Status != HealthDegraded):
			worst = &h
		case h.Status == HealthProgressing && worst == nil:
			worst = &h
		}
	}
	if worst == nil {
		return Health{HealthHealthy, fmt.Sprintf("all %d objects are healthy", len(l.inventory))}
	}
	return *worst
}
