package reconcile

import (
	"cmp"
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// applyOrder lists the kinds that must exist before the kinds after them:
// namespaces before what lives in them, CRDs before their custom
// resources, identities and RBAC before the workloads that use them,
// configuration and storage before the pods that mount it, Services before
// workloads (so their environment variables are set) and workloads before
// what scales or routes to them. Kinds not listed go last. It is read-only.
var applyOrder = []schema.GroupKind{
	{Group: "", Kind: "Namespace"},
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"},
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"},
	{Group: "storage.k8s.io", Kind: "StorageClass"},
	{Group: "", Kind: "ServiceAccount"},
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"},
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"},
	{Group: "rbac.authorization.k8s.io", Kind: "Role"},
	{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"},
	{Group: "", Kind: "Secret"},
	{Group: "", Kind: "ConfigMap"},
	{Group: "", Kind: "PersistentVolume"},
	{Group: "", Kind: "PersistentVolumeClaim"},
	{Group: "", Kind: "Service"},
	{Group: "apps", Kind: "DaemonSet"},
	{Group: "apps", Kind: "Deployment"},
	{Group: "apps", Kind: "ReplicaSet"},
	{Group: "apps", Kind: "StatefulSet"},
	{Group: "batch", Kind: "Job"},
	{Group: "batch", Kind: "CronJob"},
	{Group: "", Kind: "Pod"},
	{Group: "networking.k8s.io", Kind: "Ingress"},
	{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"},
}

// applyRank is the position of gk in applyOrder, or len(applyOrder) for
// kinds that are not listed.
func applyRank(gk schema.GroupKind) int {
	if i := slices.Index(applyOrder, gk); i >= 0 {
		return i
	}
	return len(applyOrder)
}

// sortForApply orders objs for applying: by applyOrder, then by KeyOf.
// Keys are unique by the time it runs (duplicates are problems), so the
// order does not depend on the order of the input.
func sortForApply(objs []Object) {
	type ranked struct {
		rank int
		key  string
		obj  Object
	}
	rs := make([]ranked, len(objs))
	for i, o := range objs {
		rs[i] = ranked{rank: applyRank(o.Obj.GroupVersionKind().GroupKind()), key: KeyOf(o.Obj), obj: o}
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		if c := cmp.Compare(a.rank, b.rank); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	for i := range rs {
		objs[i] = rs[i].obj
	}
}
