package printers

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	twoContainers = corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "web", Image: "nginx:1.27"}, {Name: "log", Image: "busybox:1.36"},
	}}}
	webSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
)

func TestRow_deployments(t *testing.T) {
	runRows(t, "apps", "deployments", []rowCase{
		{
			name: "2 of 3 ready",
			obj: &appsv1.Deployment{
				ObjectMeta: objMeta("web"),
				Spec:       appsv1.DeploymentSpec{Replicas: ptr(int32(3)), Selector: webSelector, Template: twoContainers},
				Status:     appsv1.DeploymentStatus{Replicas: 3, ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2},
			},
			want: []interface{}{"web", "2/3", int64(3), int64(2), "5m", "web,log", "nginx:1.27,busybox:1.36", "app=web"},
		},
		{
			name: "undefaulted replicas, no selector",
			obj:  &appsv1.Deployment{ObjectMeta: objMeta("web")},
			want: []interface{}{"web", "0/1", int64(0), int64(0), "5m", "", "", ""},
		},
		{
			name: "invalid selector",
			obj: &appsv1.Deployment{ObjectMeta: objMeta("web"), Spec: appsv1.DeploymentSpec{
				Replicas: ptr(int32(0)),
				Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus"}}},
			}},
			want: []interface{}{"web", "0/0", int64(0), int64(0), "5m", "", "", "<invalid>"},
		},
	})
}

func TestRow_replicaSets(t *testing.T) {
	runRows(t, "apps", "replicasets", []rowCase{
		{
			name: "scaling up",
			obj: &appsv1.ReplicaSet{
				ObjectMeta: objMeta("web-7d4b9"),
				Spec:       appsv1.ReplicaSetSpec{Replicas: ptr(int32(3)), Selector: webSelector, Template: twoContainers},
				Status:     appsv1.ReplicaSetStatus{Replicas: 2, ReadyReplicas: 1},
			},
			want: []interface{}{"web-7d4b9", int64(3), int64(2), int64(1), "5m", "web,log", "nginx:1.27,busybox:1.36", "app=web"},
		},
		{
			name: "empty selector",
			obj:  &appsv1.ReplicaSet{ObjectMeta: objMeta("web-7d4b9")},
			want: []interface{}{"web-7d4b9", int64(1), int64(0), int64(0), "5m", "", "", "<none>"},
		},
	})
}

func TestRow_daemonSets(t *testing.T) {
	tmpl := twoContainers
	tmpl.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	runRows(t, "apps", "daemonsets", []rowCase{
		{
			name: "rolling",
			obj: &appsv1.DaemonSet{
				ObjectMeta: objMeta("agent"),
				Spec:       appsv1.DaemonSetSpec{Selector: webSelector, Template: tmpl},
				Status: appsv1.DaemonSetStatus{
					DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 2, UpdatedNumberScheduled: 1, NumberAvailable: 2,
				},
			},
			want: []interface{}{"agent", int64(3), int64(3), int64(2), int64(1), int64(2), "kubernetes.io/os=linux", "5m",
				"web,log", "nginx:1.27,busybox:1.36", "app=web"},
		},
	})
}

func TestRow_statefulSets(t *testing.T) {
	runRows(t, "apps", "statefulsets", []rowCase{
		{
			name: "1 of 2 ready",
			obj: &appsv1.StatefulSet{
				ObjectMeta: objMeta("db"),
				Spec:       appsv1.StatefulSetSpec{Replicas: ptr(int32(2)), Template: twoContainers},
				Status:     appsv1.StatefulSetStatus{ReadyReplicas: 1},
			},
			want: []interface{}{"db", "1/2", "5m", "web,log", "nginx:1.27,busybox:1.36"},
		},
	})
}
