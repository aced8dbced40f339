package apiserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"kiln.dev/kiln/components/internal/localpath"
	"kiln.dev/kiln/components/store"
)

// The node authorizer is Kubernetes's Node authorizer, NodeRestriction
// admission and system:node ClusterRole in one, narrowed as issue 9 asks:
// a kubelet's credentials reach its own Node and Lease, the pods bound to
// it and the Secrets, ConfigMaps and PersistentVolumeClaims (and their
// volumes) those use, and read Services and endpoints; and, for the
// local-path provisioner, it lists the volumes provisioned on it and may
// take their cleanup finalizer off; nothing else. Every rule is a map lookup or, for the names
// kube's admission checks in the body, a check at create.

// nodeLeaseNamespace holds the nodes' heartbeat Leases.
const nodeLeaseNamespace = "kube-node-lease"

// nodeOf returns the node a user's credentials belong to; isNode is true
// for every user in GroupNodes, node "" when its name is not
// system:node:<node> (refused everything, as in kube).
func nodeOf(u User) (node string, isNode bool) {
	for _, g := range u.Groups {
		if g == GroupNodes {
			node, _ = strings.CutPrefix(u.Name, NodeUserPrefix)
			if node == u.Name {
				node = ""
			}
			return node, true
		}
	}
	return "", false
}

// nodeAllows decides a node's request. It returns an error only when the
// answer is not allowed-or-forbidden: a pod that does not exist (404, as
// the handler would answer) or a store failure.
func (s *Server) nodeAllows(ctx context.Context, node string, ri requestInfo) (bool, error) {
	sub, verb := ri.subresource, ri.verb
	switch ri.group + "/" + ri.resource {
	case "/nodes":
		switch {
		case sub == "" && (verb == "get" || verb == "list" || verb == "watch"):
			// Every node's podCIDR and address are needed for the
			// host-gw routes; kube's system:node role reads all nodes.
			return true, nil
		case sub == "" && verb == "create":
			return true, nil // admitNode checks the name in the body
		case sub == "" && (verb == "update" || verb == "patch" || verb == "delete"),
			sub == "status" && (verb == "get" || verb == "update" || verb == "patch"):
			return ri.name == node, nil
		}
		return false, nil
	case "coordination.k8s.io/leases":
		if sub != "" || ri.namespace != nodeLeaseNamespace {
			return false, nil
		}
		switch verb {
		case "create":
			return true, nil // admitNode checks the name in the body
		case "get", "update", "patch", "delete":
			return ri.name == node, nil
		case "list", "watch":
			return ri.name == node || selects(ri.fieldSelector, "metadata.name", node), nil
		}
		return false, nil
	case "/pods":
		switch {
		case sub == "" && (verb == "list" || verb == "watch"):
			return selects(ri.fieldSelector, "spec.nodeName", node), nil
		case sub == "" && (verb == "get" || verb == "delete"),
			sub == "status" && (verb == "get" || verb == "update" || verb == "patch"):
			return s.podOnNode(ctx, node, ri.namespace, ri.name)
		}
		// create (no mirror pods in kiln), log, exec, eviction, binding.
		return false, nil
	case "/secrets", "/configmaps":
		if sub != "" || ri.namespace == "" {
			return false, nil
		}
		name := ri.name
		switch verb {
		case "get":
		case "list", "watch":
			// The kubelet watches one object by a metadata.name
			// selector; a plain list would show every name.
			if name == "" {
				name, _ = exactField(ri.fieldSelector, "metadata.name")
			}
		default:
			return false, nil
		}
		if name == "" {
			return false, nil
		}
		ok, err := s.nodeUses(ctx, nodeRef{node: node, resource: ri.resource, namespace: ri.namespace, name: name})
		if ok || err != nil || ri.resource != "secrets" {
			return ok, err
		}
		return s.nodeIngressSecret(ctx, ri, name) // a TLS Secret its ingress serves
	case "/persistentvolumeclaims":
		// The claims of its pods' volumes, by name, as kube's graph.
		if sub != "" || verb != "get" || ri.namespace == "" || ri.name == "" {
			return false, nil
		}
		return s.nodeUses(ctx, nodeRef{node: node, resource: ri.resource, namespace: ri.namespace, name: ri.name})
	case "/persistentvolumes":
		switch {
		case sub == "" && verb == "get":
			return s.nodeUsesVolume(ctx, node, ri.name)
		case sub == "" && (verb == "list" || verb == "watch"):
			// The local-path volumes provisioned on it, to remove the
			// directories of deleted ones.
			return labelSelects(ri.labelSelector, localpath.NodeLabel, node), nil
		case sub == "" && (verb == "update" || verb == "patch"):
			return ri.name != "", nil // admitNodeUpdate checks the change
		}
		return false, nil
	case "networking.k8s.io/ingresses", "networking.k8s.io/ingressclasses":
		return nodeIngressAllows(ri), nil
	case "/services", "/endpoints", "discovery.k8s.io/endpointslices":
		return sub == "" && (verb == "get" || verb == "list" || verb == "watch"), nil
	case "/events", "events.k8s.io/events":
		return sub == "" && (verb == "create" || verb == "update" || verb == "patch"), nil
	case "authentication.k8s.io/tokenreviews", "authorization.k8s.io/subjectaccessreviews":
		// The kubelet's log server checks its callers with them.
		return verb == "create", nil
	case "/serviceaccounts":
		// The tokens of its pods' projected volumes; the handler checks
		// that the token is bound to a pod of this node that runs as the
		// account (admitNodeToken).
		return sub == "token" && verb == "create", nil
	}
	return false, nil
}

