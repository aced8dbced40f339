package nodelifecycle

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func secs(s int64) *int64 { return &s }

func TestEvictionTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fallback := t0.Add(time.Hour)
	ta := metav1.NewTime(t0) // whole seconds, as the API stores it
	s0 := t0.Add(time.Second)
	unreachable := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &ta}
	notReady := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute, TimeAdded: &ta}
	other := corev1.Taint{Key: "example.com/x", Value: "v", Effect: corev1.TaintEffectNoExecute}
	tolUnreach := func(s *int64) corev1.Toleration {
		return corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: s}
	}
	for _, tc := range []struct {
		name   string
		taints []corev1.Taint
		tols   []corev1.Toleration
		want   time.Time
		evict  bool
	}{
		{"no taints", nil, nil, time.Time{}, false},
		{"untolerated", []corev1.Taint{unreachable}, nil, s0, true},
		{"forever", []corev1.Taint{unreachable}, []corev1.Toleration{tolUnreach(nil)}, time.Time{}, false},
		{"1s", []corev1.Taint{unreachable}, []corev1.Toleration{tolUnreach(secs(1))}, s0.Add(time.Second), true},
		{"shortest of matching", []corev1.Taint{unreachable}, []corev1.Toleration{tolUnreach(nil), tolUnreach(secs(300)), tolUnreach(secs(5))}, s0.Add(5 * time.Second), true},
		{"negative is zero", []corev1.Taint{unreachable}, []corev1.Toleration{tolUnreach(secs(-3))}, s0, true},
		{"other taint untolerated", []corev1.Taint{unreachable, notReady}, []corev1.Toleration{tolUnreach(nil)}, s0, true},
		{"tolerate everything", []corev1.Taint{unreachable, other}, []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, time.Time{}, false},
		{"value mismatch, no timeAdded", []corev1.Taint{other}, []corev1.Toleration{{Key: "example.com/x", Value: "w"}}, fallback, true},
		{"value match", []corev1.Taint{other}, []corev1.Toleration{{Key: "example.com/x", Value: "v", TolerationSeconds: secs(2)}}, fallback.Add(2 * time.Second), true},
		{"wrong effect", []corev1.Taint{unreachable}, []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, s0, true},
		{"sub-second timeAdded kept", []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoExecute, TimeAdded: &metav1.Time{Time: t0.Add(time.Millisecond)}}}, nil, t0.Add(time.Millisecond), true},
	} {
		got, evict := evictionTime(tc.taints, tc.tols, fallback)
		if evict != tc.evict || !got.Equal(tc.want) {
			t.Errorf("%s: got %v %v, want %v %v", tc.name, got, evict, tc.want, tc.evict)
		}
	}
}
