package admission

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// updateCase updates a stored copy of a fixture with mutate.
type updateCase struct {
	name       string
	old        func() runtime.Object
	mutate     func(runtime.Object)
	namespaced bool
	want       []wantErr
}

// stored returns a fixture as the store would hold it: defaulted, with the
// fields the server sets on create.
func stored[T runtime.Object](fixture func() T) func() runtime.Object {
	return func() runtime.Object {
		obj := fixture()
		Default(obj)
		m, _ := meta.Accessor(obj)
		if m.GetUID() == "" {
			m.SetUID(types.UID("4f9d1d2e-97c3-4d6e-8f1a-5b0c2e7d9a10"))
		}
		m.SetResourceVersion("17")
		m.SetCreationTimestamp(metav1.NewTime(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)))
		m.SetGeneration(1)
		return obj
	}
}

// change adapts a typed mutation to updateCase.mutate.
func change[T runtime.Object](mutate func(T)) func(runtime.Object) {
	return func(o runtime.Object) { mutate(o.(T)) }
}

func runUpdateCases(t *testing.T, tests []updateCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := tc.old()
			obj := old.DeepCopyObject()
			tc.mutate(obj)
			Default(obj)
			checkErrs(t, ValidateUpdate(obj, old, tc.namespaced), tc.want...)
		})
	}
}

func TestValidateUpdate_metadata(t *testing.T) {
	runUpdateCases(t, []updateCase{
		{"no change", stored(validConfigMap), change(func(*corev1.ConfigMap) {}), true, nil},
		{"labels may change", stored(validConfigMap), change(func(c *corev1.ConfigMap) { c.Labels = map[string]string{"v": "2"} }), true, nil},
		{"name immutable", stored(validConfigMap), change(func(c *corev1.ConfigMap) { c.Name = "other" }), true,
			[]wantErr{invalid("metadata.name")}},
		{"namespace immutable", stored(validConfigMap), change(func(c *corev1.ConfigMap) { c.Namespace = "other" }), true,
			[]wantErr{invalid("metadata.namespace")}},
		{"uid immutable", stored(validConfigMap), change(func(c *corev1.ConfigMap) { c.UID = "other" }), true,
			[]wantErr{invalid("metadata.uid")}},
		{"creationTimestamp immutable", stored(validConfigMap), change(func(c *corev1.ConfigMap) { c.CreationTimestamp = metav1.Now() }), true,
			[]wantErr{invalid("metadata.creationTimestamp")}},
		{"resourceVersion required", stored(validConfigMap), change(func(c *corev1.ConfigMap) { c.ResourceVersion = "" }), true,
			[]wantErr{invalid("metadata.resourceVersion")}},
		{"generation may not decrease", stored(validConfigMap), change(func(c *corev1.ConfigMap) { c.Generation = 0 }), true,
			[]wantErr{invalid("metadata.generation")}},
		{"new object is validated too", stored(validConfigMap), change(func(c *corev1.ConfigMap) { c.Data["bad key"] = "" }), true,
			[]wantErr{invalid("data[bad key]")}},
		{"namespace labels", stored(validNamespace), change(func(n *corev1.Namespace) { n.Labels["team"] = "a" }), false, nil},
	})
}

func TestValidateUpdate_mismatch(t *testing.T) {
	tests := []struct {
		name     string
		obj, old runtime.Object
	}{
		{"different types", validPod(), validDeployment()},
		{"nil new", nil, validPod()},
		{"nil old", validPod(), nil},
		{"typed nil old", validPod(), (*corev1.Pod)(nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErrs(t, ValidateUpdate(tc.obj, tc.old, true), wantErr{"InternalError", "<nil>"})
		})
	}
}

func TestValidateUpdate_Pod(t *testing.T) {
	old := func() runtime.Object {
		p := stored(validPod)().(*corev1.Pod)
		p.Spec.ActiveDeadlineSeconds = new(int64(600))
		p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "web", Effect: corev1.TaintEffectNoSchedule}}
		return p
	}
	runUpdateCases(t, []updateCase{
		{"image", old, change(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.28" }), true, nil},
		{"init image", old, change(func(p *corev1.Pod) { p.Spec.InitContainers[0].Image = "busybox:1.37" }), true, nil},
		{"labels and annotations", old, change(func(p *corev1.Pod) { p.Labels["v"] = "2"; p.Annotations = map[string]string{"a": "b"} }), true, nil},
		{"activeDeadlineSeconds lowered", old, change(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = new(int64(60)) }), true, nil},
		{"activeDeadlineSeconds raised", old, change(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = new(int64(6000)) }), true,
			[]wantErr{invalid("spec.activeDeadlineSeconds")}},
		{"activeDeadlineSeconds unset", old, change(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = nil }), true,
			[]wantErr{invalid("spec.activeDeadlineSeconds")}},
		{"toleration added", old, change(func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: new(int64(30))})
		}), true, nil},
		{"toleration removed", old, change(func(p *corev1.Pod) { p.Spec.Tolerations = nil }), true,
			[]wantErr{forbidden("spec.tolerations")}},
		{"terminationGracePeriodSeconds", old, change(func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = new(int64(5)) }), true, nil},
		{"nodeName", old, change(func(p *corev1.Pod) { p.Spec.NodeName = "node-2" }), true, []wantErr{forbidden("spec")}},
		{"container port", old, change(func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 8080 }), true,
			[]wantErr{forbidden("spec")}},
		{"container env", old, change(func(p *corev1.Pod) { p.Spec.Containers[0].Env = nil }), true, []wantErr{forbidden("spec")}},
		{"container added", old, change(func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "envoy:1.30"})
		}), true, []wantErr{forbidden("spec.containers")}},
		{"image cleared", old, change(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }), true,
			[]wantErr{required("spec.containers[0].image")}},
	})
}