// exactField is the value a field selector requires field to equal; ok is
// false when it does not pin one.
func exactField(selector, field string) (string, bool) {
	if selector == "" {
		return "", false
	}
	sel, err := fields.ParseSelector(selector)
	if err != nil {
		return "", false
	}
	return sel.RequiresExactMatch(field)
}

// selects reports whether a field selector limits a list to field=value.
// More terms only narrow it further, so they do not matter.
func selects(selector, field, value string) bool {
	v, ok := exactField(selector, field)
	return ok && v == value
}

// labelSelects reports whether a label selector limits a list to
// key=value; more requirements only narrow it.
func labelSelects(selector, key, value string) bool {
	if selector == "" {
		return false
	}
	sel, err := labels.Parse(selector)
	if err != nil {
		return false
	}
	v, ok := sel.RequiresExactMatch(key)
	return ok && v == value
}

// nodeUsesVolume reports whether a pod of node uses the PersistentVolume
// name: its claimRef names a claim the node's pods use, and that claim is
// bound to it (kube's graph edge pv -> pvc -> pod). A volume that does
// not exist is refused rather than answered 404, so that a node cannot
// probe volume names.
func (s *Server) nodeUsesVolume(ctx context.Context, node, name string) (bool, error) {
	if name == "" {
		return false, nil
	}
	pvObj, err := s.getObject(ctx, gvrPVs, "", name)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	pv, ok := pvObj.(*corev1.PersistentVolume)
	if !ok || pv.Spec.ClaimRef == nil {
		return false, nil
	}
	ref := pv.Spec.ClaimRef
	pvcObj, err := s.getObject(ctx, gvrPVCs, ref.Namespace, ref.Name)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	pvc, ok := pvcObj.(*corev1.PersistentVolumeClaim)
	if !ok || pvc.Spec.VolumeName != name || (ref.UID != "" && ref.UID != pvc.UID) {
		return false, nil
	}
	return s.nodeUses(ctx, nodeRef{node: node, resource: "persistentvolumeclaims", namespace: ref.Namespace, name: ref.Name})
}

// podOnNode reports whether pod namespace/name is bound to node: from the
// graph when it says so, else from the store, which also answers for a
// pod bound too recently for the graph. A pod that does not exist is a
// 404, as the handler would answer. The graph may lag a delete and
// re-create of the same name on another node by its watch delay; kube's
// graph has the same window, and the pod's UID (which a kubelet's status
// patch does not carry) would be needed to close it.
func (s *Server) podOnNode(ctx context.Context, node, namespace, name string) (bool, error) {
	if name == "" {
		return false, nil
	}
	if s.graph.ensure(s.store, s.podsRes().listPrefix("")) && s.graph.podOn(node, namespace, name) {
		return true, nil
	}
	kv, err := s.store.Get(ctx, s.podsRes().key(namespace, name))
	if errors.Is(err, store.ErrNotFound) {
		return false, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
	}
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	p, _, ok := decodeGraphPod(kv.Value)
	return ok && p.node == node, nil
}

