package reconcile

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func obj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestAssess(t *testing.T) {
	tests := []struct {
		name      string
		y         string
		endpoints bool
		want      string
		msg       string
	}{
		{"deployment available", `{apiVersion: apps/v1, kind: Deployment, metadata: {name: w, namespace: n, generation: 2}, spec: {replicas: 2},
			status: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2}}`, false, HealthHealthy, ""},
		{"deployment not observed", `{apiVersion: apps/v1, kind: Deployment, metadata: {name: w, namespace: n, generation: 3}, spec: {replicas: 2},
			status: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2}}`, false, HealthProgressing, "observe the new generation"},
		{"deployment rolling", `{apiVersion: apps/v1, kind: Deployment, metadata: {name: w, namespace: n, generation: 1}, spec: {replicas: 3},
			status: {observedGeneration: 1, replicas: 3, updatedReplicas: 3, availableReplicas: 1}}`, false, HealthProgressing, "1 of 3 replicas available"},
		{"deployment deadline", `{apiVersion: apps/v1, kind: Deployment, metadata: {name: w, namespace: n, generation: 1}, spec: {replicas: 1},
			status: {observedGeneration: 1, conditions: [{type: Progressing, status: "False", reason: ProgressDeadlineExceeded, message: "too slow"}]}}`, false, HealthDegraded, "progress deadline exceeded"},
		{"pod crashloop", `{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: n}, status: {phase: Running,
			containerStatuses: [{name: c, state: {waiting: {reason: CrashLoopBackOff, message: "back-off 10s"}}}]}}`, false, HealthDegraded, "CrashLoopBackOff"},
		{"pod ready", `{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: n}, status: {phase: Running, conditions: [{type: Ready, status: "True"}]}}`, false, HealthHealthy, ""},
		{"job failed", `{apiVersion: batch/v1, kind: Job, metadata: {name: j, namespace: n}, status: {conditions: [{type: Failed, status: "True", message: "BackoffLimitExceeded"}]}}`, false, HealthDegraded, "failed"},
		{"service without endpoints", `{apiVersion: v1, kind: Service, metadata: {name: s, namespace: n}, spec: {selector: {app: a}}}`, false, HealthProgressing, "no ready endpoints"},
		{"service with endpoints", `{apiVersion: v1, kind: Service, metadata: {name: s, namespace: n}, spec: {selector: {app: a}}}`, true, HealthHealthy, ""},
		{"configmap", `{apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: n}}`, false, HealthHealthy, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := assess(obj(t, tc.y), func(string, string) bool { return tc.endpoints })
			if h.Status != tc.want || !strings.Contains(h.Message, tc.msg) {
				t.Fatalf("got %+v, want %s containing %q", h, tc.want, tc.msg)
			}
		})
	}
}
