package scheduler

import (
	"maps"
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// hardPodAffinityWeight is what an existing pod's required affinity to
// the incoming pod adds to its domain's score (kube's default).
const hardPodAffinityWeight = 1

type topologyPair struct{ key, value string }

// withNamespaces resolves the namespaceSelector of the incoming pod's
// terms into the namespace set, against the snapshot's namespaces, as
// kube's mergeAffinityTermNamespacesIfNotEmpty does, so that existing
// pods are matched by namespace name alone.
func withNamespaces(terms []affinityTerm, namespaces map[string]labels.Set) []affinityTerm {
	out := make([]affinityTerm, len(terms))
	for i, t := range terms {
		if t.nsSelector != nil {
			ns := maps.Clone(t.namespaces)
			for name, l := range namespaces {
				if t.nsSelector.Matches(l) {
					ns[name] = struct{}{}
				}
			}
			t.namespaces = ns
			t.nsSelector = nil
		}
		out[i] = t
	}
	return out
}

// interPodFilter is InterPodAffinity's filter state: per topology pair,
// the existing pods whose required anti-affinity selects the incoming
// pod, and the existing pods the incoming pod's required affinity and
// anti-affinity terms select.
type interPodFilter struct {
	existingAnti   map[topologyPair]int
	affinity       map[topologyPair]int
	anti           map[topologyPair]int
	requiredAff    []affinityTerm
	requiredAnti   []affinityTerm
	selfMatchesAll bool
}

func newInterPodFilter(snap *snapshot, st *cycleState) *interPodFilter {
	pod := st.pod
	nsLabels := snap.namespaces[pod.Namespace]
	f := &interPodFilter{
		existingAnti: map[topologyPair]int{},
		requiredAff:  withNamespaces(st.pi.requiredAffinity, snap.namespaces),
		requiredAnti: withNamespaces(st.pi.requiredAntiAffinity, snap.namespaces),
	}
	for _, ni := range snap.havePodsWithRequiredAntiAffinity {
		for _, ep := range ni.podsWithRequiredAntiAffinity {
			for i := range ep.requiredAntiAffinity {
				t := &ep.requiredAntiAffinity[i]
				if !t.matches(pod, nsLabels) {
					continue
				}
				if v, ok := ni.node.Labels[t.topologyKey]; ok {
					f.existingAnti[topologyPair{t.topologyKey, v}]++
				}
			}
		}
	}
	if len(f.existingAnti) == 0 && len(f.requiredAff) == 0 && len(f.requiredAnti) == 0 {
		return nil
	}
	if len(f.requiredAff) > 0 || len(f.requiredAnti) > 0 {
		f.affinity, f.anti = map[topologyPair]int{}, map[topologyPair]int{}
		for _, ni := range snap.nodes {
			for _, ep := range ni.pods {
				countTerms(f.affinity, f.requiredAff, ep.pod, ni.node)
				countTerms(f.anti, f.requiredAnti, ep.pod, ni.node)
			}
		}
		f.selfMatchesAll = len(f.requiredAff) > 0
		for i := range f.requiredAff {
			if !f.requiredAff[i].matches(pod, nil) {
				f.selfMatchesAll = false
			}
		}
	}
	return f
}

func countTerms(counts map[topologyPair]int, terms []affinityTerm, pod *corev1.Pod, node *corev1.Node) {
	for i := range terms {
		t := &terms[i]
		if !t.matches(pod, nil) {
			continue
		}
		if v, ok := node.Labels[t.topologyKey]; ok {
			counts[topologyPair{t.topologyKey, v}]++
		}
	}
}

func (f *interPodFilter) filter(node *corev1.Node) *status {
	if !f.satisfiesAffinity(node) {
		return reject(pluginInterPodAffinity, reasonPodAffinity)
	}
	for i := range f.requiredAnti {
		t := &f.requiredAnti[i]
		if v, ok := node.Labels[t.topologyKey]; ok && f.anti[topologyPair{t.topologyKey, v}] > 0 {
			return reject(pluginInterPodAffinity, reasonPodAntiAffinity)
		}
	}
	if len(f.existingAnti) > 0 {
		for k, v := range node.Labels {
			if f.existingAnti[topologyPair{k, v}] > 0 {
				return reject(pluginInterPodAffinity, reasonExistingAntiAffinity)
			}
		}
	}
	return nil
}

// satisfiesAffinity needs, for every required affinity term, a selected
// pod in the node's domain; the node must have every term's topology
// key. The first pod of a group that selects itself may go anywhere with
// those keys while no pod matches any term, or it could never start.
func (f *interPodFilter) satisfiesAffinity(node *corev1.Node) bool {
	found := true
	for i := range f.requiredAff {
		t := &f.requiredAff[i]
		v, ok := node.Labels[t.topologyKey]
		if !ok {
			return false
		}
		if f.affinity[topologyPair{t.topologyKey, v}] <= 0 {
			found = false
		}
	}
	return found || (len(f.affinity) == 0 && f.selfMatchesAll)
}

// interPodScore is InterPodAffinity's score: per topology key and value,
// the weights of the preferred terms (the incoming pod's toward existing
// pods, and existing pods' toward it, plus existing pods' required
// affinity at hardPodAffinityWeight), anti-affinity subtracting.
type interPodScore struct {
	topology map[string]map[string]int64
}

func newInterPodScore(snap *snapshot, st *cycleState) *interPodScore {
	pod, pi := st.pod, st.pi
	prefAff := withNamespaces(pi.preferredAffinity, snap.namespaces)
	prefAnti := withNamespaces(pi.preferredAntiAffinity, snap.namespaces)
	hasOwn := len(prefAff) > 0 || len(prefAnti) > 0
	nodes := snap.havePodsWithAffinity
	if hasOwn {
		nodes = snap.nodes
	}
	nsLabels := snap.namespaces[pod.Namespace]
	s := &interPodScore{topology: map[string]map[string]int64{}}
	add := func(t *affinityTerm, weight int64, target *corev1.Pod, nsl labels.Set, node *corev1.Node) {
		if !t.matches(target, nsl) {
			return
		}
		v, ok := node.Labels[t.topologyKey]
		if !ok {
			return
		}
		m := s.topology[t.topologyKey]
		if m == nil {
			m = map[string]int64{}
			s.topology[t.topologyKey] = m
		}
		m[v] += weight
	}
	for _, ni := range nodes {
		node := ni.node
		if len(node.Labels) == 0 {
			continue
		}
		pods := ni.podsWithAffinity
		if hasOwn {
			pods = ni.pods
		}
		for _, ep := range pods {
			for i := range prefAff {
				add(&prefAff[i], int64(prefAff[i].weight), ep.pod, nil, node)
			}
			for i := range prefAnti {
				add(&prefAnti[i], -int64(prefAnti[i].weight), ep.pod, nil, node)
			}
			for i := range ep.requiredAffinity {
				add(&ep.requiredAffinity[i], hardPodAffinityWeight, pod, nsLabels, node)
			}
			for i := range ep.preferredAffinity {
				add(&ep.preferredAffinity[i], int64(ep.preferredAffinity[i].weight), pod, nsLabels, node)
			}
			for i := range ep.preferredAntiAffinity {
				add(&ep.preferredAntiAffinity[i], -int64(ep.preferredAntiAffinity[i].weight), pod, nsLabels, node)
			}
		}
	}
	if len(s.topology) == 0 {
		return nil
	}
	return s
}

func (s *interPodScore) score(node *corev1.Node) int64 {
	var n int64
	for key, values := range s.topology {
		if v, ok := node.Labels[key]; ok {
			n += values[v]
		}
	}
	return n
}

// normalizeMinMax maps the range of raw scores onto 0..100.
func normalizeMinMax(scores []int64) {
	var lo, hi int64 = math.MaxInt64, math.MinInt64
	for _, v := range scores {
		lo, hi = min(lo, v), max(hi, v)
	}
	for i, v := range scores {
		if hi > lo {
			scores[i] = int64(float64(maxNodeScore) * float64(v-lo) / float64(hi-lo))
		} else {
			scores[i] = 0
		}
	}
}
