package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Pure tests of the decision over a snapshot: no API server.

// snapshotOf builds a snapshot through the cache, as the informers would.
func snapshotOf(nodes []nodeSpec, pods []*corev1.Pod, namespaces map[string]map[string]string) *snapshot {
	c := newCache()
	for _, n := range nodes {
		c.addNode(newNode(n))
	}
	for i, p := range pods {
		if p.UID == "" {
			p.UID = types.UID(fmt.Sprintf("uid-%d", i))
		}
		if p.Namespace == "" {
			p.Namespace = testNS
		}
		c.setPod(p)
	}
	for ns, l := range namespaces {
		c.setNamespace(ns, l)
	}
	s := newSnapshot()
	c.update(s)
	// Node order follows the cache's map; sort it so tables read in order.
	slices.SortFunc(s.nodes, func(a, b *nodeInfo) int {
		switch {
		case a.name() < b.name():
			return -1
		case a.name() > b.name():
			return 1
		}
		return 0
	})
	for i, ni := range s.nodes {
		s.index[ni.name()] = i
	}
	return s
}

func testAlgorithm() *algorithm {
	return &algorithm{parallelism: 4, rnd: rand.New(rand.NewPCG(1, 2))}
}

func TestFitError_Error_sortsLikeKube(t *testing.T) {
	tests := []struct {
		name string
		fe   FitError
		want string
	}{
		{"one reason", FitError{NumAllNodes: 1, Reasons: map[string]int{"Insufficient cpu": 1}},
			"0/1 nodes are available: 1 Insufficient cpu."},
		{"sorted as strings, count first", FitError{NumAllNodes: 12, Reasons: map[string]int{
			"node(s) had untolerated taint {a: b}": 2, "Insufficient cpu": 10, "Insufficient memory": 10}},
			"0/12 nodes are available: 10 Insufficient cpu, 10 Insufficient memory, 2 node(s) had untolerated taint {a: b}."},
		{"no reasons", FitError{NumAllNodes: 0, Reasons: map[string]int{}}, "0/0 nodes are available:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.fe.Error(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPodRequests(t *testing.T) {
	overhead := withInit(newPod("p", "1", ""), "500m", false)
	overhead.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}
	podLevel := newPod("p", "1", "1Gi")
	podLevel.Spec.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3")}}
	two := newPod("p", "1", "")
	two.Spec.Containers = append(two.Spec.Containers, corev1.Container{Name: "d", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}})
	tests := []struct {
		name    string
		pod     *corev1.Pod
		nonZero bool
		wantCPU int64
		wantMem int64
	}{
		{"containers sum", two, false, 3000, 0},
		{"init below the sum", withInit(newPod("p", "3", ""), "2500m", false), false, 3000, 0},
		{"init above the sum", withInit(newPod("p", "3", ""), "4", false), false, 4000, 0},
		{"sidecar adds, later init sees it", withInit(withInit(newPod("p", "2", ""), "1", true), "1500m", false), false, 3000, 0},
		{"init after a sidecar above the sum", withInit(withInit(newPod("p", "2", ""), "1", true), "3", false), false, 4000, 0},
		{"init before a sidecar does not see it", withInit(withInit(newPod("p", "1", ""), "2500m", false), "1", true), false, 2500, 0},
		{"overhead added", overhead, false, 1250, 0},
		{"pod-level requests replace", podLevel, false, 3000, 1 << 30},
		{"best effort counts nothing", newPod("p", "", ""), false, 0, 0},
		{"best effort scores at the defaults", newPod("p", "", ""), true, defaultMilliCPURequest, defaultMemoryRequest},
		{"a stated zero stays zero", newPod("p", "0", "0"), true, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := podRequests(tc.pod, tc.nonZero)
			if r.milliCPU != tc.wantCPU || r.memory != tc.wantMem {
				t.Fatalf("cpu %dm memory %d, want %dm %d", r.milliCPU, r.memory, tc.wantCPU, tc.wantMem)
			}
		})
	}
}

