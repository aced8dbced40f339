package reconcile

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Health states of an object, as Argo CD and Flux name them.
const (
	HealthHealthy     = "Healthy"
	HealthProgressing = "Progressing"
	HealthDegraded    = "Degraded"
)

// Health is one object's health and why.
type Health struct {
	Status  string
	Message string
}

// endpointsFunc reports whether a Service has a ready endpoint.
type endpointsFunc func(namespace, service string) bool

// Assess judges one object by the rules of the Source's Healthy
// condition; endpoints, if not nil, reports whether a Service has a ready
// endpoint. It is exported so that the dashboard counts health the same
// way.
func Assess(u *unstructured.Unstructured, endpoints func(namespace, service string) bool) Health {
	return assess(u, endpoints)
}

// assess judges an object from its own status, as kubectl rollout status
// and Argo CD's health checks do. Kinds without a notion of health are
// healthy once they exist.
func assess(u *unstructured.Unstructured, endpoints endpointsFunc) Health {
	name := objectName(u)
	gen := u.GetGeneration()
	observed, hasObserved, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	stale := hasObserved && observed < gen || !hasObserved && gen > 0
	num := func(path ...string) int64 {
		n, _, _ := unstructured.NestedInt64(u.Object, path...)
		return n
	}
	replicas := func() int64 {
		if n, ok, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); ok {
			return n
		}
		return 1
	}
	switch u.GroupVersionKind().GroupKind().String() {
	case "Deployment.apps":
		if c := condition(u, "Progressing"); c != nil && c["reason"] == "ProgressDeadlineExceeded" {
			return Health{HealthDegraded, fmt.Sprintf("%s: progress deadline exceeded: %v", name, c["message"])}
		}
		want := replicas()
		switch {
		case stale:
			return Health{HealthProgressing, name + ": waiting for the controller to observe the new generation"}
		case num("status", "updatedReplicas") < want:
			return Health{HealthProgressing, fmt.Sprintf("%s: %d of %d replicas updated", name, num("status", "updatedReplicas"), want)}
		case num("status", "replicas") > num("status", "updatedReplicas"):
			return Health{HealthProgressing, fmt.Sprintf("%s: %d old replicas pending termination", name, num("status", "replicas")-num("status", "updatedReplicas"))}
		case num("status", "availableReplicas") < want:
			return Health{HealthProgressing, fmt.Sprintf("%s: %d of %d replicas available", name, num("status", "availableReplicas"), want)}
		}
	case "ReplicaSet.apps", "StatefulSet.apps", "ReplicationController":
		want := replicas()
		if stale || num("status", "readyReplicas") < want {
			return Health{HealthProgressing, fmt.Sprintf("%s: %d of %d replicas ready", name, num("status", "readyReplicas"), want)}
		}
	case "DaemonSet.apps":
		want := num("status", "desiredNumberScheduled")
		if stale || num("status", "numberAvailable") < want {
			return Health{HealthProgressing, fmt.Sprintf("%s: %d of %d pods available", name, num("status", "numberAvailable"), want)}
		}
	case "Pod":
		return podHealth(u, name)
	case "Job.batch":
		if c := condition(u, "Failed"); c != nil && c["status"] == "True" {
			return Health{HealthDegraded, fmt.Sprintf("%s: failed: %v", name, c["message"])}
		}
		if c := condition(u, "Complete"); c == nil || c["status"] != "True" {
			return Health{HealthProgressing, name + ": not complete yet"}
		}
	case "PersistentVolumeClaim":
		if phase, _, _ := unstructured.NestedString(u.Object, "status", "phase"); phase != "Bound" {
			return Health{HealthProgressing, fmt.Sprintf("%s: %s", name, orUnknown(phase))}
		}
	case "Service":
		typ, _, _ := unstructured.NestedString(u.Object, "spec", "type")
		sel, _, _ := unstructured.NestedMap(u.Object, "spec", "selector")
		if typ != "ExternalName" && len(sel) > 0 && endpoints != nil && !endpoints(u.GetNamespace(), u.GetName()) {
			return Health{HealthProgressing, name + ": no ready endpoints"}
		}
	}
	return Health{Status: HealthHealthy}
}

func podHealth(u *unstructured.Unstructured, name string) Health {
	phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
	switch phase {
	case "Succeeded":
		return Health{Status: HealthHealthy}
	case "Failed":
		reason, _, _ := unstructured.NestedString(u.Object, "status", "reason")
		return Health{HealthDegraded, fmt.Sprintf("%s: failed %s", name, reason)}
	}
	statuses, _, _ := unstructured.NestedSlice(u.Object, "status", "containerStatuses")
	for _, s := range statuses {
		cs, _ := s.(map[string]any)
		waiting, _, _ := unstructured.NestedMap(cs, "state", "waiting")
		switch reason, _ := waiting["reason"].(string); reason {
		case "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName", "CreateContainerError":
			return Health{HealthDegraded, fmt.Sprintf("%s: container %v: %s: %v", name, cs["name"], reason, waiting["message"])}
		}
	}
	if c := condition(u, "Ready"); c == nil || c["status"] != "True" {
		return Health{HealthProgressing, fmt.Sprintf("%s: %s, not ready", name, orUnknown(phase))}
	}
	return Health{Status: HealthHealthy}
}

func condition(u *unstructured.Unstructured, typ string) map[string]any {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			return m
		}
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}
