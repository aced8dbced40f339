package replicaset

import (
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// annotationDeletionCost is kube's pod-deletion-cost: among otherwise
// equal Pods, the lower cost is deleted first.
const annotationDeletionCost = "controller.kubernetes.io/pod-deletion-cost"

// podsToDelete picks the n least useful of pods, in kube's ActivePods
// order (see byUsefulness). pods is reordered.
func podsToDelete(pods []*corev1.Pod, n int) []*corev1.Pod {
	if n >= len(pods) {
		return pods
	}
	// Rank is how many of the ReplicaSet's Pods share a Pod's node: from
	// a crowded node first. Kube also counts the Pods of sibling
	// ReplicaSets of the same Deployment; kiln counts this ReplicaSet's.
	onNode := map[string]int{}
	for _, p := range pods {
		onNode[p.Spec.NodeName]++
	}
	rank := make([]int, len(pods))
	for i, p := range pods {
		rank[i] = onNode[p.Spec.NodeName]
	}
	sort.Sort(byUsefulness{pods: pods, rank: rank})
	return pods[:n]
}

// byUsefulness sorts the least useful Pod first, as kube's
// ActivePodsWithRanks:
//
//  1. unscheduled < scheduled
//  2. Pending < Unknown < Running
//  3. not ready < ready
//  4. lower pod-deletion-cost < higher
//  5. more Pods on the same node < fewer
//  6. ready for less time < more (never-ready first)
//  7. more container restarts < fewer
//  8. created more recently < earlier
//
// Kube compares 6 and 8 on a logarithmic scale (LogarithmicScaleDown) to
// spread deletions randomly over Pods of a similar age; kiln compares the
// times as they are, which keeps the order deterministic.
type byUsefulness struct {
	pods []*corev1.Pod
	rank []int
}

var phaseOrdinal = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

func (s byUsefulness) Len() int { return len(s.pods) }

func (s byUsefulness) Swap(i, j int) {
	s.pods[i], s.pods[j] = s.pods[j], s.pods[i]
	s.rank[i], s.rank[j] = s.rank[j], s.rank[i]
}

func (s byUsefulness) Less(i, j int) bool {
	a, b := s.pods[i], s.pods[j]
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if pa, pb := phaseOrdinal[a.Status.Phase], phaseOrdinal[b.Status.Phase]; pa != pb {
		return pa < pb
	}
	readyA, sinceA := podReady(a)
	readyB, sinceB := podReady(b)
	if readyA != readyB {
		return !readyA
	}
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	if s.rank[i] != s.rank[j] {
		return s.rank[i] > s.rank[j]
	}
	if readyA && readyB && !sinceA.Equal(sinceB) {
		return laterOrZero(sinceA, sinceB)
	}
	if ra, rb := maxRestarts(a), maxRestarts(b); ra != rb {
		return ra > rb
	}
	if ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time; !ta.Equal(tb) {
		return laterOrZero(ta, tb)
	}
	return false
}

// laterOrZero orders a zero time first, then the later time.
func laterOrZero(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero()
	}
	return a.After(b)
}

// podReady reports the Pod's Ready condition and when it last changed.
func podReady(p *corev1.Pod) (bool, time.Time) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue, c.LastTransitionTime.Time
		}
	}
	return false, time.Time{}
}

// deletionCost reads the pod-deletion-cost annotation; missing or invalid
// is 0, as kube.
func deletionCost(p *corev1.Pod) int32 {
	v, ok := p.Annotations[annotationDeletionCost]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return int32(n)
}

// maxRestarts is the highest restart count among the Pod's containers and
// its restartable (sidecar) init containers.
func maxRestarts(p *corev1.Pod) int32 {
	var n int32
	for _, s := range p.Status.ContainerStatuses {
		n = max(n, s.RestartCount)
	}
	sidecar := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecar[c.Name] = true
		}
	}
	for _, s := range p.Status.InitContainerStatuses {
		if sidecar[s.Name] {
			n = max(n, s.RestartCount)
		}
	}
	return n
}
