package apiserver

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// authorize lets system:masters do everything, the built-in roles what
// they allow (roles.go), nodes what the node authorizer allows
// (nodeauthz.go), anyone what RBAC bindings grant (rbac.go), and refuses
// the rest with kube's Forbidden message.
func (s *Server) authorize(ctx context.Context, u User, ri requestInfo) error {
	if isMaster(u) || roleAllows(u, ri) {
		return nil
	}
	if node, isNode := nodeOf(u); isNode && node != "" {
		ok, err := s.nodeAllows(ctx, node, ri)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	if ok, err := s.rbacAllows(ctx, u, ri); err != nil {
		return err
	} else if ok {
		return nil
	}
	res := ri.resource
	if ri.subresource != "" {
		res += "/" + ri.subresource
	}
	where := ""
	if ri.namespace != "" {
		where = fmt.Sprintf(" in the namespace %q", ri.namespace)
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: ri.group, Resource: ri.resource}, ri.name,
		fmt.Errorf("User %q cannot %s resource %q in API group %q%s", u.Name, ri.verb, res, ri.group, where))
}
