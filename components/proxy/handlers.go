package proxy

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// handleService marks a Service dirty on add, update and delete.
func (p *Proxier) handleService(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if svc, ok := obj.(*corev1.Service); ok {
		p.markDirty(types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name})
	}
}

// sliceService is the Service a slice belongs to, by its
// kubernetes.io/service-name label; ok is false for a slice without one.
func sliceService(s *discoveryv1.EndpointSlice) (types.NamespacedName, bool) {
	name := s.Labels[discoveryv1.LabelServiceName]
	return types.NamespacedName{Namespace: s.Namespace, Name: name}, name != ""
}

// handleSlice stores an added slice in the cache and marks its Service
// dirty.
func (p *Proxier) handleSlice(obj any) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	key, ok := sliceService(s)
	if !ok {
		return
	}
	p.mu.Lock()
	set := p.slices[key]
	if set == nil {
		set = sliceSet{}
		p.slices[key] = set
	}
	set[s.Name] = s
	p.mu.Unlock()
	p.markDirty(key)
}

// handleSliceUpdate moves a slice whose service-name label changed and
// marks both Services dirty.
func (p *Proxier) handleSliceUpdate(oldObj, newObj any) {
	if old, ok := oldObj.(*discoveryv1.EndpointSlice); ok {
		if n, ok := newObj.(*discoveryv1.EndpointSlice); ok && old.Labels[discoveryv1.LabelServiceName] != n.Labels[discoveryv1.LabelServiceName] {
			p.handleSliceDelete(old)
		}
	}
	p.handleSlice(newObj)
}

// handleSliceDelete removes a slice from the cache and marks its Service
// dirty.
func (p *Proxier) handleSliceDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	key, ok := sliceService(s)
	if !ok {
		return
	}
	p.mu.Lock()
	if set := p.slices[key]; set != nil {
		delete(set, s.Name)
		if len(set) == 0 {
			delete(p.slices, key)
		}
	}
	p.mu.Unlock()
	p.markDirty(key)
}
