package scheduler

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"kiln.dev/kiln/components/internal/nodeselector"
)

// plugin names one filter; a set of them records why a pod failed, so
// that only the cluster events that could help retry it.
type plugin uint16

const (
	pluginNodeUnschedulable plugin = 1 << iota
	pluginNodeName
	pluginTaintToleration
	pluginNodeAffinity
	pluginNodePorts
	pluginNodeResourcesFit
	pluginPodTopologySpread
	pluginInterPodAffinity
	pluginVolumeBinding
)

// Reasons, word for word kube-scheduler's, so that messages and the
// tools that read them stay the same.
const (
	reasonNodeUnschedulable    = "node(s) were unschedulable"
	reasonNodeName             = "node(s) didn't match the requested node name"
	reasonNodeAffinity         = "node(s) didn't match Pod's node affinity/selector"
	reasonNodePorts            = "node(s) didn't have free ports for the requested pod ports"
	reasonTooManyPods          = "Too many pods"
	reasonInsufficient         = "Insufficient "
	reasonSpread               = "node(s) didn't match pod topology spread constraints"
	reasonSpreadMissingLabel   = "node(s) didn't match pod topology spread constraints (missing required label)"
	reasonPodAffinity          = "node(s) didn't match pod affinity rules"
	reasonPodAntiAffinity      = "node(s) didn't match pod anti-affinity rules"
	reasonExistingAntiAffinity = "node(s) didn't satisfy existing pods anti-affinity rules"
	// reasonNotNamed counts the nodes NodeAffinity's PreFilter left out.
	reasonNotNamed = "node(s) didn't satisfy plugin(s) [NodeAffinity]"
	// reasonTermsConflict is the whole message when the terms name no node.
	reasonTermsConflict = "pod affinity terms conflict"
)

// status is why one node was rejected: the filter and its reasons.
type status struct {
	plugin  plugin
	reasons []string
}

func reject(p plugin, reasons ...string) *status { return &status{plugin: p, reasons: reasons} }

// filter runs the filters on one node in kube's order (NodeUnschedulable,
// NodeName, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit,
// PodTopologySpread, InterPodAffinity, then VolumeBinding) and returns the first rejection, or
// nil when the node fits. Like kube, it stops at the first filter that
// fails, so a node counts once per reason of that filter only.
//
// The checks a pod does not need (no nodeName, no selector or affinity,
// no host ports) are skipped without reading the node.
func filter(st *cycleState, ni *nodeInfo) *status {
	if ni.unschedulable && !st.toleratesUnschedulable {
		return reject(pluginNodeUnschedulable, reasonNodeUnschedulable)
	}
	if st.pod.Spec.NodeName != "" && st.pod.Spec.NodeName != ni.node.Name {
		return reject(pluginNodeName, reasonNodeName)
	}
	if len(ni.taints) > 0 {
		if t := untoleratedTaint(ni.taints, st.pod.Spec.Tolerations, doNotSchedule); t != nil {
			return reject(pluginTaintToleration, fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value))
		}
	}
	if st.nodeAffinity.any() && !st.nodeAffinity.matches(ni.node) {
		return reject(pluginNodeAffinity, reasonNodeAffinity)
	}
	if len(st.pi.ports) > 0 && portsConflict(st.pi.ports, ni.usedPorts) {
		return reject(pluginNodePorts, reasonNodePorts)
	}
	if reasons := insufficientResources(&st.pi.requests, ni); len(reasons) > 0 {
		return reject(pluginNodeResourcesFit, reasons...)
	}
	if st.spread != nil {
		if s := st.spread.filter(ni.node); s != nil {
			return s
		}
	}
	if st.interPod != nil {
		if s := st.interPod.filter(ni.node); s != nil {
			return s
		}
	}
	if st.volumes != nil {
		if s := st.volumes.filter(ni.node); s != nil {
			return s
		}
	}
	return nil
}

// doNotSchedule selects the taints the filter honours; PreferNoSchedule
// only lowers a node's score.
func doNotSchedule(t *corev1.Taint) bool {
	return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
}

// untoleratedTaint is the first taint, of those want selects, that no
// toleration tolerates.
func untoleratedTaint(taints []corev1.Taint, tols []corev1.Toleration, want func(*corev1.Taint) bool) *corev1.Taint {
	for i := range taints {
		t := &taints[i]
		if want(t) && !tolerated(tols, t) {
			return t
		}
	}
	return nil
}

