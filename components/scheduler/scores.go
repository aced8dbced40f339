package scheduler

import (
	corev1 "k8s.io/api/core/v1"

	"kiln.dev/kiln/components/internal/nodeselector"
)

// maxNodeScore is the best normalized score of one plugin.
const maxNodeScore int64 = 100

// Weights of the scores in the total, kube's default profile.
const (
	weightTaintToleration   = 3
	weightNodeAffinity      = 2
	weightPodTopologySpread = 2
	weightInterPodAffinity  = 2
	weightLeastAllocated    = 1
	weightBalanced          = 1
)

// leastAllocated is NodeResourcesFit's LeastAllocated score: the share of
// cpu and memory left free once the pod is placed, averaged with equal
// weights, counting containers without requests at the scoring defaults.
func leastAllocated(pi *podInfo, ni *nodeInfo) int64 {
	var sum, weights int64
	for _, r := range [2][2]int64{
		{ni.nonZero.milliCPU + pi.nonZero.milliCPU, ni.allocatable.milliCPU},
		{ni.nonZero.memory + pi.nonZero.memory, ni.allocatable.memory},
	} {
		requested, capacity := r[0], r[1]
		if capacity == 0 {
			continue
		}
		weights++
		if requested <= capacity {
			sum += (capacity - requested) * maxNodeScore / capacity
		}
	}
	if weights == 0 {
		return 0
	}
	return sum / weights
}

// balanced is NodeResourcesBalancedAllocation: 100 when the node's cpu
// and memory would be used in the same proportion, less the further
// apart they are (one minus the standard deviation of the two fractions,
// |a-b|/2). Best-effort pods are not scored by it (kube #129138), or they
// would all pile onto one node.
func balanced(pi *podInfo, ni *nodeInfo) int64 {
	var fractions [2]float64
	n := 0
	for _, r := range [2][2]int64{
		{ni.requested.milliCPU + pi.requests.milliCPU, ni.allocatable.milliCPU},
		{ni.requested.memory + pi.requests.memory, ni.allocatable.memory},
	} {
		if r[1] == 0 {
			continue
		}
		fractions[n] = min(float64(r[0])/float64(r[1]), 1)
		n++
	}
	std := 0.0
	if n == 2 {
		std = fractions[0] - fractions[1]
		if std < 0 {
			std = -std
		}
		std /= 2
	}
	return int64((1 - std) * float64(maxNodeScore))
}

func bestEffort(pi *podInfo) bool {
	return pi.requests.milliCPU == 0 && pi.requests.memory == 0
}

// preferredNodeAffinity sums the weights of the pod's preferred node
// affinity terms the node matches; terms without requirements or weight
// are skipped, as in kube.
func preferredNodeAffinity(terms []corev1.PreferredSchedulingTerm, node *corev1.Node) int64 {
	var n int64
	for i := range terms {
		t := &terms[i]
		if t.Weight == 0 {
			continue
		}
		if nodeselector.TermMatches(&t.Preference, node) {
			n += int64(t.Weight)
		}
	}
	return n
}

// preferNoSchedule counts the node's PreferNoSchedule taints the pod does
// not tolerate (by tolerations with that effect or none).
func preferNoSchedule(taints []corev1.Taint, tols []corev1.Toleration) int64 {
	var n int64
	for i := range taints {
		t := &taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !tolerated(tols, t) {
			n++
		}
	}
	return n
}

// normalizeToMax is kube's DefaultNormalizeScore: scale so the highest
// raw score is 100, then, if reverse, flip so the lowest is best.
func normalizeToMax(scores []int64, reverse bool) {
	var hi int64
	for _, v := range scores {
		hi = max(hi, v)
	}
	for i, v := range scores {
		switch {
		case hi == 0 && reverse:
			scores[i] = maxNodeScore
		case hi == 0:
			scores[i] = 0
		case reverse:
			scores[i] = maxNodeScore - maxNodeScore*v/hi
		default:
			scores[i] = maxNodeScore * v / hi
		}
	}
}