// Every filter on one node, including NodeName, which the API cannot
// reach (a pod with a nodeName is not the scheduler's).
func TestFilter(t *testing.T) {
	tests := []struct {
		name     string
		node     nodeSpec
		existing []*corev1.Pod
		pod      *corev1.Pod
		want     []string // nil: fits
	}{
		{"fits", nodeSpec{name: "n1"}, nil, newPod("p", "1", "1Gi"), nil},
		{"NodeName other", nodeSpec{name: "n1"}, nil, on(newPod("p", "", ""), "n2"), []string{reasonNodeName}},
		{"NodeName same", nodeSpec{name: "n1"}, nil, on(newPod("p", "", ""), "n1"), nil},
		{"NodeUnschedulable first", nodeSpec{name: "n1", unschedulable: true, cpu: "1"}, nil, newPod("p", "2", ""), []string{reasonNodeUnschedulable}},
		{"taint before resources", nodeSpec{name: "n1", cpu: "1", taints: []corev1.Taint{taint("k", "v", corev1.TaintEffectNoSchedule)}}, nil,
			newPod("p", "2", ""), []string{"node(s) had untolerated taint {k: v}"}},
		{"toleration with empty effect", nodeSpec{name: "n1", taints: []corev1.Taint{taint("k", "v", corev1.TaintEffectNoExecute)}}, nil,
			withTolerations(newPod("p", "", ""), corev1.Toleration{Key: "k", Value: "v"}), nil},
		{"toleration of another effect", nodeSpec{name: "n1", taints: []corev1.Taint{taint("k", "v", corev1.TaintEffectNoExecute)}}, nil,
			withTolerations(newPod("p", "", ""), corev1.Toleration{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}),
			[]string{"node(s) had untolerated taint {k: v}"}},
		{"affinity NotIn holds without the label", nodeSpec{name: "n1"}, nil, withNodeAffinity(newPod("p", "", ""), expr("x", corev1.NodeSelectorOpNotIn, "1")), nil},
		{"affinity Gt without the label", nodeSpec{name: "n1"}, nil, withNodeAffinity(newPod("p", "", ""), expr("x", corev1.NodeSelectorOpGt, "1")), []string{reasonNodeAffinity}},
		{"affinity empty term matches nothing", nodeSpec{name: "n1"}, nil, withNodeAffinity(newPod("p", "", ""), corev1.NodeSelectorTerm{}), []string{reasonNodeAffinity}},
		{"matchFields NotIn", nodeSpec{name: "n1"}, nil, withNodeAffinity(newPod("p", "", ""), corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"n1"}}}}), []string{reasonNodeAffinity}},
		{"host port 0.0.0.0 against a specific address", nodeSpec{name: "n1"}, []*corev1.Pod{on(withHostPort(newPod("a", "", ""), 80, "", "10.0.0.1"), "n1")},
			withHostPort(newPod("p", "", ""), 80, "", ""), []string{reasonNodePorts}},
		{"every resource short", nodeSpec{name: "n1", cpu: "1", memory: "1Gi", pods: "1", ephemeral: "1Gi"}, []*corev1.Pod{on(newPod("a", "", ""), "n1")},
			withRequest(withRequest(newPod("p", "2", "2Gi"), corev1.ResourceEphemeralStorage, "2Gi"), "example.com/gpu", "1"),
			[]string{reasonTooManyPods, "Insufficient cpu", "Insufficient memory", "Insufficient ephemeral-storage", "Insufficient example.com/gpu"}},
		{"terminating pods still hold resources", nodeSpec{name: "n1", cpu: "1"}, []*corev1.Pod{terminating(on(newPod("a", "1", ""), "n1"))},
			newPod("p", "1", ""), []string{"Insufficient cpu"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapshotOf([]nodeSpec{tc.node}, tc.existing, nil)
			tc.pod.Namespace = testNS
			st := newCycleState(snap, tc.pod, nil)
			s := filter(st, snap.nodes[0])
			var got []string
			if s != nil {
				got = s.reasons
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("reasons %q, want %q", got, want)
			}
		})
	}
}

func terminating(p *corev1.Pod) *corev1.Pod {
	now := metav1.Now()
	p.DeletionTimestamp = &now
	return p
}

