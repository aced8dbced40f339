package scheduler

import (
	corev1 "k8s.io/api/core/v1"
)

// Requests the scoring counts for a container that states none, so that
// best-effort pods still spread: kube's DefaultMilliCPURequest and
// DefaultMemoryRequest.
const (
	defaultMilliCPURequest int64 = 100               // 0.1 core
	defaultMemoryRequest   int64 = 200 * 1024 * 1024 // 200 MiB
)

// resources is an amount of the resources the scheduler accounts: cpu in
// millicores, the others in their units. scalar holds extended resources
// (vendor.com/gpu, hugepages-2Mi); it is nil when there are none and is
// never shared between two values that may change.
type resources struct {
	milliCPU  int64
	memory    int64
	ephemeral int64
	scalar    map[corev1.ResourceName]int64
}

// isZero reports whether r requests nothing.
func (r *resources) isZero() bool {
	if r.milliCPU != 0 || r.memory != 0 || r.ephemeral != 0 {
		return false
	}
	for _, v := range r.scalar {
		if v != 0 {
			return false
		}
	}
	return true
}

func (r *resources) clone() resources {
	out := *r
	if r.scalar != nil {
		out.scalar = make(map[corev1.ResourceName]int64, len(r.scalar))
		for k, v := range r.scalar {
			out.scalar[k] = v
		}
	}
	return out
}

// add adds o to r in place; r's scalar map must be its own.
func (r *resources) add(o *resources) {
	r.milliCPU += o.milliCPU
	r.memory += o.memory
	r.ephemeral += o.ephemeral
	for k, v := range o.scalar {
		if r.scalar == nil {
			r.scalar = map[corev1.ResourceName]int64{}
		}
		r.scalar[k] += v
	}
}

// sub subtracts o from r in place; r's scalar map must be its own.
func (r *resources) sub(o *resources) {
	r.milliCPU -= o.milliCPU
	r.memory -= o.memory
	r.ephemeral -= o.ephemeral
	for k, v := range o.scalar {
		if r.scalar == nil {
			r.scalar = map[corev1.ResourceName]int64{}
		}
		r.scalar[k] -= v
	}
}

// maxWith sets each resource of r to the larger of r's and o's.
func (r *resources) maxWith(o *resources) {
	r.milliCPU = max(r.milliCPU, o.milliCPU)
	r.memory = max(r.memory, o.memory)
	r.ephemeral = max(r.ephemeral, o.ephemeral)
	for k, v := range o.scalar {
		if r.scalar == nil {
			r.scalar = map[corev1.ResourceName]int64{}
		}
		r.scalar[k] = max(r.scalar[k], v)
	}
}

// set records one quantity of a ResourceList; pods and storage are not
// container requests and are ignored.
func (r *resources) set(name corev1.ResourceName, q int64) {
	switch name {
	case corev1.ResourceCPU:
		r.milliCPU = q
	case corev1.ResourceMemory:
		r.memory = q
	case corev1.ResourceEphemeralStorage:
		r.ephemeral = q
	case corev1.ResourcePods, corev1.ResourceStorage:
	default:
		if r.scalar == nil {
			r.scalar = map[corev1.ResourceName]int64{}
		}
		r.scalar[name] = q
	}
}

// fromList converts a ResourceList.
func fromList(rl corev1.ResourceList) resources {
	var r resources
	for name, q := range rl {
		if name == corev1.ResourceCPU {
			r.set(name, q.MilliValue())
		} else {
			r.set(name, q.Value())
		}
	}
	return r
}

// containerRequests is one container's requests; with nonZero, a missing
// cpu or memory request counts as the scoring default.
func containerRequests(c *corev1.Container, nonZero bool) resources {
	r := fromList(c.Resources.Requests)
	if nonZero {
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			r.milliCPU = defaultMilliCPURequest
		}
		if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok {
			r.memory = defaultMemoryRequest
		}
	}
	return r
}

// podRequests is what a pod takes from a node, as kube's
// resourcehelper.PodRequests counts it: the sum of its containers and
// sidecars (init containers with restartPolicy Always), or the largest
// single init container plus the sidecars started before it if that is
// more; pod-level requests (spec.resources) replace the containers' cpu
// and memory; spec.overhead is added. nonZero applies the scoring
// defaults to containers without cpu or memory requests.
func podRequests(pod *corev1.Pod, nonZero bool) resources {
	var reqs resources
	for i := range pod.Spec.Containers {
		c := containerRequests(&pod.Spec.Containers[i], nonZero)
		reqs.add(&c)
	}
	var sidecars, initMax resources
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		c := containerRequests(ic, nonZero)
		if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			// A sidecar runs beside the containers for the pod's whole life,
			// and beside every init container started after it.
			reqs.add(&c)
			sidecars.add(&c)
			c = sidecars.clone()
		} else {
			c.add(&sidecars)
		}
		initMax.maxWith(&c)
	}
	reqs.maxWith(&initMax)
	if pod.Spec.Resources != nil {
		for name, q := range pod.Spec.Resources.Requests {
			switch name {
			case corev1.ResourceCPU:
				reqs.milliCPU = q.MilliValue()
			case corev1.ResourceMemory:
				reqs.memory = q.Value()
			}
		}
	}
	if pod.Spec.Overhead != nil {
		o := fromList(pod.Spec.Overhead)
		reqs.add(&o)
	}
	return reqs
}
