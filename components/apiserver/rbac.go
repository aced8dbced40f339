package apiserver

import (
	"context"
	"errors"
	"slices"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"kiln.dev/kiln/components/store"
)

// RBAC as Kubernetes evaluates it (plugin/pkg/auth/authorizer/rbac):
// a request is allowed when a ClusterRoleBinding, or a RoleBinding in the
// request's namespace, names the user (or one of its groups, or its
// service account) and points at a role with a rule that covers the
// request. Nothing denies. The bindings and roles are read from the store
// at each decision (and decoded once per revision, decodedRBAC): only
// users other than the admin, nodes and the built-in groups get here, and
// a grant or a revocation counts at once.

var (
	gvrClusterRoleBindings = gvrKey{rbacv1.GroupName, "v1", "clusterrolebindings"}
	gvrRoleBindings        = gvrKey{rbacv1.GroupName, "v1", "rolebindings"}
	gvrClusterRoles        = gvrKey{rbacv1.GroupName, "v1", "clusterroles"}
	gvrRoles               = gvrKey{rbacv1.GroupName, "v1", "roles"}
)

// rbacAllows reports whether an RBAC binding grants ri to u.
func (s *Server) rbacAllows(ctx context.Context, u User, ri requestInfo) (bool, error) {
	crbs, err := s.listObjects(ctx, gvrClusterRoleBindings, "")
	if err != nil {
		return false, err
	}
	for _, o := range crbs {
		b := o.(*rbacv1.ClusterRoleBinding)
		if ok, err := s.bindingAllows(ctx, u, ri, b.Subjects, b.RoleRef, ""); ok || err != nil {
			return ok, err
		}
	}
	if ri.namespace == "" {
		return false, nil
	}
	rbs, err := s.listObjects(ctx, gvrRoleBindings, ri.namespace)
	if err != nil {
		return false, err
	}
	for _, o := range rbs {
		b := o.(*rbacv1.RoleBinding)
		if ok, err := s.bindingAllows(ctx, u, ri, b.Subjects, b.RoleRef, b.Namespace); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// bindingAllows checks one binding: its subjects, then its role's rules.
// A binding in namespace ns (a RoleBinding) grants only there, whatever
// role it points at.
func (s *Server) bindingAllows(ctx context.Context, u User, ri requestInfo, subjects []rbacv1.Subject, ref rbacv1.RoleRef, ns string) (bool, error) {
	if !slices.ContainsFunc(subjects, func(sub rbacv1.Subject) bool { return subjectMatches(sub, u, ns) }) {
		return false, nil
	}
	rules, err := s.roleRules(ctx, ref, ns)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return ruleAllows(r, ri) }), nil
}

// subjectMatches reports whether sub names u; a ServiceAccount subject
// without a namespace means the binding's.
func subjectMatches(sub rbacv1.Subject, u User, bindingNS string) bool {
	switch sub.Kind {
	case rbacv1.UserKind:
		return sub.Name == u.Name
	case rbacv1.GroupKind:
		return slices.Contains(u.Groups, sub.Name) || sub.Name == "system:authenticated"
	case rbacv1.ServiceAccountKind:
		ns := sub.Namespace
		if ns == "" {
			ns = bindingNS
		}
		return u.Name == "system:serviceaccount:"+ns+":"+sub.Name
	}
	return false
}

// roleRules are the rules of the role ref names: a Role in ns, or a
// ClusterRole with its aggregated roles' rules. A missing role grants
// nothing, as in Kubernetes.
func (s *Server) roleRules(ctx context.Context, ref rbacv1.RoleRef, ns string) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "Role":
		if ns == "" {
			return nil, nil
		}
		o, err := s.getObject(ctx, gvrRoles, ns, ref.Name)
		if o == nil || err != nil {
			return nil, err
		}
		return o.(*rbacv1.Role).Rules, nil
	case "ClusterRole":
		o, err := s.getObject(ctx, gvrClusterRoles, "", ref.Name)
		if o == nil || err != nil {
			return nil, err
		}
		cr := o.(*rbacv1.ClusterRole)
		if cr.AggregationRule == nil {
			return cr.Rules, nil
		}
		all, err := s.listObjects(ctx, gvrClusterRoles, "")
		if err != nil {
			return nil, err
		}
		byName := map[string]*rbacv1.ClusterRole{}
		for _, o := range all {
			byName[o.(*rbacv1.ClusterRole).Name] = o.(*rbacv1.ClusterRole)
		}
		return aggregatedRules(cr, byName, map[string]bool{}), nil
	}
	return nil, nil
}

// aggregatedRules are cr's rules and those of every ClusterRole one of
// its selectors matches, in turn aggregated, as the aggregation
// controller would write them (edit takes view's, admin edit's).
func aggregatedRules(cr *rbacv1.ClusterRole, all map[string]*rbacv1.ClusterRole, seen map[string]bool) []rbacv1.PolicyRule {
	seen[cr.Name] = true
	rules := slices.Clone(cr.Rules)
	if cr.AggregationRule == nil {
		return rules
	}
	for _, sel := range cr.AggregationRule.ClusterRoleSelectors {
		selector, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			continue
		}
		for name, other := range all {
			if !seen[name] && selector.Matches(labels.Set(other.Labels)) {
				rules = append(rules, aggregatedRules(other, all, seen)...)
			}
		}
	}
	return rules
}