// Each score's arithmetic, normalized, per node, against kube's formulas.
func TestScores(t *testing.T) {
	ssd := map[string]string{"disk": "ssd"}
	tests := []struct {
		name     string
		kind     scoreKind
		nodes    []nodeSpec
		existing []*corev1.Pod
		pod      *corev1.Pod
		want     []int64 // per node, in name order; nil: skipped
	}{
		{"least allocated", scoreLeastAllocated, []nodeSpec{{name: "n1"}, {name: "n2"}},
			[]*corev1.Pod{on(newPod("a", "1", "2Gi"), "n1")}, newPod("p", "1", "2Gi"),
			[]int64{50, 75}}, // (4-2)/4 and (8-4)/8; (4-1)/4 and (8-2)/8
		{"least allocated, best effort at the defaults", scoreLeastAllocated, []nodeSpec{{name: "n1"}},
			nil, newPod("p", "", ""), []int64{97}}, // 3900/4000 and (8192-200)/8192 MiB
		{"balanced", scoreBalanced, []nodeSpec{{name: "n1"}, {name: "n2"}},
			[]*corev1.Pod{on(newPod("a", "1", "1Gi"), "n1")}, newPod("p", "1", "1Gi"),
			[]int64{87, 93}}, // 1-|0.5-0.25|/2 and 1-|0.25-0.125|/2
		{"balanced skips best effort", scoreBalanced, []nodeSpec{{name: "n1"}}, nil, newPod("p", "", ""), nil},
		{"PreferNoSchedule taints", scoreTaintToleration, []nodeSpec{
			{name: "n1", taints: []corev1.Taint{taint("a", "1", corev1.TaintEffectPreferNoSchedule), taint("b", "1", corev1.TaintEffectPreferNoSchedule)}},
			{name: "n2", taints: []corev1.Taint{taint("a", "1", corev1.TaintEffectPreferNoSchedule), taint("c", "1", corev1.TaintEffectNoSchedule)}},
			{name: "n3"}}, nil,
			withTolerations(newPod("p", "", ""), corev1.Toleration{Key: "c", Operator: corev1.TolerationOpExists}),
			[]int64{0, 50, 100}},
		{"PreferNoSchedule tolerated", scoreTaintToleration, []nodeSpec{
			{name: "n1", taints: []corev1.Taint{taint("a", "1", corev1.TaintEffectPreferNoSchedule)}}, {name: "n2"}}, nil,
			withTolerations(newPod("p", "", ""), corev1.Toleration{Key: "a", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectPreferNoSchedule}),
			[]int64{100, 100}},
		{"preferred node affinity", scoreNodeAffinity, []nodeSpec{
			{name: "n1", labels: zone("a")}, {name: "n2", labels: ssd}, {name: "n3", labels: map[string]string{zoneKey: "a", "disk": "ssd"}}, {name: "n4"}}, nil,
			withPreferredNodeAffinity(withPreferredNodeAffinity(newPod("p", "", ""), 10, expr(zoneKey, corev1.NodeSelectorOpIn, "a")), 30, expr("disk", corev1.NodeSelectorOpExists)),
			[]int64{25, 75, 100, 0}},
		{"inter-pod preferences both ways", scoreInterPodAffinity, []nodeSpec{{name: "n1"}, {name: "n2"}, {name: "n3"}, {name: "n4"}},
			[]*corev1.Pod{
				on(withLabels(newPod("db", "", ""), "app", "db"), "n1"),
				on(withLabels(newPod("web", "", ""), "app", "web"), "n2"),
				on(withPreferredPodAffinity(newPod("fan", "", ""), 20, podTerm(corev1.LabelHostname, "app", "api"), false), "n3"),
				on(withPodAffinity(newPod("needy", "", ""), podTerm(corev1.LabelHostname, "app", "api")), "n4"),
			},
			withPreferredPodAffinity(withPreferredPodAffinity(withLabels(newPod("p", "", ""), "app", "api"),
				10, podTerm(corev1.LabelHostname, "app", "db"), false), 5, podTerm(corev1.LabelHostname, "app", "web"), true),
			[]int64{60, 0, 100, 24}}, // raw 10, -5, 20, 1 (hard affinity weight 1)
		{"inter-pod nothing to score", scoreInterPodAffinity, []nodeSpec{{name: "n1"}}, nil, newPod("p", "", ""), nil},
		{"ScheduleAnyway spread by zone", scorePodTopologySpread, []nodeSpec{{name: "n1", labels: zone("a")}, {name: "n2", labels: zone("a")}, {name: "n3", labels: zone("b")}},
			[]*corev1.Pod{on(withLabels(newPod("w1", "", ""), "app", "web"), "n1"), on(withLabels(newPod("w2", "", ""), "app", "web"), "n1")},
			withSpread(withLabels(newPod("p", "", ""), "app", "web"), zoneKey, 1, corev1.ScheduleAnyway, "app", "web"),
			[]int64{0, 0, 100}}, // raw round(2*ln 4)=3, 3, 0
		{"spread ignores nodes without the key", scorePodTopologySpread, []nodeSpec{{name: "n1", labels: zone("a")}, {name: "n2"}},
			nil, withSpread(withLabels(newPod("p", "", ""), "app", "web"), zoneKey, 1, corev1.ScheduleAnyway, "app", "web"),
			[]int64{100, 0}},
		{"default spread of an owner's pods by node", scorePodTopologySpread, []nodeSpec{{name: "n1"}, {name: "n2"}},
			[]*corev1.Pod{on(ownedBy(newPod("r1", "", ""), "rs"), "n1"), on(ownedBy(newPod("r2", "", ""), "rs"), "n1"), on(ownedBy(newPod("x", "", ""), "other"), "n2")},
			ownedBy(newPod("p", "", ""), "rs"),
			[]int64{40, 100}}, // raw round(2*ln 4 + 2)=5 and 2: 100*(5+2-5)/5, 100*(5+2-2)/5
		{"no spreading without constraints or owner", scorePodTopologySpread, []nodeSpec{{name: "n1"}}, nil, newPod("p", "", ""), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapshotOf(tc.nodes, tc.existing, nil)
			tc.pod.Namespace = testNS
			st := newCycleState(snap, tc.pod, nil)
			scores, err := testAlgorithm().scores(snap, st, snap.nodes)
			if err != nil {
				t.Fatal(err)
			}
			if got := scores[tc.kind]; !slices.Equal(got, tc.want) {
				t.Fatalf("scores %v, want %v", got, tc.want)
			}
		})
	}
}