// tolerated is Toleration.ToleratesTaint with the alpha Lt/Gt operators
// off, as in kube: an empty effect or key matches any, Exists ignores the
// value, Equal (or no operator) compares it.
func tolerated(tols []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tols {
		tol := &tols[i]
		if tol.Effect != "" && tol.Effect != t.Effect {
			continue
		}
		if tol.Key != "" && tol.Key != t.Key {
			continue
		}
		switch tol.Operator {
		case corev1.TolerationOpExists:
			return true
		case "", corev1.TolerationOpEqual:
			if tol.Value == t.Value {
				return true
			}
		}
	}
	return false
}

func portsConflict(want, used []hostPort) bool {
	for _, w := range want {
		for _, u := range used {
			if w.conflicts(u) {
				return true
			}
		}
	}
	return false
}

// insufficientResources is kube's fitsRequest: the pod count always,
// then each resource the pod requests against what the node has left.
func insufficientResources(req *resources, ni *nodeInfo) []string {
	var out []string
	if int64(len(ni.pods))+1 > ni.allowedPods {
		out = append(out, reasonTooManyPods)
	}
	if req.isZero() {
		return out
	}
	free, used := &ni.allocatable, &ni.requested
	if req.milliCPU > 0 && req.milliCPU > free.milliCPU-used.milliCPU {
		out = append(out, reasonInsufficient+string(corev1.ResourceCPU))
	}
	if req.memory > 0 && req.memory > free.memory-used.memory {
		out = append(out, reasonInsufficient+string(corev1.ResourceMemory))
	}
	if req.ephemeral > 0 && req.ephemeral > free.ephemeral-used.ephemeral {
		out = append(out, reasonInsufficient+string(corev1.ResourceEphemeralStorage))
	}
	for name, q := range req.scalar {
		if q > 0 && q > free.scalar[name]-used.scalar[name] {
			out = append(out, reasonInsufficient+string(name))
		}
	}
	return out
}

// nodeAffinity is a pod's hard node constraints: nodeSelector and
// requiredDuringSchedulingIgnoredDuringExecution.
type nodeAffinity struct {
	selector map[string]string
	// terms are ORed; nil means no required affinity, while a present
	// affinity with no usable term matches no node.
	terms    []corev1.NodeSelectorTerm
	hasTerms bool
}

func newNodeAffinity(pod *corev1.Pod) nodeAffinity {
	na := nodeAffinity{selector: pod.Spec.NodeSelector}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		na.hasTerms = true
		na.terms = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	}
	return na
}

// nodeNames is NodeAffinity's PreFilter: when every required term names
// nodes by matchFields metadata.name In (as DaemonSet pods do), only the
// union of those names can fit, and ok is true; an empty union means the
// terms conflict. Otherwise every node is a candidate.
func (na *nodeAffinity) nodeNames() (names []string, ok bool) {
	if !na.hasTerms || len(na.terms) == 0 {
		return nil, false
	}
	union := map[string]struct{}{}
	for i := range na.terms {
		var term map[string]struct{}
		for _, r := range na.terms[i].MatchFields {
			if r.Key != "metadata.name" || r.Operator != corev1.NodeSelectorOpIn {
				continue
			}
			vals := map[string]struct{}{}
			for _, v := range r.Values {
				if _, in := term[v]; term == nil || in {
					vals[v] = struct{}{}
				}
			}
			term = vals // requirements of a term are ANDed
		}
		if term == nil {
			return nil, false // this term may match any node
		}
		for v := range term {
			union[v] = struct{}{}
		}
	}
	names = make([]string, 0, len(union))
	for v := range union {
		names = append(names, v)
	}
	slices.Sort(names)
	return names, true
}

// any reports whether the pod constrains nodes at all.
func (na *nodeAffinity) any() bool { return len(na.selector) > 0 || na.hasTerms }

func (na *nodeAffinity) matches(node *corev1.Node) bool {
	for k, v := range na.selector {
		if got, ok := node.Labels[k]; !ok || got != v {
			return false
		}
	}
	if !na.hasTerms {
		return true
	}
	for i := range na.terms {
		if nodeselector.TermMatches(&na.terms[i], node) {
			return true
		}
	}
	return false
}
