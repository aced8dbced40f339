package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
)

// Default spreading of a pod without topologySpreadConstraints: at most a
// skew of 3 across nodes and 5 across zones among the pods of its owner,
// as a preference (kube's system default constraints).
const (
	defaultHostnameMaxSkew = 3
	defaultZoneMaxSkew     = 5
)

// spreadConstraint is a parsed topologySpreadConstraint. It counts the
// pods of the incoming pod's namespace that selector matches, or, for
// the default spreading, the pods of the same owner.
type spreadConstraint struct {
	maxSkew     int32
	minDomains  int32
	topologyKey string
	selector    labels.Selector
	ownerUID    types.UID
	// honorAffinity and honorTaints are nodeAffinityPolicy and
	// nodeTaintsPolicy: whether nodes the pod could not go to (by its node
	// affinity, by taints it does not tolerate) count as domains.
	honorAffinity, honorTaints bool
}

// spreadConstraints parses the constraints of pod with the given
// whenUnsatisfiable; matchLabelKeys add "key in (pod's value)".
func spreadConstraints(pod *corev1.Pod, when corev1.UnsatisfiableConstraintAction) []spreadConstraint {
	var out []spreadConstraint
	for i := range pod.Spec.TopologySpreadConstraints {
		c := &pod.Spec.TopologySpreadConstraints[i]
		if c.WhenUnsatisfiable != when {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			continue // validated by the API server
		}
		if sel, err = withLabelKeys(sel, pod.Labels, c.MatchLabelKeys, selection.In); err != nil {
			continue
		}
		sc := spreadConstraint{
			maxSkew: c.MaxSkew, minDomains: 1, topologyKey: c.TopologyKey, selector: sel,
			honorAffinity: c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
			honorTaints:   c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor,
		}
		if c.MinDomains != nil {
			sc.minDomains = *c.MinDomains
		}
		out = append(out, sc)
	}
	return out
}

// defaultSpreadConstraints spread the pods of one owner across nodes and
// zones. kube derives the group from the Services and controllers whose
// selectors match the pod; kiln uses the controller ownerReference, which
// needs no extra informers and groups the same pods in the common case.
func defaultSpreadConstraints(pi *podInfo) []spreadConstraint {
	if pi.ownerUID == "" {
		return nil
	}
	return []spreadConstraint{
		{maxSkew: defaultHostnameMaxSkew, minDomains: 1, topologyKey: corev1.LabelHostname, ownerUID: pi.ownerUID, honorAffinity: true},
		{maxSkew: defaultZoneMaxSkew, minDomains: 1, topologyKey: corev1.LabelTopologyZone, ownerUID: pi.ownerUID, honorAffinity: true},
	}
}

// count is how many pods of pods the constraint selects; terminating
// pods do not count (kube #87621).
func (c *spreadConstraint) count(pods []*podInfo, ns string) int {
	n := 0
	for _, p := range pods {
		if p.pod.DeletionTimestamp != nil || p.pod.Namespace != ns {
			continue
		}
		if c.ownerUID != "" {
			if p.ownerUID == c.ownerUID {
				n++
			}
		} else if !c.selector.Empty() && c.selector.Matches(labels.Set(p.pod.Labels)) {
			n++
		}
	}
	return n
}

// includes applies the node inclusion policies.
func (c *spreadConstraint) includes(st *cycleState, node *corev1.Node) bool {
	if c.honorAffinity && !st.nodeAffinity.matches(node) {
		return false
	}
	if c.honorTaints && untoleratedTaint(node.Spec.Taints, st.pod.Spec.Tolerations, doNotSchedule) != nil {
		return false
	}
	return true
}

func hasTopologyKeys(l map[string]string, cs []spreadConstraint) bool {
	for i := range cs {
		if _, ok := l[cs[i].topologyKey]; !ok {
			return false
		}
	}
	return true
}

// spreadFilter is PodTopologySpread's filter state for the DoNotSchedule
// constraints: matching pods per domain, over every node that has all the
// constraints' topology keys and passes the inclusion policies.
type spreadFilter struct {
	constraints []spreadConstraint
	counts      []map[string]int
	minMatch    []int
	selfMatch   []int
}

func newSpreadFilter(snap *snapshot, st *cycleState) *spreadFilter {
	cs := spreadConstraints(st.pod, corev1.DoNotSchedule)
	if len(cs) == 0 {
		return nil
	}
	f := &spreadFilter{constraints: cs, counts: make([]map[string]int, len(cs)),
		minMatch: make([]int, len(cs)), selfMatch: make([]int, len(cs))}
	for i := range cs {
		f.counts[i] = map[string]int{}
	}
	for _, ni := range snap.nodes {
		node := ni.node
		if !hasTopologyKeys(node.Labels, cs) {
			continue
		}
		for i := range cs {
			if !cs[i].includes(st, node) {
				continue
			}
			f.counts[i][node.Labels[cs[i].topologyKey]] += cs[i].count(ni.pods, st.pod.Namespace)
		}
	}
	podLabels := labels.Set(st.pod.Labels)
	for i := range cs {
		m := math.MaxInt32
		for _, n := range f.counts[i] {
			m = min(m, n)
		}
		// Fewer domains than minDomains: the missing ones count as empty.
		if len(f.counts[i]) < int(cs[i].minDomains) {
			m = 0
		}
		f.minMatch[i] = m
		if cs[i].selector.Matches(podLabels) {
			f.selfMatch[i] = 1
		}
	}
	return f
}

