package replicaset

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodsToDelete_order(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type podOpt func(*corev1.Pod)
	pod := func(name string, opts ...podOpt) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0)},
			Spec:       corev1.PodSpec{NodeName: "n1"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		}
		for _, o := range opts {
			o(p)
		}
		return p
	}
	node := func(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
	phase := func(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }
	readySince := func(d time.Duration) podOpt {
		return func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(d))}}
		}
	}
	created := func(d time.Duration) podOpt {
		return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t0.Add(d)) }
	}
	restarts := func(n int32) podOpt {
		return func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: n}}
		}
	}
	cost := func(c string) podOpt {
		return func(p *corev1.Pod) { p.Annotations = map[string]string{annotationDeletionCost: c} }
	}

	tests := []struct {
		name string
		pods []*corev1.Pod // least useful first
	}{
		{"unscheduled before scheduled", []*corev1.Pod{pod("a", node(""), phase(corev1.PodPending)), pod("b", phase(corev1.PodPending))}},
		{"pending before unknown before running", []*corev1.Pod{pod("a", phase(corev1.PodPending)), pod("b", phase(corev1.PodUnknown)), pod("c")}},
		{"not ready before ready", []*corev1.Pod{pod("a", created(-time.Hour)), pod("b", readySince(0))}},
		{"lower deletion cost first", []*corev1.Pod{pod("a", readySince(-time.Hour), cost("-5")), pod("b", readySince(0)), pod("c", readySince(0), cost("10"))}},
		{"crowded node first", []*corev1.Pod{pod("a", readySince(-time.Hour), created(time.Minute)), pod("b", readySince(-time.Hour)), pod("c", node("n2"), readySince(0))}},
		{"ready more recently first", []*corev1.Pod{pod("a", readySince(0)), pod("b", readySince(-time.Minute)), pod("c", readySince(-time.Hour))}},
		{"more restarts first", []*corev1.Pod{pod("a", readySince(0), restarts(3)), pod("b", readySince(0), restarts(1)), pod("c", readySince(0))}},
		{"created more recently first", []*corev1.Pod{pod("a", created(time.Minute)), pod("b"), pod("c", created(-time.Minute))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, p := range tc.pods {
				want = append(want, p.Name)
			}
			for _, perm := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}} {
				var in []*corev1.Pod
				for _, i := range perm {
					if i < len(tc.pods) {
						in = append(in, tc.pods[i])
					}
				}
				var got []string
				for _, p := range podsToDelete(in, len(in)-1) {
					got = append(got, p.Name)
				}
				if !slices.Equal(got, want[:len(want)-1]) {
					t.Errorf("from %v: deleted %v, want %v", perm, got, want[:len(want)-1])
				}
			}
		})
	}
}