// Inter-pod terms with a namespaceSelector match pods in every namespace
// whose labels it selects.
func TestFilter_interPodNamespaceSelector(t *testing.T) {
	db := withLabels(newPod("db", "", ""), "app", "db")
	db.Namespace = "data"
	snap := snapshotOf([]nodeSpec{{name: "n1"}, {name: "n2"}}, []*corev1.Pod{on(db, "n2")},
		map[string]map[string]string{"data": {"team": "x"}, testNS: {}})
	term := podTerm(corev1.LabelHostname, "app", "db")
	term.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}
	pod := withPodAffinity(newPod("p", "", ""), term)
	d, err := testAlgorithm().schedule(snap, pod)
	if err != nil || d.node != "n2" {
		t.Fatalf("decision %+v, %v; want n2", d, err)
	}
	// Without the selector the term means the pod's own namespace.
	pod = withPodAffinity(newPod("q", "", ""), podTerm(corev1.LabelHostname, "app", "db"))
	_, err = testAlgorithm().schedule(snap, pod)
	var fe *FitError
	if !errors.As(err, &fe) || fe.Reasons[reasonPodAffinity] != 2 {
		t.Fatalf("err %v, want 2 pod affinity rejections", err)
	}
}

// minDomains counts missing domains as empty: with one zone of two
// required, the pod may not join a zone that already has maxSkew pods.
func TestFilter_spreadMinDomains(t *testing.T) {
	snap := snapshotOf([]nodeSpec{{name: "n1", labels: zone("a")}},
		[]*corev1.Pod{on(withLabels(newPod("w1", "", ""), "app", "web"), "n1")}, nil)
	pod := withSpread(withLabels(newPod("p", "", ""), "app", "web"), zoneKey, 1, corev1.DoNotSchedule, "app", "web")
	if _, err := testAlgorithm().schedule(snap, pod); err != nil {
		t.Fatalf("without minDomains: %v", err)
	}
	two := int32(2)
	pod.Spec.TopologySpreadConstraints[0].MinDomains = &two
	_, err := testAlgorithm().schedule(snap, pod)
	var fe *FitError
	if !errors.As(err, &fe) || fe.Reasons[reasonSpread] != 1 {
		t.Fatalf("with minDomains 2: %v", err)
	}
}

func TestAlgorithm_numFeasibleNodesToFind(t *testing.T) {
	tests := []struct{ nodes, percentage, want int }{
		{50, 0, 50}, {100, 0, 100}, {1000, 0, 420}, {5000, 0, 500}, {10000, 0, 500}, {6000, 0, 300},
		{5000, 30, 1500}, {5000, 100, 5000}, {200, 10, 100},
	}
	for _, tc := range tests {
		a := &algorithm{percentage: tc.percentage}
		if got := a.numFeasibleNodesToFind(tc.nodes); got != tc.want {
			t.Errorf("%d nodes at %d%%: %d, want %d", tc.nodes, tc.percentage, got, tc.want)
		}
	}
}

