package admission

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// miscCase validates a valid fixture after mutating it.
type miscCase struct {
	name       string
	obj        func() runtime.Object
	namespaced bool
	want       []wantErr
}

func runMiscCases(t *testing.T, tests []miscCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj()
			checkErrs(t, Validate(obj, tc.namespaced), tc.want...)
		})
	}
}

// with defaults a fixture, then mutates it.
func with[T runtime.Object](fixture func() T, mutate func(T)) func() runtime.Object {
	return func() runtime.Object {
		obj := fixture()
		Default(obj)
		mutate(obj)
		return obj
	}
}

func TestValidate_objectMeta(t *testing.T) {
	runMiscCases(t, []miscCase{
		{"namespaced object needs a namespace", with(validConfigMap, func(c *corev1.ConfigMap) { c.Namespace = "" }), true,
			[]wantErr{required("metadata.namespace")}},
		{"namespace must be a label", with(validConfigMap, func(c *corev1.ConfigMap) { c.Namespace = "Team.A" }), true,
			[]wantErr{invalid("metadata.namespace")}},
		{"cluster-scoped object has no namespace", with(validNode, func(n *corev1.Node) { n.Namespace = "default" }), false,
			[]wantErr{forbidden("metadata.namespace")}},
		{"name too long", with(validConfigMap, func(c *corev1.ConfigMap) { c.Name = strings.Repeat("a", 254) }), true,
			[]wantErr{invalid("metadata.name")}},
		{"generateName alone is not enough", with(validConfigMap, func(c *corev1.ConfigMap) { c.Name, c.GenerateName = "", "web-" }), true,
			[]wantErr{required("metadata.name")}},
		{"annotation key invalid", with(validConfigMap, func(c *corev1.ConfigMap) { c.Annotations = map[string]string{"a b": ""} }), true,
			[]wantErr{invalid("metadata.annotations")}},
		{"finalizer invalid", with(validConfigMap, func(c *corev1.ConfigMap) { c.Finalizers = []string{"bad finalizer"} }), true,
			[]wantErr{invalid("metadata.finalizers")}},
		{"unknown type gets meta validation", func() runtime.Object {
			return &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "Bad_Name", Namespace: "default"}}
		}, true, []wantErr{invalid("metadata.name")}},
		{"unknown type is namespaced as told", func() runtime.Object {
			return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "x"}}
		}, true, []wantErr{required("metadata.namespace")}},
		{"not an object", func() runtime.Object { return &metav1.Status{} }, true, []wantErr{{"InternalError", "metadata"}}},
		{"nil", func() runtime.Object { return nil }, true, []wantErr{{"InternalError", "<nil>"}}},
		{"typed nil", func() runtime.Object { return (*corev1.Pod)(nil) }, true, []wantErr{{"InternalError", "<nil>"}}},
		{"service account", func() runtime.Object {
			return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ci_bot", Namespace: "default"}}
		}, true, []wantErr{invalid("metadata.name")}},
	})
}

func TestValidate_Namespace(t *testing.T) {
	runMiscCases(t, []miscCase{
		{"valid", with(validNamespace, func(*corev1.Namespace) {}), false, nil},
		{"name must be a label", with(validNamespace, func(n *corev1.Namespace) { n.Name = "shop.prod" }), false,
			[]wantErr{invalid("metadata.name")}},
		{"name too long for a label", with(validNamespace, func(n *corev1.Namespace) { n.Name = strings.Repeat("a", 64) }), false,
			[]wantErr{invalid("metadata.name")}},
		{"finalizer not qualified", with(validNamespace, func(n *corev1.Namespace) { n.Spec.Finalizers = append(n.Spec.Finalizers, "cleanup") }), false,
			[]wantErr{invalid("spec.finalizers")}},
		{"finalizer qualified", with(validNamespace, func(n *corev1.Namespace) { n.Spec.Finalizers = append(n.Spec.Finalizers, "example.com/cleanup") }), false, nil},
	})
}

func TestValidate_Node(t *testing.T) {
	runMiscCases(t, []miscCase{
		{"valid", with(validNode, func(*corev1.Node) {}), false, nil},
		{"name must be a subdomain", with(validNode, func(n *corev1.Node) { n.Name = "node_1" }), false, []wantErr{invalid("metadata.name")}},
		{"taint effect required", with(validNode, func(n *corev1.Node) { n.Spec.Taints[0].Effect = "" }), false,
			[]wantErr{required("spec.taints[0].effect")}},
		{"taint effect unsupported", with(validNode, func(n *corev1.Node) { n.Spec.Taints[0].Effect = "NoRun" }), false,
			[]wantErr{notSupported("spec.taints[0].effect")}},
		{"taint key invalid", with(validNode, func(n *corev1.Node) { n.Spec.Taints[0].Key = "bad key" }), false,
			[]wantErr{invalid("spec.taints[0].key")}},
		{"taint duplicate", with(validNode, func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, n.Spec.Taints[0]) }), false,
			[]wantErr{duplicate("spec.taints[1]")}},
		{"podCIDR invalid", with(validNode, func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.1.0/33"} }), false,
			[]wantErr{invalid("spec.podCIDRs[0]")}},
	})
}