// nodeUses reports whether a pod bound to r.node uses r: from the graph,
// else by reading the namespace's pods from the store. Only a refusal or
// a pod bound within the graph's lag pays the read.
func (s *Server) nodeUses(ctx context.Context, r nodeRef) (bool, error) {
	if s.graph.ensure(s.store, s.podsRes().listPrefix("")) && s.graph.uses(r) {
		return true, nil
	}
	prefix := s.podsRes().listPrefix(r.namespace)
	start := ""
	for {
		page, err := s.store.List(ctx, prefix, store.ListOptions{StartKey: start, Limit: 500})
		if err != nil {
			return false, apierrors.NewInternalError(err)
		}
		for _, kv := range page.KVs {
			if p, _, ok := decodeGraphPod(kv.Value); ok && p.node == r.node && p.usesRef(r.resource, r.name) {
				return true, nil
			}
		}
		if !page.More || len(page.KVs) == 0 {
			return false, nil
		}
		start = page.KVs[len(page.KVs)-1].Key + "\x00"
	}
}

func (s *Server) podsRes() *resource { return s.byGVR[gvrKey{"", "v1", "pods"}] }

// admitNode is the NodeRestriction part that needs the body of a create:
// a node creates only its own Node and Lease, and registers its Node
// without a pod CIDR (the cluster assigns it, and the host-gw routes of
// every other node trust it) and with no labels kube reserves.
func admitNode(u User, res *resource, obj runtime.Object) error {
	node, isNode := nodeOf(u)
	if !isNode || isMaster(u) {
		return nil
	}
	m := accessor(obj)
	switch res.Group + "/" + res.Name {
	case "/nodes", "coordination.k8s.io/leases":
		if m.GetName() != node {
			return nodeForbidden(res, m.GetName(), fmt.Errorf("node %q is not allowed to modify %s %q", node, strings.TrimSuffix(res.Name, "s"), m.GetName()))
		}
	}
	if n, ok := obj.(*corev1.Node); ok {
		if n.Spec.PodCIDR != "" || len(n.Spec.PodCIDRs) > 0 {
			return nodeForbidden(res, n.Name, fmt.Errorf("node %q is not allowed to set its pod CIDR", node))
		}
		if bad := forbiddenNodeLabels(n.Labels, nil); len(bad) > 0 {
			return nodeForbidden(res, n.Name, fmt.Errorf("node %q is not allowed to set the following labels: %s", node, strings.Join(bad, ", ")))
		}
	}
	return nil
}

// admitNodeUpdate is NodeRestriction's check of a node's update of its own
// Node: not its taints (it would steer workloads to itself), owners or
// pod CIDR, nor labels kube reserves. Status writes keep the spec, so
// they always pass.
func admitNodeUpdate(u User, res *resource, obj, old runtime.Object) error {
	node, isNode := nodeOf(u)
	if !isNode || isMaster(u) {
		return nil
	}
	if pv, ok := obj.(*corev1.PersistentVolume); ok {
		return admitNodeVolumeUpdate(node, res, pv, old.(*corev1.PersistentVolume))
	}
	n, ok := obj.(*corev1.Node)
	o, ok2 := old.(*corev1.Node)
	if !ok || !ok2 {
		return nil
	}
	var why string
	switch {
	case !apiequality.Semantic.DeepEqual(n.Spec.Taints, o.Spec.Taints):
		why = "modify taints"
	case !apiequality.Semantic.DeepEqual(n.OwnerReferences, o.OwnerReferences):
		why = "modify ownerReferences"
	case n.Spec.PodCIDR != o.Spec.PodCIDR || !slices.Equal(n.Spec.PodCIDRs, o.Spec.PodCIDRs):
		why = "modify its pod CIDR"
	default:
		if bad := forbiddenNodeLabels(n.Labels, o.Labels); len(bad) > 0 {
			return nodeForbidden(res, n.Name, fmt.Errorf("is not allowed to modify labels: %s", strings.Join(bad, ", ")))
		}
		return nil
	}
	return nodeForbidden(res, n.Name, fmt.Errorf("node %q is not allowed to %s", node, why))
}

