package scheduler

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	toolscache "k8s.io/client-go/tools/cache"
)

// Informer event handlers. Bound pods feed the cache; unbound pods this
// scheduler serves feed the queue; changes that may let a waiting pod fit
// move it out of the unschedulable set. The handlers never call the API.

func assigned(pod *corev1.Pod) bool { return pod.Spec.NodeName != "" }

// terminal pods hold no resources: the kubelet admits new pods as if
// they were gone.
func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// responsible reports whether the pod is this scheduler's to place.
func (s *Scheduler) responsible(pod *corev1.Pod) bool {
	n := pod.Spec.SchedulerName
	return n == s.name || n == DefaultSchedulerAlias || n == ""
}

func podFrom(obj any) *corev1.Pod {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, _ := obj.(*corev1.Pod)
	return pod
}

func nodeFrom(obj any) *corev1.Node {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	node, _ := obj.(*corev1.Node)
	return node
}

// affectedByPods selects waiting pods that a new or relabelled pod may
// help: those rejected for inter-pod affinity or topology spread.
func affectedByPods(qp *queuedPod) bool {
	return qp.plugins&(pluginInterPodAffinity|pluginPodTopologySpread) != 0
}

func (s *Scheduler) addPod(obj any) {
	pod := podFrom(obj)
	if pod == nil {
		return
	}
	switch {
	case assigned(pod):
		if terminal(pod) {
			return
		}
		s.cache.setPod(pod)
		s.queue.move(affectedByPods)
	case s.responsible(pod) && pod.DeletionTimestamp == nil:
		s.queue.add(pod)
	}
}

func (s *Scheduler) updatePod(oldObj, newObj any) {
	old, pod := podFrom(oldObj), podFrom(newObj)
	if old == nil || pod == nil {
		return
	}
	if !assigned(pod) {
		switch {
		case !s.responsible(pod):
		case pod.DeletionTimestamp != nil:
			s.queue.delete(pod)
		default:
			s.queue.update(pod)
		}
		return
	}
	if !assigned(old) {
		// Bound, by this scheduler or another: no longer waiting.
		s.queue.delete(pod)
		s.reporter.forget(pod.UID)
	}
	switch {
	case terminal(pod):
		s.cache.removePod(pod.UID)
		if !terminal(old) {
			s.queue.move(nil) // its resources are free
		}
	default:
		s.cache.setPod(pod)
		if !assigned(old) || !maps.Equal(old.Labels, pod.Labels) {
			s.queue.move(affectedByPods)
		}
	}
}

func (s *Scheduler) deletePod(obj any) {
	pod := podFrom(obj)
	if pod == nil {
		return
	}
	s.reporter.forget(pod.UID)
	// An assumed pod deleted before its bind was seen leaves the cache
	// too, so its node's resources are not held by a ghost.
	s.cache.removePod(pod.UID)
	if assigned(pod) {
		s.queue.move(nil)
		return
	}
	s.queue.delete(pod)
}

func (s *Scheduler) addNode(obj any) {
	if node := nodeFrom(obj); node != nil {
		s.cache.addNode(node)
		s.queue.move(nil)
	}
}

func (s *Scheduler) updateNode(oldObj, newObj any) {
	old, node := nodeFrom(oldObj), nodeFrom(newObj)
	if old == nil || node == nil {
		return
	}
	s.cache.addNode(node)
	if schedulingChanged(old, node) {
		s.queue.move(nil)
	}
}

// schedulingChanged reports whether a node update can change a decision:
// heartbeats and image lists cannot, and they are most updates.
func schedulingChanged(old, node *corev1.Node) bool {
	return old.Spec.Unschedulable != node.Spec.Unschedulable ||
		!maps.Equal(old.Labels, node.Labels) ||
		!equality.Semantic.DeepEqual(old.Spec.Taints, node.Spec.Taints) ||
		!equality.Semantic.DeepEqual(old.Status.Allocatable, node.Status.Allocatable)
}

func (s *Scheduler) deleteNode(obj any) {
	if node := nodeFrom(obj); node != nil {
		s.cache.removeNode(node.Name)
	}
}

func (s *Scheduler) setNamespace(obj any) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if ns, ok := obj.(*corev1.Namespace); ok {
		s.cache.setNamespace(ns.Name, ns.Labels)
		s.queue.move(func(qp *queuedPod) bool { return qp.plugins&pluginInterPodAffinity != 0 })
	}
}

func (s *Scheduler) deleteNamespace(obj any) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if ns, ok := obj.(*corev1.Namespace); ok {
		s.cache.deleteNamespace(ns.Name)
	}
}
