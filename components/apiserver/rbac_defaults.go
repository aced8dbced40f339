package apiserver

import (
	"context"
	"maps"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The default ClusterRoles that manifests bind to, shaped as Kubernetes's
// bootstrap policy: cluster-admin, and the aggregated admin, edit and
// view, whose rules come from the ClusterRoles labelled to aggregate to
// them (so a CRD's author can extend them, as in Kubernetes). They are
// created when missing and never overwritten.

const (
	labelAggregateToView  = "rbac.authorization.k8s.io/aggregate-to-view"
	labelAggregateToEdit  = "rbac.authorization.k8s.io/aggregate-to-edit"
	labelAggregateToAdmin = "rbac.authorization.k8s.io/aggregate-to-admin"
)

var (
	readVerbs  = []string{"get", "list", "watch"}
	writeVerbs = []string{"create", "delete", "deletecollection", "patch", "update"}
)

// namespacedWorkloads are the namespaced resources view reads and edit
// writes, by API group.
var namespacedWorkloads = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods", "services", "endpoints", "configmaps", "persistentvolumeclaims",
		"replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "events"}},
	{APIGroups: []string{"apps"}, Resources: []string{"deployments", "deployments/scale", "replicasets", "replicasets/scale",
		"statefulsets", "statefulsets/scale", "daemonsets"}},
	{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}},
	{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}},
	{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses", "networkpolicies"}},
	{APIGroups: []string{"policy"}, Resources: []string{"poddisruptionbudgets"}},
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}},
	{APIGroups: []string{sourcesGroup}, Resources: []string{sourcesResource}},
}

func withVerbs(rules []rbacv1.PolicyRule, verbs []string) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, len(rules))
	for i, r := range rules {
		r.Verbs = verbs
		out[i] = r
	}
	return out
}

func defaultClusterRoles() []*rbacv1.ClusterRole {
	meta := func(name string, labels map[string]string) metav1.ObjectMeta {
		l := map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}
		maps.Copy(l, labels)
		return metav1.ObjectMeta{Name: name, Labels: l, Annotations: map[string]string{"rbac.authorization.kubernetes.io/autoupdate": "true"}}
	}
	aggregate := func(label string) *rbacv1.AggregationRule {
		return &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{label: "true"}}}}
	}
	view := append(withVerbs(namespacedWorkloads, readVerbs),

		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/log", "pods/status", "services/status",
			"persistentvolumeclaims/status", "namespaces", "namespaces/status", "limitranges", "resourcequotas", "bindings"}, Verbs: readVerbs},
		rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments/status", "replicasets/status",
			"statefulsets/status", "daemonsets/status", "controllerrevisions"}, Verbs: readVerbs},
		rbacv1.PolicyRule{APIGroups: []string{"batch"}, Resources: []string{"jobs/status", "cronjobs/status"}, Verbs: readVerbs},
		rbacv1.PolicyRule{APIGroups: []string{sourcesGroup}, Resources: []string{sourcesResource + "/status"}, Verbs: readVerbs},
	)
	edit := append(withVerbs(namespacedWorkloads, writeVerbs),
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: slices.Concat(readVerbs, writeVerbs)},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/attach", "pods/portforward"}, Verbs: []string{"create", "get"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/eviction"}, Verbs: []string{"create"}},
	)
	admin := []rbacv1.PolicyRule{
		{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles", "rolebindings"}, Verbs: slices.Concat(readVerbs, writeVerbs)},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"localsubjectaccessreviews"}, Verbs: []string{"create"}},
	}
	return []*rbacv1.ClusterRole{
		{ObjectMeta: meta("cluster-admin", nil), Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}},
			{NonResourceURLs: []string{"*"}, Verbs: []string{"*"}},
		}},
		{ObjectMeta: meta("admin", nil), AggregationRule: aggregate(labelAggregateToAdmin)},
		{ObjectMeta: meta("edit", map[string]string{labelAggregateToAdmin: "true"}), AggregationRule: aggregate(labelAggregateToEdit)},
		{ObjectMeta: meta("view", map[string]string{labelAggregateToEdit: "true"}), AggregationRule: aggregate(labelAggregateToView)},
		{ObjectMeta: meta("system:aggregate-to-admin", map[string]string{labelAggregateToAdmin: "true"}), Rules: admin},
		{ObjectMeta: meta("system:aggregate-to-edit", map[string]string{labelAggregateToEdit: "true"}), Rules: edit},
		{ObjectMeta: meta("system:aggregate-to-view", map[string]string{labelAggregateToView: "true"}), Rules: view},
		// metrics-server's role, for kubectl top: whoever views may.
		{ObjectMeta: meta("system:aggregated-metrics-reader", map[string]string{
			labelAggregateToView: "true", labelAggregateToEdit: "true", labelAggregateToAdmin: "true"}),
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{metricsGroup}, Resources: []string{"pods", "nodes"}, Verbs: readVerbs}}},
	}
}

// ensureDefaultRoles creates the default ClusterRoles and the binding of
// cluster-admin to system:masters, when missing.
func (s *Server) ensureDefaultRoles(ctx context.Context) error {
	res := s.byGVR[gvrClusterRoles]
	for _, cr := range defaultClusterRoles() {
		if err := s.ensure(ctx, res, cr); err != nil {
			return err
		}
	}
	return s.ensure(ctx, s.byGVR[gvrClusterRoleBindings], &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-admin", Labels: map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"},
			Annotations: map[string]string{"rbac.authorization.kubernetes.io/autoupdate": "true"}},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: GroupMasters}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
	})
}
