package daemonset

import (
	"context"
	"errors"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func dsWith(spec corev1.PodSpec) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "ds", Namespace: "ns", Generation: 3},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}}, Spec: spec}}}
}

func affinity(reqs ...corev1.NodeSelectorRequirement) *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: reqs}}}}}
}

func TestNodeShouldRunDaemonPod(t *testing.T) {
	now := metav1.Now()
	node := func(labels map[string]string, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	deleting := node(nil)
	deleting.DeletionTimestamp = &now
	zone := map[string]string{"zone": "a"}
	for _, tc := range []struct {
		name               string
		node               *corev1.Node
		spec               corev1.PodSpec
		wantRun, wantStays bool
	}{
		{"plain", node(nil), corev1.PodSpec{}, true, true},
		{"deleting", deleting, corev1.PodSpec{}, false, false},
		{"nodeSelector match", node(zone), corev1.PodSpec{NodeSelector: zone}, true, true},
		{"nodeSelector mismatch", node(nil), corev1.PodSpec{NodeSelector: zone}, false, false},
		{"template nodeName other", node(nil), corev1.PodSpec{NodeName: "m"}, false, false},
		{"In", node(zone), corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorRequirement{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}})}, true, true},
		{"In mismatch", node(zone), corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorRequirement{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}})}, false, false},
		{"NotIn", node(zone), corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorRequirement{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"a"}})}, false, false},
		{"Exists", node(zone), corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorRequirement{Key: "zone", Operator: corev1.NodeSelectorOpExists})}, true, true},
		{"DoesNotExist", node(zone), corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorRequirement{Key: "zone", Operator: corev1.NodeSelectorOpDoesNotExist})}, false, false},
		{"empty term", node(nil), corev1.PodSpec{Affinity: affinity()}, false, false},
		{"NoSchedule untolerated", node(nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule}), corev1.PodSpec{}, false, true},
		{"NoExecute untolerated", node(nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoExecute}), corev1.PodSpec{}, false, false},
		{"PreferNoSchedule", node(nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectPreferNoSchedule}), corev1.PodSpec{}, true, true},
		{"tolerated Equal", node(nil, corev1.Taint{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}),
			corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "k", Value: "v"}}}, true, true},
		{"wrong value", node(nil, corev1.Taint{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}),
			corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "k", Value: "w"}}}, false, true},
		{"default not-ready", node(nil, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}), corev1.PodSpec{}, true, true},
		{"default unreachable", node(nil, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}), corev1.PodSpec{}, true, true},
		{"default unschedulable", node(nil, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}), corev1.PodSpec{}, true, true},
		{"network-unavailable", node(nil, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}), corev1.PodSpec{}, false, true},
		{"network-unavailable hostNetwork", node(nil, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}), corev1.PodSpec{HostNetwork: true}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, stays := nodeShouldRunDaemonPod(tc.node, dsWith(tc.spec))
			if run != tc.wantRun || stays != tc.wantStays {
				t.Errorf("shouldRun, shouldContinueRunning = %v, %v; want %v, %v", run, stays, tc.wantRun, tc.wantStays)
			}
		})
	}
}

func TestNewPod(t *testing.T) {
	ds := dsWith(corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorRequirement{Key: "zone", Operator: corev1.NodeSelectorOpExists})})
	p := newPod(ds, "n1", "h")
	if p.Spec.NodeName != "n1" || p.Labels[LabelRevisionHash] != "h" || p.Labels[LabelTemplateGeneration] != "3" || p.Labels["app"] != "x" {
		t.Errorf("pod = %+v", p.ObjectMeta)
	}
	terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 1 || terms[0].MatchFields[0].Values[0] != "n1" {
		t.Errorf("terms = %+v", terms)
	}
	if ds.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields != nil {
		t.Error("template changed")
	}
	if ds.Spec.Template.Labels[LabelRevisionHash] != "" {
		t.Error("template labels changed")
	}
	if podNodeName(&corev1.Pod{Spec: corev1.PodSpec{Affinity: p.Spec.Affinity}}) != "n1" {
		t.Error("podNodeName does not read the affinity")
	}
}

func TestTemplateHash(t *testing.T) {
	a, b := dsWith(corev1.PodSpec{}), dsWith(corev1.PodSpec{})
	if templateHash(a) != templateHash(b) {
		t.Error("equal templates, different hashes")
	}
	b.Spec.Template.Annotations = map[string]string{"v": "2"}
	if templateHash(a) == templateHash(b) {
		t.Error("different templates, equal hashes")
	}
	c := dsWith(corev1.PodSpec{})
	c.Status.CollisionCount = new(int32(1))
	if templateHash(a) == templateHash(c) {
		t.Error("collisionCount ignored")
	}
}

func TestRollingUpdateBudget(t *testing.T) {
	ds := dsWith(corev1.PodSpec{})
	hash := templateHash(ds)
	now := time.Now()
	ready := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	var nodes []*corev1.Node
	nodeToPods := map[string][]*corev1.Pod{}
	for i, h := range []string{"old", "old", "old", "new-unready", "old-unready"} {
		name := string(rune('a' + i))
		nodes = append(nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p" + name, Labels: map[string]string{LabelRevisionHash: "x"}}}
		switch h {
		case "old":
			p.Status.Conditions = ready
		case "new-unready":
			p.Labels[LabelRevisionHash] = hash
		}
		nodeToPods[name] = []*corev1.Pod{p}
	}
	// maxUnavailable 1 (the default) is used up by d (new, not ready):
	// only e, an old Pod already unavailable, is replaced.
	del := rollingUpdate(ds, nodes, nodeToPods, hash, now)
	if len(del) != 1 || del[0].Name != "pe" {
		t.Errorf("deleted %v, want [pe]", names(del))
	}
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: new(intstrFromString("60%"))}
	// 60% of 5 rounds up to 3: d and e use 2, one more old Pod goes.
	del = rollingUpdate(ds, nodes, nodeToPods, hash, now)
	if len(del) != 2 || del[0].Name != "pe" || del[1].Name != "pa" {
		t.Errorf("deleted %v, want [pe pa]", names(del))
	}
}

func names(ps []*corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func newTestController(t *testing.T) *Controller {
	t.Helper()
	cs := fake.NewClientset()
	c, err := New(Config{Client: cs, Informers: informers.NewSharedInformerFactory(cs, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNew_validates(t *testing.T) {
	cs := fake.NewClientset()
	f := informers.NewSharedInformerFactory(cs, 0)
	for _, cfg := range []Config{{Informers: f}, {Client: cs}, {Client: cs, Informers: f, Workers: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}

func TestRun_twice(t *testing.T) {
	c := newTestController(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// The first call has started once a second is refused.
	for !c.guard.Started() {
		time.Sleep(time.Millisecond)
	}
	if err := c.Run(ctx); !errors.Is(err, ErrRunTwice) {
		t.Errorf("second Run = %v, want ErrRunTwice", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func intstrFromString(s string) intstr.IntOrString { return intstr.FromString(s) }
