package apiserver_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/testenv"
)

// A new pod tolerates the not-ready and unreachable NoExecute taints for
// the configured seconds (kube's DefaultTolerationSeconds admission), and
// keeps its own toleration when it has one.
func TestCreate_defaultTolerationSeconds(t *testing.T) {
	tests := []struct {
		name                  string
		opts                  testenv.Options
		own                   []corev1.Toleration
		notReady, unreachable int64
	}{
		{name: "defaults", notReady: 300, unreachable: 300},
		{name: "configured", opts: testenv.Options{DefaultNotReadyTolerationSeconds: 20, DefaultUnreachableTolerationSeconds: 30}, notReady: 20, unreachable: 30},
		{
			name: "the pod's own kept",
			opts: testenv.Options{DefaultUnreachableTolerationSeconds: 30},
			own: []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
				TolerationSeconds: new(int64(5))}},
			notReady: 300, unreachable: 5,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.Start(t, tc.opts)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}, Tolerations: tc.own}}
			got, err := env.Clientset.CoreV1().Pods("default").Create(t.Context(), pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			secs := map[string]int64{}
			for _, tol := range got.Spec.Tolerations {
				if tol.Effect == corev1.TaintEffectNoExecute && tol.TolerationSeconds != nil {
					if _, dup := secs[tol.Key]; dup {
						t.Errorf("two tolerations of %s: %+v", tol.Key, got.Spec.Tolerations)
					}
					secs[tol.Key] = *tol.TolerationSeconds
				}
			}
			if secs[corev1.TaintNodeNotReady] != tc.notReady || secs[corev1.TaintNodeUnreachable] != tc.unreachable {
				t.Errorf("tolerationSeconds = %v, want not-ready %d and unreachable %d", secs, tc.notReady, tc.unreachable)
			}
		})
	}
}