// admitNodeVolumeUpdate allows a node one change to a PersistentVolume:
// taking localpath.CleanupFinalizer off a volume provisioned on it (its
// NodeLabel), once the directory is gone. Anything else is refused.
func admitNodeVolumeUpdate(node string, res *resource, pv, old *corev1.PersistentVolume) error {
	if old.Labels[localpath.NodeLabel] != node || node == "" {
		return nodeForbidden(res, pv.Name, fmt.Errorf("node %q may not modify persistentvolume %q, which is not provisioned on it", node, pv.Name))
	}
	want := slices.DeleteFunc(slices.Clone(old.Finalizers), func(f string) bool { return f == localpath.CleanupFinalizer })
	next := pv.DeepCopy()
	next.Finalizers = old.Finalizers
	next.ResourceVersion = old.ResourceVersion
	if !slices.Equal(pv.Finalizers, want) || !apiequality.Semantic.DeepEqual(next, old) {
		return nodeForbidden(res, pv.Name, fmt.Errorf("node %q may only remove finalizer %s from persistentvolume %q", node, localpath.CleanupFinalizer, pv.Name))
	}
	return nil
}

func nodeForbidden(res *resource, name string, err error) error {
	return apierrors.NewForbidden(res.gr, name, err)
}

// kubeletLabels are the kube-reserved labels a kubelet may set on its
// Node (k8s.io/kubelet/pkg/apis KubeletLabels).
var kubeletLabels = map[string]bool{
	corev1.LabelHostname: true, corev1.LabelOSStable: true, corev1.LabelArchStable: true,
	"beta.kubernetes.io/os": true, "beta.kubernetes.io/arch": true, corev1.LabelInstanceType: true,
	corev1.LabelInstanceTypeStable: true, corev1.LabelFailureDomainBetaZone: true,
	corev1.LabelFailureDomainBetaRegion: true, corev1.LabelTopologyZone: true, corev1.LabelTopologyRegion: true,
}

// forbiddenNodeLabels returns, sorted, the keys that differ between
// labels and old and that a node may not set: those under
// node-restriction.kubernetes.io, and other kubernetes.io or k8s.io keys
// outside kubeletLabels and the kubelet.kubernetes.io and
// node.kubernetes.io namespaces, as kube's NodeRestriction.
func forbiddenNodeLabels(labels, old map[string]string) []string {
	var bad []string
	check := func(k string) {
		v1, in1 := labels[k]
		v2, in2 := old[k]
		if in1 == in2 && v1 == v2 {
			return
		}
		ns, _, ok := strings.Cut(k, "/")
		if !ok {
			return
		}
		under := func(domain string) bool { return ns == domain || strings.HasSuffix(ns, "."+domain) }
		switch {
		case under("node-restriction.kubernetes.io"):
		case !under("kubernetes.io") && !under("k8s.io"):
			return
		case kubeletLabels[k] || under("kubelet.kubernetes.io") || under("node.kubernetes.io"):
			return
		}
		if !slices.Contains(bad, k) {
			bad = append(bad, k)
		}
	}
	for k := range labels {
		check(k)
	}
	for k := range old {
		check(k)
	}
	slices.Sort(bad)
	return bad
}

// admitNodeToken is NodeRestriction's rule for TokenRequest: a node gets
// only tokens bound to a pod bound to it, of the account that pod runs
// as.
func admitNodeToken(u User, account string, ref *authenticationv1.BoundObjectReference, bound runtime.Object) error {
	node, isNode := nodeOf(u)
	if !isNode {
		return nil
	}
	pod, ok := bound.(*corev1.Pod)
	if ref == nil || !ok {
		return apierrors.NewForbidden(corev1.Resource("serviceaccounts"), account, errors.New("a node may only request tokens bound to a pod"))
	}
	if pod.Spec.NodeName != node || node == "" {
		return apierrors.NewForbidden(corev1.Resource("serviceaccounts"), account, fmt.Errorf("pod %s/%s is not bound to node %q", pod.Namespace, pod.Name, node))
	}
	if pod.Spec.ServiceAccountName != account {
		return apierrors.NewForbidden(corev1.Resource("serviceaccounts"), account, fmt.Errorf("pod %s/%s runs as service account %q, not %q", pod.Namespace, pod.Name, pod.Spec.ServiceAccountName, account))
	}
	return nil
}