func TestValidate_RBAC(t *testing.T) {
	runMiscCases(t, []miscCase{
		{"role", with(validRole, func(*rbacv1.Role) {}), true, nil},
		{"role name with slash", with(validRole, func(r *rbacv1.Role) { r.Name = "pods/reader" }), true, []wantErr{invalid("metadata.name")}},
		{"role verbs required", with(validRole, func(r *rbacv1.Role) { r.Rules[0].Verbs = nil }), true, []wantErr{required("rules[0].verbs")}},
		{"role apiGroups required", with(validRole, func(r *rbacv1.Role) { r.Rules[0].APIGroups = nil }), true,
			[]wantErr{required("rules[0].apiGroups")}},
		{"role resources required", with(validRole, func(r *rbacv1.Role) { r.Rules[0].Resources = nil }), true,
			[]wantErr{required("rules[0].resources")}},
		{"role non-resource URLs", with(validRole, func(r *rbacv1.Role) {
			r.Rules = []rbacv1.PolicyRule{{NonResourceURLs: []string{"/healthz"}, Verbs: []string{"get"}}}
		}), true, []wantErr{invalid("rules[0].nonResourceURLs")}},
		{"clusterrole", with(validClusterRole, func(*rbacv1.ClusterRole) {}), false, nil},
		{"clusterrole mixed rule", with(validClusterRole, func(r *rbacv1.ClusterRole) { r.Rules[1].Resources = []string{"pods"} }), false,
			[]wantErr{invalid("rules[1].nonResourceURLs")}},
		{"clusterrole aggregation needs selectors", with(validClusterRole, func(r *rbacv1.ClusterRole) { r.AggregationRule = &rbacv1.AggregationRule{} }), false,
			[]wantErr{required("aggregationRule.clusterRoleSelectors")}},
		{"rolebinding", with(validRoleBinding, func(*rbacv1.RoleBinding) {}), true, nil},
		{"rolebinding roleRef apiGroup", with(validRoleBinding, func(b *rbacv1.RoleBinding) { b.RoleRef.APIGroup = "rbac.example.com" }), true,
			[]wantErr{notSupported("roleRef.apiGroup")}},
		{"rolebinding roleRef kind", with(validRoleBinding, func(b *rbacv1.RoleBinding) { b.RoleRef.Kind = "Group" }), true,
			[]wantErr{notSupported("roleRef.kind")}},
		{"rolebinding roleRef name", with(validRoleBinding, func(b *rbacv1.RoleBinding) { b.RoleRef.Name = "" }), true,
			[]wantErr{required("roleRef.name")}},
		{"rolebinding may bind a ClusterRole", with(validRoleBinding, func(b *rbacv1.RoleBinding) { b.RoleRef.Kind = "ClusterRole" }), true, nil},
		{"subject kind", with(validRoleBinding, func(b *rbacv1.RoleBinding) { b.Subjects[0].Kind = "Robot" }), true,
			[]wantErr{notSupported("subjects[0].kind")}},
		{"subject name", with(validRoleBinding, func(b *rbacv1.RoleBinding) { b.Subjects[0].Name = "" }), true,
			[]wantErr{required("subjects[0].name")}},
		{"service account subject apiGroup", with(validRoleBinding, func(b *rbacv1.RoleBinding) { b.Subjects[1].APIGroup = rbacv1.GroupName }), true,
			[]wantErr{notSupported("subjects[1].apiGroup")}},
		{"clusterrolebinding", with(validClusterRoleBinding, func(*rbacv1.ClusterRoleBinding) {}), false, nil},
		{"clusterrolebinding may not bind a Role", with(validClusterRoleBinding, func(b *rbacv1.ClusterRoleBinding) { b.RoleRef.Kind = "Role" }), false,
			[]wantErr{notSupported("roleRef.kind")}},
		{"clusterrolebinding service account needs namespace", with(validClusterRoleBinding, func(b *rbacv1.ClusterRoleBinding) { b.Subjects[0].Namespace = "" }), false,
			[]wantErr{required("subjects[0].namespace")}},
	})
}

