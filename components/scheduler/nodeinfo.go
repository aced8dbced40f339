package scheduler

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// nodeInfo is a node and the pods placed on it (bound, or assumed while
// their bind is in flight), with the sums the filters and scores read.
//
// A nodeInfo is immutable once the cache has published it: every change
// makes a new one (withPod, withoutPod, withNode), so a snapshot can hold
// the pointer while the cache moves on, and updating a snapshot costs one
// pointer per changed node rather than a copy of every node.
type nodeInfo struct {
	// The fields every decision reads for every node come first, copied
	// out of the Node, so that filtering and scoring a node touches one
	// object in a few cache lines rather than chasing into the Node.
	requested   resources
	nonZero     resources // requested with the scoring defaults
	allocatable resources
	allowedPods int64
	// taints are the node's NoSchedule and NoExecute taints, preferTaints
	// its PreferNoSchedule ones.
	taints, preferTaints []corev1.Taint
	usedPorts            []hostPort
	unschedulable        bool

	// node is nil while pods are known on a node whose Node object has not
	// arrived (or was deleted); such a nodeInfo is not in snapshots.
	node *corev1.Node
	pods []*podInfo
	// podsWithAffinity and podsWithRequiredAntiAffinity are the subsets
	// the inter-pod affinity filter and score visit, so that a cluster
	// without affinity costs nothing.
	podsWithAffinity             []*podInfo
	podsWithRequiredAntiAffinity []*podInfo
}

func newNodeInfo(node *corev1.Node) *nodeInfo {
	ni := &nodeInfo{}
	ni.setNode(node)
	return ni
}

func (ni *nodeInfo) setNode(node *corev1.Node) {
	ni.node = node
	ni.allocatable = resources{}
	ni.allowedPods = 0
	ni.taints, ni.preferTaints, ni.unschedulable = nil, nil, false
	if node == nil {
		return
	}
	ni.allocatable = fromList(node.Status.Allocatable)
	ni.allowedPods = node.Status.Allocatable.Pods().Value()
	ni.unschedulable = node.Spec.Unschedulable
	for _, t := range node.Spec.Taints {
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute:
			ni.taints = append(ni.taints, t)
		case corev1.TaintEffectPreferNoSchedule:
			ni.preferTaints = append(ni.preferTaints, t)
		}
	}
}

func (ni *nodeInfo) name() string {
	if ni.node == nil {
		return ""
	}
	return ni.node.Name
}

// clone copies everything a change may touch.
func (ni *nodeInfo) clone() *nodeInfo {
	out := *ni
	out.pods = slices.Clone(ni.pods)
	out.podsWithAffinity = slices.Clone(ni.podsWithAffinity)
	out.podsWithRequiredAntiAffinity = slices.Clone(ni.podsWithRequiredAntiAffinity)
	out.usedPorts = slices.Clone(ni.usedPorts)
	out.requested = ni.requested.clone()
	out.nonZero = ni.nonZero.clone()
	return &out
}

func (ni *nodeInfo) withNode(node *corev1.Node) *nodeInfo {
	out := ni.clone()
	out.setNode(node)
	return out
}

func (ni *nodeInfo) withPod(p *podInfo) *nodeInfo {
	out := ni.clone()
	out.pods = append(out.pods, p)
	if p.hasAffinity() {
		out.podsWithAffinity = append(out.podsWithAffinity, p)
	}
	if len(p.requiredAntiAffinity) > 0 {
		out.podsWithRequiredAntiAffinity = append(out.podsWithRequiredAntiAffinity, p)
	}
	out.requested.add(&p.requests)
	out.nonZero.add(&p.nonZero)
	out.usedPorts = append(out.usedPorts, p.ports...)
	return out
}

// withoutPod removes the pod with uid; ok is false when it is not here.
func (ni *nodeInfo) withoutPod(uid types.UID) (out *nodeInfo, ok bool) {
	i := slices.IndexFunc(ni.pods, func(p *podInfo) bool { return p.pod.UID == uid })
	if i < 0 {
		return ni, false
	}
	p := ni.pods[i]
	out = ni.clone()
	out.pods = slices.Delete(out.pods, i, i+1)
	notP := func(q *podInfo) bool { return q.pod.UID == uid }
	out.podsWithAffinity = slices.DeleteFunc(out.podsWithAffinity, notP)
	out.podsWithRequiredAntiAffinity = slices.DeleteFunc(out.podsWithRequiredAntiAffinity, notP)
	out.requested.sub(&p.requests)
	out.nonZero.sub(&p.nonZero)
	// Ports are recomputed rather than subtracted: two pods may name the
	// same port (on different addresses), and one leaving frees only its
	// own.
	out.usedPorts = out.usedPorts[:0]
	for _, q := range out.pods {
		out.usedPorts = append(out.usedPorts, q.ports...)
	}
	return out, true
}