// On 5,000 nodes one decision filters about 500 and moves the start on,
// so the next pod looks at other nodes first; equal nodes are picked
// evenly.
func TestAlgorithm_schedule_stopsEarlyAndRotates(t *testing.T) {
	nodes := make([]nodeSpec, 5000)
	for i := range nodes {
		nodes[i] = nodeSpec{name: fmt.Sprintf("n%04d", i)}
	}
	snap := snapshotOf(nodes, nil, nil)
	a := &algorithm{parallelism: DefaultParallelism, rnd: rand.New(rand.NewPCG(1, 2))}
	picked := map[string]bool{}
	for i := range 50 {
		start := a.nextStart
		d, err := a.schedule(snap, newPod(fmt.Sprintf("p%d", i), "100m", "100Mi"))
		if err != nil {
			t.Fatal(err)
		}
		if d.feasible != 500 || d.evaluated < 500 || d.evaluated > 500+DefaultParallelism*chunkSize(5000, DefaultParallelism) {
			t.Fatalf("decision %+v: want 500 feasible of about 500 evaluated", d)
		}
		if a.nextStart != (start+d.evaluated)%5000 {
			t.Fatalf("nextStart %d, want %d", a.nextStart, (start+d.evaluated)%5000)
		}
		picked[d.node] = true
	}
	if len(picked) < 45 {
		t.Fatalf("50 pods on equal nodes picked only %d nodes", len(picked))
	}
}

// A full cluster is searched to the end and every node counted in the
// message.
func TestAlgorithm_schedule_countsEveryNode(t *testing.T) {
	nodes := make([]nodeSpec, 300)
	for i := range nodes {
		nodes[i] = nodeSpec{name: fmt.Sprintf("n%03d", i), cpu: "1"}
		if i%3 == 0 {
			nodes[i].taints = []corev1.Taint{taint("k", "v", corev1.TaintEffectNoSchedule)}
		}
	}
	snap := snapshotOf(nodes, nil, nil)
	_, err := testAlgorithm().schedule(snap, newPod("p", "2", ""))
	const want = "0/300 nodes are available: 100 node(s) had untolerated taint {k: v}, 200 Insufficient cpu."
	if err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q", err, want)
	}
	if _, err := testAlgorithm().schedule(newSnapshot(), newPod("p", "", "")); !errors.Is(err, errNoNodes) {
		t.Fatalf("no nodes: %v", err)
	}
}

func TestParallelize_recoversPanics(t *testing.T) {
	for _, n := range []int{10, 1000} {
		err := parallelize(4, n, func(_, i int) bool {
			if i == n/2 {
				panic("boom")
			}
			return true
		})
		if err == nil {
			t.Fatalf("n=%d: panic not returned", n)
		}
	}
}

// A pod that names its node (a DaemonSet pod) is only filtered against
// that node; the others count as left out by NodeAffinity, as in kube.
func TestAlgorithm_schedule_namedNodes(t *testing.T) {
	nodes := []nodeSpec{{name: "n1"}, {name: "n2", cpu: "1"}, {name: "n3"}, {name: "n4"}, {name: "n5"}}
	snap := snapshotOf(nodes, nil, nil)
	named := func(p *corev1.Pod, values ...string) *corev1.Pod {
		return withNodeAffinity(p, corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: values}}})
	}
	d, err := testAlgorithm().schedule(snap, named(newPod("p", "", ""), "n4"))
	if err != nil || d.node != "n4" || d.evaluated != 1 {
		t.Fatalf("decision %+v, %v; want n4 after 1 node", d, err)
	}
	_, err = testAlgorithm().schedule(snap, named(newPod("p", "2", ""), "n2", "gone"))
	const want = "0/5 nodes are available: 1 Insufficient cpu, 4 node(s) didn't satisfy plugin(s) [NodeAffinity]."
	if err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q", err, want)
	}
	// Two terms whose names do not meet conflict.
	conflict := named(newPod("p", "", ""), "n1")
	conflict.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields = append(
		conflict.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields,
		corev1.NodeSelectorRequirement{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n2"}})
	_, err = testAlgorithm().schedule(snap, conflict)
	if err == nil || err.Error() != "0/5 nodes are available: pod affinity terms conflict." {
		t.Fatalf("conflict: %v", err)
	}
	// A term without names lets every node in.
	mixed := named(newPod("p", "", ""), "n1")
	mixed.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms = append(
		mixed.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms, expr("x", corev1.NodeSelectorOpDoesNotExist))
	if d, err := testAlgorithm().schedule(snap, mixed); err != nil || d.evaluated != 5 {
		t.Fatalf("mixed terms: %+v, %v; want all 5 nodes evaluated", d, err)
	}
}
