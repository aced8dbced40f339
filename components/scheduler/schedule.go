package scheduler

import (
	"math/rand/v2"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
)

// cycleState is what the filters and scores read about the pod being
// scheduled, worked out once per decision rather than once per node.
type cycleState struct {
	pod          *corev1.Pod
	pi           *podInfo
	nodeAffinity nodeAffinity
	// toleratesUnschedulable: the pod tolerates the taint kube's
	// NodeUnschedulable treats spec.unschedulable as.
	toleratesUnschedulable bool
	spread                 *spreadFilter   // nil: no DoNotSchedule constraints
	interPod               *interPodFilter // nil: no inter-pod affinity in play
	volumes                *volumeFilter   // nil: no PersistentVolumeClaims
}

var unschedulableTaint = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}

func newCycleState(snap *snapshot, pod *corev1.Pod, vf *volumeFilter) *cycleState {
	st := &cycleState{
		pod:                    pod,
		volumes:                vf,
		pi:                     newPodInfo(pod),
		nodeAffinity:           newNodeAffinity(pod),
		toleratesUnschedulable: tolerated(pod.Spec.Tolerations, &unschedulableTaint),
	}
	st.spread = newSpreadFilter(snap, st)
	st.interPod = newInterPodFilter(snap, st)
	return st
}

// algorithm decides where pods go. Its decisions read only the snapshot
// they are given; its own state is the node to start the next search at
// (so that successive pods look at different nodes first, as kube's
// nextStartNodeIndex) and the random source that breaks ties. Only the
// scheduling loop calls it.
type algorithm struct {
	parallelism int
	percentage  int
	nextStart   int
	rnd         *rand.Rand
}

// decision is where a pod goes, and how much of the cluster was looked at.
type decision struct {
	node      string
	pi        *podInfo // the pod as placed, for the cache
	evaluated int      // nodes filtered
	feasible  int      // nodes that fit, of those
}

// numFeasibleNodesToFind is kube's adaptive search size: every node of a
// small cluster; else the configured percentage, or 50% less 1% per 125
// nodes down to 5%, and never fewer than 100 nodes.
func (a *algorithm) numFeasibleNodesToFind(n int) int {
	if n < minFeasibleNodesToFind || a.percentage >= 100 {
		return n
	}
	p := a.percentage
	if p <= 0 {
		p = max(50-n/125, minFeasibleNodesPercentageToFind)
	}
	return max(n*p/100, minFeasibleNodesToFind)
}

// schedule picks a node for pod from snap: the filters on nodes (in
// parallel, from nextStart on) until enough fit, then the scores on
// those, and the best total, ties broken at random. When no node fits
// the error is a *FitError counting the reasons.
func (a *algorithm) schedule(snap *snapshot, pod *corev1.Pod) (decision, error) {
	return a.scheduleWith(snap, pod, nil)
}

// scheduleWith is schedule with the pod's volume constraints, nil for a
// pod without claims.
func (a *algorithm) scheduleWith(snap *snapshot, pod *corev1.Pod, vf *volumeFilter) (decision, error) {
	all := len(snap.nodes)
	if all == 0 {
		return decision{}, errNoNodes
	}
	st := newCycleState(snap, pod, vf)
	// Nodes the pod names by metadata.name are the only candidates; the
	// others count as rejected by NodeAffinity without being filtered.
	nodes, start := snap.nodes, a.nextStart
	if names, ok := st.nodeAffinity.nodeNames(); ok {
		if len(names) == 0 {
			return decision{}, &FitError{NumAllNodes: all, preFilter: reasonTermsConflict, plugins: pluginNodeAffinity}
		}
		nodes, start = make([]*nodeInfo, 0, len(names)), 0
		for _, name := range names {
			if i, ok := snap.index[name]; ok {
				nodes = append(nodes, snap.nodes[i])
			}
		}
	}
	n := len(nodes)
	want := a.numFeasibleNodesToFind(n)
	feasible := make([]*nodeInfo, want)
	var found, failed atomic.Int64
	diag := make([]*diagnosis, a.parallelism)
	err := parallelize(a.parallelism, n, func(w, i int) bool {
		ni := nodes[(start+i)%n]
		if s := filter(st, ni); s != nil {
			failed.Add(1)
			if diag[w] == nil {
				diag[w] = &diagnosis{reasons: map[string]int{}}
			}
			diag[w].add(s)
			return true
		}
		k := found.Add(1)
		if k > int64(want) {
			found.Add(-1)
			return false
		}
		feasible[k-1] = ni
		return k < int64(want)
	})
	if err != nil {
		return decision{}, err
	}
	nf := int(found.Load())
	evaluated := nf + int(failed.Load())
	if n == all {
		a.nextStart = (a.nextStart + evaluated) % all
	}
	feasible = feasible[:nf]
	if nf == 0 {
		fe := &FitError{NumAllNodes: all, Reasons: map[string]int{}}
		if n < all {
			fe.Reasons[reasonNotNamed] = all - n
			fe.plugins |= pluginNodeAffinity
		}
		for _, d := range diag {
			if d == nil {
				continue
			}
			fe.plugins |= d.plugins
			for r, c := range d.reasons {
				fe.Reasons[r] += c
			}
		}
		return decision{evaluated: evaluated}, fe
	}
	d := decision{pi: st.pi, evaluated: evaluated, feasible: nf}
	if nf == 1 {
		d.node = feasible[0].node.Name
		return d, nil
	}
	totals, err := a.prioritize(snap, st, feasible)
	if err != nil {
		return decision{}, err
	}
	d.node = feasible[a.selectHost(totals)].node.Name
	return d, nil
}