// filter rejects a node whose domain would exceed maxSkew over the
// least populated domain once the pod is there.
func (f *spreadFilter) filter(node *corev1.Node) *status {
	for i := range f.constraints {
		c := &f.constraints[i]
		v, ok := node.Labels[c.topologyKey]
		if !ok {
			return reject(pluginPodTopologySpread, reasonSpreadMissingLabel)
		}
		if f.counts[i][v]+f.selfMatch[i]-f.minMatch[i] > int(c.maxSkew) {
			return reject(pluginPodTopologySpread, reasonSpread)
		}
	}
	return nil
}

// spreadScore is PodTopologySpread's score for ScheduleAnyway constraints
// (or the default spreading): fewer matching pods in a node's domains is
// better, each constraint weighted by the log of its number of domains.
type spreadScore struct {
	constraints []spreadConstraint
	// counts per constraint and domain, for all but hostname constraints,
	// whose count is the node's own.
	counts  []map[string]int
	weights []float64
	ignored []bool // per feasible node: lacks a required topology key
}

func newSpreadScore(snap *snapshot, st *cycleState, feasible []*nodeInfo) *spreadScore {
	cs := spreadConstraints(st.pod, corev1.ScheduleAnyway)
	requireAll := true
	if len(st.pod.Spec.TopologySpreadConstraints) == 0 {
		cs = defaultSpreadConstraints(st.pi)
		// Default spreading still spreads by hostname on nodes without a
		// zone label.
		requireAll = false
	}
	if len(cs) == 0 {
		return nil
	}
	s := &spreadScore{constraints: cs, counts: make([]map[string]int, len(cs)),
		weights: make([]float64, len(cs)), ignored: make([]bool, len(feasible))}
	sizes := make([]int, len(cs))
	for i := range cs {
		s.counts[i] = map[string]int{}
	}
	ignoredN := 0
	for j, ni := range feasible {
		if requireAll && !hasTopologyKeys(ni.node.Labels, cs) {
			s.ignored[j] = true
			ignoredN++
			continue
		}
		for i := range cs {
			if cs[i].topologyKey == corev1.LabelHostname {
				continue
			}
			v := ni.node.Labels[cs[i].topologyKey]
			if _, ok := s.counts[i][v]; !ok {
				s.counts[i][v] = 0
				sizes[i]++
			}
		}
	}
	for i := range cs {
		n := sizes[i]
		if cs[i].topologyKey == corev1.LabelHostname {
			n = len(feasible) - ignoredN
		}
		s.weights[i] = math.Log(float64(n + 2))
	}
	for _, ni := range snap.nodes {
		if requireAll && !hasTopologyKeys(ni.node.Labels, cs) {
			continue
		}
		for i := range cs {
			c := &cs[i]
			if c.topologyKey == corev1.LabelHostname || !c.includes(st, ni.node) {
				continue
			}
			v := ni.node.Labels[c.topologyKey]
			if n, ok := s.counts[i][v]; ok {
				s.counts[i][v] = n + c.count(ni.pods, st.pod.Namespace)
			}
		}
	}
	return s
}

func (s *spreadScore) score(st *cycleState, j int, ni *nodeInfo) int64 {
	if s.ignored[j] {
		return 0
	}
	var score float64
	for i := range s.constraints {
		c := &s.constraints[i]
		v, ok := ni.node.Labels[c.topologyKey]
		if !ok {
			continue
		}
		var n int
		if c.topologyKey == corev1.LabelHostname {
			n = c.count(ni.pods, st.pod.Namespace)
		} else {
			n = s.counts[i][v]
		}
		score += float64(n)*s.weights[i] + float64(c.maxSkew-1)
	}
	return int64(math.Round(score))
}

// normalize maps the lowest raw score to 100 and the highest to about
// 100*min/max, ignored nodes to 0.
func (s *spreadScore) normalize(scores []int64) {
	var lo int64 = math.MaxInt64
	var hi int64
	for j, v := range scores {
		if s.ignored[j] {
			continue
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	for j := range scores {
		switch {
		case s.ignored[j]:
			scores[j] = 0
		case hi == 0:
			scores[j] = maxNodeScore
		default:
			scores[j] = maxNodeScore * (hi + lo - scores[j]) / hi
		}
	}
}