func TestValidate_Ingress(t *testing.T) {
	paths := "spec.rules[0].http.paths"
	runMiscCases(t, []miscCase{
		{"valid", with(validIngress, func(*networkingv1.Ingress) {}), true, nil},
		{"pathType required", with(validIngress, func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].PathType = nil }), true,
			[]wantErr{required(paths + "[0].pathType")}},
		{"pathType unsupported", with(validIngress, func(i *networkingv1.Ingress) {
			i.Spec.Rules[0].HTTP.Paths[0].PathType = new(networkingv1.PathType("Regex"))
		}), true, []wantErr{notSupported(paths + "[0].pathType")}},
		{"prefix path must be absolute", with(validIngress, func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[1].Path = "api" }), true,
			[]wantErr{invalid(paths + "[1].path")}},
		{"prefix path with //", with(validIngress, func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[1].Path = "/api//v1" }), true,
			[]wantErr{invalid(paths + "[1].path")}},
		{"paths required", with(validIngress, func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths = nil }), true,
			[]wantErr{required(paths)}},
		{"host is an IP", with(validIngress, func(i *networkingv1.Ingress) { i.Spec.Rules[0].Host = "192.0.2.1" }), true,
			[]wantErr{invalid("spec.rules[0].host")}},
		{"wildcard host", with(validIngress, func(i *networkingv1.Ingress) { i.Spec.Rules[0].Host = "*.example.com" }), true, nil},
		{"backend service name required", with(validIngress, func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "" }), true,
			[]wantErr{required(paths + "[0].backend.service.name")}},
		{"backend port required", with(validIngress, func(i *networkingv1.Ingress) {
			i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port = networkingv1.ServiceBackendPort{}
		}), true, []wantErr{required(paths + "[0].backend.service.port")}},
		{"backend port number invalid", with(validIngress, func(i *networkingv1.Ingress) {
			i.Spec.Rules[0].HTTP.Paths[1].Backend.Service.Port.Number = 70000
		}), true, []wantErr{invalid(paths + "[1].backend.service.port.number")}},
		{"backend missing", with(validIngress, func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].Backend = networkingv1.IngressBackend{} }), true,
			[]wantErr{invalid(paths + "[0].backend")}},
		{"rules or default backend", with(validIngress, func(i *networkingv1.Ingress) { i.Spec.Rules = nil }), true,
			[]wantErr{invalid("spec")}},
		{"default backend only", with(validIngress, func(i *networkingv1.Ingress) {
			i.Spec.Rules = nil
			i.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
				Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80},
			}}
		}), true, nil},
	})
}

func TestValidate_PersistentVolumeClaim(t *testing.T) {
	runMiscCases(t, []miscCase{
		{"valid", with(validPVC, func(*corev1.PersistentVolumeClaim) {}), true, nil},
		{"accessModes required", with(validPVC, func(p *corev1.PersistentVolumeClaim) { p.Spec.AccessModes = nil }), true,
			[]wantErr{required("spec.accessModes")}},
		{"accessMode unsupported", with(validPVC, func(p *corev1.PersistentVolumeClaim) {
			p.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{"ReadMany"}
		}), true,
			[]wantErr{notSupported("spec.accessModes")}},
		{"ReadWriteOncePod alone", with(validPVC, func(p *corev1.PersistentVolumeClaim) {
			p.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod, corev1.ReadOnlyMany}
		}), true, []wantErr{forbidden("spec.accessModes")}},
		{"storage required", with(validPVC, func(p *corev1.PersistentVolumeClaim) { p.Spec.Resources.Requests = nil }), true,
			[]wantErr{required("spec.resources[storage]")}},
		{"storage positive", with(validPVC, func(p *corev1.PersistentVolumeClaim) {
			p.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("0")
		}), true, []wantErr{invalid("spec.resources[storage]")}},
		{"volumeMode unsupported", with(validPVC, func(p *corev1.PersistentVolumeClaim) { p.Spec.VolumeMode = new(corev1.PersistentVolumeMode("Raw")) }), true,
			[]wantErr{notSupported("spec.volumeMode")}},
		{"storageClassName invalid", with(validPVC, func(p *corev1.PersistentVolumeClaim) { p.Spec.StorageClassName = new("Fast SSD") }), true,
			[]wantErr{invalid("spec.storageClassName")}},
		{"dataSource kind in core group", with(validPVC, func(p *corev1.PersistentVolumeClaim) {
			p.Spec.DataSource = &corev1.TypedLocalObjectReference{Kind: "Secret", Name: "s"}
		}), true, []wantErr{invalid("spec.dataSource")}},
		{"pv", with(validPV, func(*corev1.PersistentVolume) {}), false, nil},
		{"pv needs a source", with(validPV, func(p *corev1.PersistentVolume) { p.Spec.HostPath = nil }), false, []wantErr{required("spec")}},
		{"pv needs capacity", with(validPV, func(p *corev1.PersistentVolume) { p.Spec.Capacity = nil }), false, []wantErr{required("spec.capacity")}},
	})
}

func TestValidate_Event(t *testing.T) {
	runMiscCases(t, []miscCase{
		{"valid", with(validEvent, func(*corev1.Event) {}), true, nil},
		{"other namespace", with(validEvent, func(e *corev1.Event) { e.InvolvedObject.Namespace = "kube-system" }), true,
			[]wantErr{invalid("involvedObject.namespace")}},
		{"cluster-scoped object in default", with(validEvent, func(e *corev1.Event) {
			e.InvolvedObject = corev1.ObjectReference{Kind: "Node", Name: "node-1"}
		}), true, nil},
		{"cluster-scoped object elsewhere", with(validEvent, func(e *corev1.Event) {
			e.Namespace = "shop"
			e.InvolvedObject = corev1.ObjectReference{Kind: "Node", Name: "node-1"}
		}), true, []wantErr{invalid("involvedObject.namespace")}},
	})
}