// ruleAllows is Kubernetes's RuleAllows for a resource request.
func ruleAllows(r rbacv1.PolicyRule, ri requestInfo) bool {
	if !hasOrAll(r.Verbs, ri.verb) || !hasOrAll(r.APIGroups, ri.group) {
		return false
	}
	combined := ri.resource
	if ri.subresource != "" {
		combined += "/" + ri.subresource
	}
	resourceOK := slices.ContainsFunc(r.Resources, func(res string) bool {
		return res == rbacv1.ResourceAll || res == combined ||
			ri.subresource != "" && res == "*/"+ri.subresource
	})
	if !resourceOK {
		return false
	}
	return len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, ri.name)
}

func hasOrAll(list []string, v string) bool {
	return slices.Contains(list, "*") || slices.Contains(list, v)
}

// decodedRBAC keeps RBAC objects decoded, by key and mod revision. A
// decision for a user other than the admin reads every binding and, for
// an aggregated ClusterRole (view, edit, admin), every ClusterRole; the
// reads stay, so a grant or a revocation counts at once, but decoding
// them cost more than reading them, on every request. An object whose
// revision is unchanged is not decoded again; callers must not modify it.
type decodedRBAC struct {
	mu      sync.Mutex
	entries map[string]decodedEntry
}

type decodedEntry struct {
	rev int64
	obj runtime.Object
}

// decodedRBACSize bounds the cache; entries of deleted objects stay until
// it fills, then all go.
const decodedRBACSize = 10000

// lookup returns the object at key as of revision rev, if decoded.
func (c *decodedRBAC) lookup(key string, rev int64) (runtime.Object, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.rev != rev {
		return nil, false
	}
	return e.obj, true
}

func (c *decodedRBAC) decode(res *resource, kv store.KV) (runtime.Object, error) {
	if obj, ok := c.lookup(kv.Key, kv.ModRevision); ok {
		return obj, nil
	}
	obj, err := res.decodeStored(kv)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= decodedRBACSize {
		c.entries = map[string]decodedEntry{}
	}
	c.entries[kv.Key] = decodedEntry{rev: kv.ModRevision, obj: obj}
	return obj, nil
}

// decodeRead decodes an object listObjects or getObject read: RBAC ones
// through s.rbacDecoded.
func (s *Server) decodeRead(res *resource, kv store.KV) (runtime.Object, error) {
	if res.Group == rbacv1.GroupName {
		return s.rbacDecoded.decode(res, kv)
	}
	return res.decodeStored(kv)
}

// listObjects reads every object of a resource in namespace ns ("" for
// all or for a cluster-scoped resource). RBAC objects are shared: read
// them only.
func (s *Server) listObjects(ctx context.Context, gvr gvrKey, ns string) ([]runtime.Object, error) {
	res := s.byGVR[gvr]
	var out []runtime.Object
	start := ""
	prefix := res.listPrefix(ns)
	var rev int64
	for {
		page, err := s.listPage(ctx, res, prefix, store.ListOptions{StartKey: start, Revision: rev, Limit: 500}, &out)
		if err != nil {
			return nil, err
		}
		rev = page.Revision
		if !page.More || len(page.KVs) == 0 {
			return out, nil
		}
		start = page.KVs[len(page.KVs)-1].Key + "\x00"
	}
}

// listPage reads one page of listObjects and appends its objects to out.
// RBAC objects whose revisions decodedRBAC holds are not read again: the
// keys come first, and the values only if one of them changed.
func (s *Server) listPage(ctx context.Context, res *resource, prefix string, opts store.ListOptions, out *[]runtime.Object) (store.ListResult, error) {
	if res.Group == rbacv1.GroupName {
		opts.KeysOnly = true
		page, err := s.store.List(ctx, prefix, opts)
		if err != nil {
			return page, err
		}
		objs := make([]runtime.Object, 0, len(page.KVs))
		for _, kv := range page.KVs {
			o, ok := s.rbacDecoded.lookup(kv.Key, kv.ModRevision)
			if !ok {
				break
			}
			objs = append(objs, o)
		}
		if len(objs) == len(page.KVs) {
			*out = append(*out, objs...)
			return page, nil
		}
		opts.KeysOnly, opts.Revision = false, page.Revision
	}
	page, err := s.store.List(ctx, prefix, opts)
	if err != nil {
		return page, err
	}
	for _, kv := range page.KVs {
		if o, err := s.decodeRead(res, kv); err == nil {
			*out = append(*out, o)
		}
	}
	return page, nil
}

// getObject reads one object, nil when it does not exist. RBAC objects
// are shared: read them only.
func (s *Server) getObject(ctx context.Context, gvr gvrKey, ns, name string) (runtime.Object, error) {
	res := s.byGVR[gvr]
	kv, err := s.store.Get(ctx, res.key(ns, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.decodeRead(res, kv)
}
