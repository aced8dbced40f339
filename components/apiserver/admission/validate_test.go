package admission

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestValidate_validObjects is the "nothing to report" table: realistic
// objects, once defaulted, pass validation, and defaulting them again
// changes nothing.
func TestValidate_validObjects(t *testing.T) {
	tests := []struct {
		name       string
		obj        runtime.Object
		namespaced bool
	}{
		{"pod", validPod(), true},
		{"deployment", validDeployment(), true},
		{"replicaset", validReplicaSet(), true},
		{"daemonset", validDaemonSet(), true},
		{"statefulset", validStatefulSet(), true},
		{"replicationcontroller", validReplicationController(), true},
		{"job", validJob(), true},
		{"job without uid", func() runtime.Object { j := validJob(); j.UID = ""; return j }(), true},
		{"cronjob", validCronJob(), true},
		{"service", validService(), true},
		{"configmap", validConfigMap(), true},
		{"secret", validSecret(), true},
		{"ingress", validIngress(), true},
		{"persistentvolumeclaim", validPVC(), true},
		{"persistentvolume", validPV(), false},
		{"namespace", validNamespace(), false},
		{"node", validNode(), false},
		{"serviceaccount", &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: "default"}}, true},
		{"role", validRole(), true},
		{"clusterrole", validClusterRole(), false},
		{"rolebinding", validRoleBinding(), true},
		{"clusterrolebinding", validClusterRoleBinding(), false},
		{"event", validEvent(), true},
		{"endpoints", validEndpoints(), true},
		{"podtemplate", &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Name: "tmpl", Namespace: "default"}, Template: podTemplate(nil)}, true},
		{"unknown type", &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "thing", Namespace: "default"}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			Default(tc.obj)
			checkErrs(t, Validate(tc.obj, tc.namespaced))
			again := tc.obj.DeepCopyObject()
			Default(again)
			if !semanticEqual(again, tc.obj) {
				t.Errorf("second Default changed the object:\n%#v\n%#v", tc.obj, again)
			}
		})
	}
}
