package endpointslice

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

// enqueueService queues the key of a Service, or of the Endpoints object
// named after one.
func (c *Controller) enqueueService(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.queue.Add(key)
}

func (c *Controller) handleServiceUpdate(_, cur any) { c.enqueueService(cur) }

// handleEndpointsUpdate queues the Service when someone else changed its
// Endpoints object; this controller's own writes come back here too, and
// sync finds nothing to do for them.
func (c *Controller) handleEndpointsUpdate(old, cur any) {
	o, ok1 := old.(*corev1.Endpoints)
	n, ok2 := cur.(*corev1.Endpoints)
	if ok1 && ok2 && o.ResourceVersion == n.ResourceVersion {
		return // a resync
	}
	c.enqueueService(cur)
}

// handlePod queues the Services whose selectors match an added or deleted
// pod.
func (c *Controller) handlePod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		c.enqueuePodServices(pod.Namespace, pod.Labels)
	}
}

// handlePodUpdate queues the Services that matched the pod before or
// after, when the update can change an endpoint.
func (c *Controller) handlePodUpdate(old, cur any) {
	o, ok1 := old.(*corev1.Pod)
	n, ok2 := cur.(*corev1.Pod)
	if !ok1 || !ok2 || o.ResourceVersion == n.ResourceVersion || !podEndpointChanged(o, n) {
		return
	}
	c.enqueuePodServices(n.Namespace, n.Labels)
	if !maps.Equal(o.Labels, n.Labels) {
		c.enqueuePodServices(o.Namespace, o.Labels)
	}
}

// enqueuePodServices queues every Service in the namespace whose selector
// matches the pod labels, after the batch period.
func (c *Controller) enqueuePodServices(ns string, podLabels map[string]string) {
	svcs, err := c.services.Services(ns).List(labels.Everything())
	if err != nil {
		return
	}
	set := labels.Set(podLabels)
	for _, svc := range svcs {
		if !hasSelector(svc) {
			continue
		}
		if labels.SelectorFromSet(svc.Spec.Selector).Matches(set) {
			c.queue.AddAfter(svc.Namespace+"/"+svc.Name, c.batchPeriod)
		}
	}
}

// sliceService is the key of the Service of a slice this controller
// manages, or "".
func sliceService(obj any) (*discoveryv1.EndpointSlice, string) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelManagedBy] != ControllerName || s.Labels[discoveryv1.LabelServiceName] == "" {
		return s, ""
	}
	return s, s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
}

func (c *Controller) handleSlice(obj any) {
	if _, key := sliceService(obj); key != "" {
		c.queue.Add(key)
	}
}

// handleSliceUpdate queues the Service of the slice before and after: a
// slice relabelled away from a Service must be replaced.
func (c *Controller) handleSliceUpdate(old, cur any) {
	if o, ok := old.(*discoveryv1.EndpointSlice); ok {
		if n, ok := cur.(*discoveryv1.EndpointSlice); ok && o.ResourceVersion == n.ResourceVersion {
			return
		}
	}
	c.handleSlice(old)
	c.handleSlice(cur)
}

// handleSliceDelete queues the slice's Service, and forgets any write to
// the slice still expected: it can no longer be observed.
func (c *Controller) handleSliceDelete(obj any) {
	s, key := sliceService(obj)
	if key == "" {
		return
	}
	c.expect.forget(key, kindSlice, s.Name)
	c.queue.Add(key)
}
