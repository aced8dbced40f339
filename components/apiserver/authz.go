package apiserver

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// authorize lets system:masters do everything and refuses everyone else
// with kube's Forbidden message.
func (s *Server) authorize(ctx context.Context, u User, ri requestInfo) error {
	if isMaster(u) {
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
