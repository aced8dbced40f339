package dashboard

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/reconcile"
)

// Health states: reconcile's three, and two of the dashboard's own.
const (
	HealthHealthy     = reconcile.HealthHealthy
	HealthProgressing = reconcile.HealthProgressing
	HealthDegraded    = reconcile.HealthDegraded
	// HealthMissing is an inventoried object the API does not have.
	HealthMissing = "Missing"
	// HealthUnknown is an object whose kind the dashboard cannot watch,
	// or cannot watch yet.
	HealthUnknown = "Unknown"
)

// healthOrder ranks states from worst, for sorting.
var healthOrder = map[string]int{HealthDegraded: 0, HealthMissing: 1, HealthProgressing: 2, HealthUnknown: 3, HealthHealthy: 4}

// healthCache remembers each object's health by UID and resourceVersion:
// judging one means converting it to unstructured, too slow to do for
// 1,000 objects on every page.
type healthCache struct {
	mu sync.Mutex
	m  map[types.UID]healthEntry
}

type healthEntry struct {
	rv string
	// ready is the Service's endpoint state the health was judged with.
	ready bool
	h     reconcile.Health
}

func (hc *healthCache) forget(uid types.UID) {
	hc.mu.Lock()
	delete(hc.m, uid)
	hc.mu.Unlock()
}

// managedObject is one inventory entry as the cache sees it.
type managedObject struct {
	Entry  reconcile.InventoryEntry
	Source string
	// Obj is the cached object: typed for the kinds in cache.typed,
	// *unstructured.Unstructured (without payload) for the others; nil
	// when missing or unknown.
	Obj    any
	Health reconcile.Health
}

// gvk is the entry's group version kind.
func entryGVK(e reconcile.InventoryEntry) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: e.Group, Version: e.Version, Kind: e.Kind}
}

// resolve looks up an inventory entry and judges it.
func (d *Dashboard) resolve(source string, e reconcile.InventoryEntry) managedObject {
	mo := managedObject{Entry: e, Source: source}
	gvk := entryGVK(e)
	obj, known := d.cache.get(gvk.GroupKind(), e.Namespace, e.Name)
	switch {
	case !known:
		mo.Health = reconcile.Health{Status: HealthUnknown, Message: e.Kind + " is not watched by the dashboard"}
	case obj == nil:
		mo.Health = reconcile.Health{Status: HealthMissing, Message: e.Kind + " " + nsName(e.Namespace, e.Name) + " does not exist"}
	default:
		mo.Obj = obj
		mo.Health = d.judge(gvk, obj)
	}
	return mo
}

// judge applies reconcile.Assess to a cached object, through the cache.
func (d *Dashboard) judge(gvk schema.GroupVersionKind, obj any) reconcile.Health {
	m, err := meta.Accessor(obj)
	if err != nil {
		return reconcile.Health{Status: HealthUnknown}
	}
	ready := false
	if svc, ok := obj.(*corev1.Service); ok {
		ready = d.serviceReady(svc.Namespace, svc.Name)
	}
	hc := &d.health
	hc.mu.Lock()
	e, ok := hc.m[m.GetUID()]
	hc.mu.Unlock()
	if ok && e.rv == m.GetResourceVersion() && e.ready == ready {
		return e.h
	}
	var u *unstructured.Unstructured
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		u = o
	case runtime.Object:
		content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return reconcile.Health{Status: HealthUnknown, Message: err.Error()}
		}
		u = &unstructured.Unstructured{Object: content}
		// Typed objects from informers carry no apiVersion and kind.
		u.SetGroupVersionKind(gvk)
	default:
		return reconcile.Health{Status: HealthUnknown}
	}
	h := reconcile.Assess(u, func(string, string) bool { return ready })
	if h.Status == "" {
		h.Status = HealthUnknown
	}
	hc.mu.Lock()
	if hc.m == nil {
		hc.m = map[types.UID]healthEntry{}
	}
	hc.m[m.GetUID()] = healthEntry{rv: m.GetResourceVersion(), ready: ready, h: h}
	hc.mu.Unlock()
	return h
}

// serviceReady reports whether a Service has a ready endpoint, as
// reconcile judges it.
func (d *Dashboard) serviceReady(namespace, name string) bool {
	for _, s := range byIndex[*discoveryv1.EndpointSlice](d.cache.slices, indexService, namespace+"/"+name) {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				return true
			}
		}
	}
	return false
}

// HealthCounts counts a Source's objects by health.
type HealthCounts struct {
	Healthy     int `json:"healthy"`
	Progressing int `json:"progressing"`
	Degraded    int `json:"degraded"`
	Missing     int `json:"missing"`
	Unknown     int `json:"unknown"`
	Total       int `json:"total"`
}

func (c *HealthCounts) add(status string) {
	c.Total++
	switch status {
	case HealthHealthy:
		c.Healthy++
	case HealthProgressing:
		c.Progressing++
	case HealthDegraded:
		c.Degraded++
	case HealthMissing:
		c.Missing++
	default:
		c.Unknown++
	}
}

func nsName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