func TestValidateUpdate_workloads(t *testing.T) {
	runUpdateCases(t, []updateCase{
		{"deployment scale and new template", stored(validDeployment), change(func(d *appsv1.Deployment) {
			d.Spec.Replicas = new(int32(10))
			d.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
			d.Spec.Template.Labels["version"] = "2"
		}), true, nil},
		{"deployment selector immutable", stored(validDeployment), change(func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchLabels["tier"] = "frontend"
		}), true, []wantErr{invalid("spec.selector")}},
		{"replicaset selector immutable", stored(validReplicaSet), change(func(rs *appsv1.ReplicaSet) {
			rs.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}}
		}), true, []wantErr{invalid("spec.selector")}},
		{"daemonset selector immutable", stored(validDaemonSet), change(func(ds *appsv1.DaemonSet) {
			ds.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "node-agent"}}
		}), true, []wantErr{invalid("spec.selector")}},
		{"statefulset scale, template and strategy", stored(validStatefulSet), change(func(ss *appsv1.StatefulSet) {
			ss.Spec.Replicas = new(int32(5))
			ss.Spec.Template.Spec.Containers[0].Image = "postgres:17"
			ss.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(2))
			ss.Spec.MinReadySeconds = 10
		}), true, nil},
		{"statefulset selector immutable", stored(validStatefulSet), change(func(ss *appsv1.StatefulSet) {
			ss.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}
		}), true, []wantErr{invalid("spec.selector")}},
		{"statefulset serviceName immutable", stored(validStatefulSet), change(func(ss *appsv1.StatefulSet) { ss.Spec.ServiceName = "db-headless" }), true,
			[]wantErr{forbidden("spec")}},
		{"statefulset claim templates immutable", stored(validStatefulSet), change(func(ss *appsv1.StatefulSet) {
			ss.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
		}), true, []wantErr{forbidden("spec")}},
		{"job parallelism and suspend", stored(validJob), change(func(j *batchv1.Job) {
			j.Spec.Parallelism = new(int32(0))
			j.Spec.Suspend = new(true)
		}), true, nil},
		{"job selector immutable", stored(validJob), change(func(j *batchv1.Job) {
			j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.JobNameLabel: "migrate"}}
		}), true, []wantErr{invalid("spec.selector")}},
		{"job template immutable", stored(validJob), change(func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "migrate:v3" }), true,
			[]wantErr{invalid("spec.template")}},
		{"job completions immutable", stored(validJob), change(func(j *batchv1.Job) { j.Spec.Completions = new(int32(3)) }), true,
			[]wantErr{invalid("spec.completions")}},
		{"job completionMode immutable", stored(validJob), change(func(j *batchv1.Job) { j.Spec.CompletionMode = new(batchv1.IndexedCompletion) }), true,
			[]wantErr{invalid("spec.completionMode")}},
		{"cronjob schedule and template", stored(validCronJob), change(func(cj *batchv1.CronJob) {
			cj.Spec.Schedule = "@daily"
			cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image = "migrate:v3"
		}), true, nil},
		{"replicationcontroller selector may change", stored(validReplicationController), change(func(rc *corev1.ReplicationController) {
			rc.Spec.Selector = map[string]string{"app": "legacy", "v": "2"}
			rc.Spec.Template.Labels["v"] = "2"
		}), true, nil},
	})
}

func TestValidateUpdate_Service(t *testing.T) {
	allocated := func() runtime.Object {
		s := stored(validService)().(*corev1.Service)
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.20", []string{"10.96.0.20"}
		return s
	}
	runUpdateCases(t, []updateCase{
		{"ports may change", allocated, change(func(s *corev1.Service) { s.Spec.Ports = s.Spec.Ports[:1] }), true, nil},
		{"clusterIP immutable", allocated, change(func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.21", []string{"10.96.0.21"}
		}), true, []wantErr{invalid("spec.clusterIP"), invalid("spec.clusterIPs[0]")}},
		{"clusterIP may not be unset", allocated, change(func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil }), true,
			[]wantErr{invalid("spec.clusterIP"), invalid("spec.clusterIPs[0]")}},
		{"clusterIP may be set once", stored(validService), change(func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.22", []string{"10.96.0.22"}
		}), true, nil},
		{"to ExternalName drops the clusterIP", allocated, change(func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "web.example.com"}
		}), true, nil},
	})
}

