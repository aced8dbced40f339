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

// watchDrift starts informers on the resources of the inventory, limited
// to this source's label, and sends the key of every managed object that
// changes to l.drift. The returned func stops them.
func (l *sourceLoop) watchDrift(ctx context.Context, wg *sync.WaitGroup) func() {
	if l.spec.Drift == "ignore" {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(l.r.dyn, 10*time.Minute, metav1.NamespaceAll, func(o *metav1.ListOptions) {
		o.LabelSelector = LabelSource + "=" + l.name
	})
	seen := map[schema.GroupVersionResource]bool{}
	for _, e := range l.inventory {
		m, err := l.r.mapper.RESTMapping(schema.GroupKind{Group: e.Group, Kind: e.Kind}, e.Version)
		if err != nil || seen[m.Resource] {
			continue
		}
		seen[m.Resource] = true
		inf := f.ForResource(m.Resource).Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(_, obj any) { l.enqueueDrift(ctx, obj) },
			DeleteFunc: func(obj any) { l.enqueueDrift(ctx, obj) },
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.Start(ctx.Done())
		<-ctx.Done()
		f.Shutdown()
	}()
	return cancel
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