// diagnosis counts the reasons of one goroutine's rejected nodes.
type diagnosis struct {
	reasons map[string]int
	plugins plugin
}

func (d *diagnosis) add(s *status) {
	d.plugins |= s.plugin
	for _, r := range s.reasons {
		d.reasons[r]++
	}
}

// scoreKind names one score plugin.
type scoreKind int

const (
	scoreLeastAllocated scoreKind = iota
	scoreBalanced
	scoreTaintToleration
	scoreNodeAffinity
	scorePodTopologySpread
	scoreInterPodAffinity
	numScores
)

// scoreWeights are kube's default profile's.
var scoreWeights = [numScores]int64{
	scoreLeastAllocated:    weightLeastAllocated,
	scoreBalanced:          weightBalanced,
	scoreTaintToleration:   weightTaintToleration,
	scoreNodeAffinity:      weightNodeAffinity,
	scorePodTopologySpread: weightPodTopologySpread,
	scoreInterPodAffinity:  weightInterPodAffinity,
}

// scores runs each score plugin on every feasible node and normalizes
// its scores over the nodes, each to 0..100; a plugin with nothing to
// score (a best-effort pod for BalancedAllocation, no spreading, no
// inter-pod terms) gives nil, as kube's Skip.
func (a *algorithm) scores(snap *snapshot, st *cycleState, feasible []*nodeInfo) ([numScores][]int64, error) {
	var out [numScores][]int64
	n := len(feasible)
	var preferred []corev1.PreferredSchedulingTerm
	if aff := st.pod.Spec.Affinity; aff != nil && aff.NodeAffinity != nil {
		preferred = aff.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution
	}
	spread := newSpreadScore(snap, st, feasible)
	interPod := newInterPodScore(snap, st)
	out[scoreLeastAllocated] = make([]int64, n)
	out[scoreTaintToleration] = make([]int64, n)
	if !bestEffort(st.pi) {
		out[scoreBalanced] = make([]int64, n)
	}
	if len(preferred) > 0 {
		out[scoreNodeAffinity] = make([]int64, n)
	}
	if spread != nil {
		out[scorePodTopologySpread] = make([]int64, n)
	}
	if interPod != nil {
		out[scoreInterPodAffinity] = make([]int64, n)
	}
	err := parallelize(a.parallelism, n, func(_, j int) bool {
		ni := feasible[j]
		out[scoreLeastAllocated][j] = leastAllocated(st.pi, ni)
		if len(ni.preferTaints) > 0 {
			out[scoreTaintToleration][j] = preferNoSchedule(ni.preferTaints, st.pod.Spec.Tolerations)
		}
		if out[scoreBalanced] != nil {
			out[scoreBalanced][j] = balanced(st.pi, ni)
		}
		if out[scoreNodeAffinity] != nil {
			out[scoreNodeAffinity][j] = preferredNodeAffinity(preferred, ni.node)
		}
		if spread != nil {
			out[scorePodTopologySpread][j] = spread.score(st, j, ni)
		}
		if interPod != nil {
			out[scoreInterPodAffinity][j] = interPod.score(ni.node)
		}
		return true
	})
	if err != nil {
		return out, err
	}
	normalizeToMax(out[scoreTaintToleration], true)
	if out[scoreNodeAffinity] != nil {
		normalizeToMax(out[scoreNodeAffinity], false)
	}
	if spread != nil {
		spread.normalize(out[scorePodTopologySpread])
	}
	if interPod != nil {
		normalizeMinMax(out[scoreInterPodAffinity])
	}
	return out, nil
}

// prioritize is the weighted sum of the normalized scores per node.
func (a *algorithm) prioritize(snap *snapshot, st *cycleState, feasible []*nodeInfo) ([]int64, error) {
	scores, err := a.scores(snap, st, feasible)
	if err != nil {
		return nil, err
	}
	totals := make([]int64, len(feasible))
	for k, s := range scores {
		for j, v := range s {
			totals[j] += scoreWeights[k] * v
		}
	}
	return totals, nil
}

// selectHost returns the index of the highest total; among equal ones
// each is equally likely (reservoir sampling), so that identical empty
// nodes fill evenly.
func (a *algorithm) selectHost(totals []int64) int {
	best, ties := 0, 1
	for j := 1; j < len(totals); j++ {
		switch {
		case totals[j] > totals[best]:
			best, ties = j, 1
		case totals[j] == totals[best]:
			ties++
			if a.rnd.IntN(ties) == 0 {
				best = j
			}
		}
	}
	return best
}