func TestValidateUpdate_config(t *testing.T) {
	immutableCM := func() runtime.Object {
		c := stored(validConfigMap)().(*corev1.ConfigMap)
		c.Immutable = new(true)
		return c
	}
	immutableSecret := func() runtime.Object {
		s := stored(validSecret)().(*corev1.Secret)
		s.Immutable = new(true)
		return s
	}
	runUpdateCases(t, []updateCase{
		{"configmap data may change", stored(validConfigMap), change(func(c *corev1.ConfigMap) { c.Data["LOG_LEVEL"] = "debug" }), true, nil},
		{"configmap may become immutable", stored(validConfigMap), change(func(c *corev1.ConfigMap) { c.Immutable = new(true) }), true, nil},
		{"immutable configmap data", immutableCM, change(func(c *corev1.ConfigMap) { c.Data["LOG_LEVEL"] = "debug" }), true,
			[]wantErr{forbidden("data")}},
		{"immutable configmap binaryData", immutableCM, change(func(c *corev1.ConfigMap) { c.BinaryData = nil }), true,
			[]wantErr{forbidden("binaryData")}},
		{"immutable configmap stays immutable", immutableCM, change(func(c *corev1.ConfigMap) { c.Immutable = nil }), true,
			[]wantErr{forbidden("immutable")}},
		{"immutable configmap labels", immutableCM, change(func(c *corev1.ConfigMap) { c.Labels = map[string]string{"a": "b"} }), true, nil},
		{"secret data may change", stored(validSecret), change(func(s *corev1.Secret) { s.Data[corev1.TLSCertKey] = []byte("new") }), true, nil},
		{"secret type immutable", stored(validSecret), change(func(s *corev1.Secret) { s.Type = corev1.SecretTypeOpaque }), true,
			[]wantErr{invalid("type")}},
		{"immutable secret data", immutableSecret, change(func(s *corev1.Secret) { s.Data[corev1.TLSCertKey] = []byte("new") }), true,
			[]wantErr{forbidden("data")}},
		{"immutable secret stays immutable", immutableSecret, change(func(s *corev1.Secret) { s.Immutable = new(false) }), true,
			[]wantErr{forbidden("immutable")}},
	})
}

func TestValidateUpdate_storageAndCluster(t *testing.T) {
	runUpdateCases(t, []updateCase{
		{"pvc grows", stored(validPVC), change(func(p *corev1.PersistentVolumeClaim) {
			p.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("10Gi")
		}), true, nil},
		{"pvc shrinks", stored(validPVC), change(func(p *corev1.PersistentVolumeClaim) {
			p.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("1Gi")
		}), true, []wantErr{forbidden("spec.resources.requests.storage")}},
		{"pvc access modes immutable", stored(validPVC), change(func(p *corev1.PersistentVolumeClaim) {
			p.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
		}), true, []wantErr{forbidden("spec")}},
		{"pvc bound once", stored(validPVC), change(func(p *corev1.PersistentVolumeClaim) { p.Spec.VolumeName = "pv-1" }), true, nil},
		{"pvc rebinding", func() runtime.Object {
			p := stored(validPVC)().(*corev1.PersistentVolumeClaim)
			p.Spec.VolumeName = "pv-1"
			return p
		}, change(func(p *corev1.PersistentVolumeClaim) { p.Spec.VolumeName = "pv-2" }), true, []wantErr{forbidden("spec")}},
		{"rolebinding subjects may change", stored(validRoleBinding), change(func(b *rbacv1.RoleBinding) { b.Subjects = b.Subjects[:1] }), true, nil},
		{"rolebinding roleRef immutable", stored(validRoleBinding), change(func(b *rbacv1.RoleBinding) { b.RoleRef.Name = "admin" }), true,
			[]wantErr{invalid("roleRef")}},
		{"clusterrolebinding roleRef immutable", stored(validClusterRoleBinding), change(func(b *rbacv1.ClusterRoleBinding) { b.RoleRef.Name = "cluster-admin" }), false,
			[]wantErr{invalid("roleRef")}},
		{"node podCIDR set once", func() runtime.Object {
			n := stored(validNode)().(*corev1.Node)
			n.Spec.PodCIDR, n.Spec.PodCIDRs = "", nil
			return n
		}, change(func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.7.0/24"} }), false, nil},
		{"node podCIDR immutable", stored(validNode), change(func(n *corev1.Node) {
			n.Spec.PodCIDR, n.Spec.PodCIDRs = "10.244.2.0/24", []string{"10.244.2.0/24"}
		}), false, []wantErr{forbidden("spec.podCIDRs")}},
		{"node providerID immutable", func() runtime.Object {
			n := stored(validNode)().(*corev1.Node)
			n.Spec.ProviderID = "kiln://node-1"
			return n
		}, change(func(n *corev1.Node) { n.Spec.ProviderID = "kiln://node-2" }), false, []wantErr{forbidden("spec.providerID")}},
		{"node taints may change", stored(validNode), change(func(n *corev1.Node) { n.Spec.Taints = nil; n.Spec.Unschedulable = true }), false, nil},
	})
}
