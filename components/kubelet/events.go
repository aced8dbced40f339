package kubelet

import (
	corev1 "k8s.io/api/core/v1"
)

// event records an Event about a pod, or about one of its containers
// (involvedObject.fieldPath "spec.containers{name}", as the kubelet
// writes it) when container is set.
func (k *Kubelet) event(pod *corev1.Pod, container, eventType, reason, format string, args ...any) {
	if k.recorder == nil {
		return
	}
	ref := &corev1.ObjectReference{
		Kind:       "Pod",
		APIVersion: "v1",
		Namespace:  pod.Namespace,
		Name:       pod.Name,
		UID:        pod.UID,
	}
	if container != "" {
		field := "spec.containers"
		if isInit(pod, container) {
			field = "spec.initContainers"
		}
		ref.FieldPath = field + "{" + container + "}"
	}
	k.recorder.Eventf(ref, eventType, reason, format, args...)
}
