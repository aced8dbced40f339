package apiserver

import (
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// handleAPI serves every resource path.
func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	ri, ok := parseResourcePath(r)
	if !ok {
		s.handleVersionDiscovery(w, r)
		return
	}
	res := s.byGVR[gvrKey{ri.group, ri.version, ri.resource}]
	if res == nil {
		if ri.name == "" && ri.namespace == "" && (r.URL.Path == "/api/"+ri.version || r.URL.Path == "/apis/"+ri.group+"/"+ri.version) {
			s.handleVersionDiscovery(w, r)
			return
		}
		writeError(w, apierrors.NewNotFound(schema.GroupResource{Group: ri.group, Resource: ri.resource}, ri.name))
		return
	}
	if !res.Namespaced && ri.namespace != "" {
		writeError(w, apierrors.NewNotFound(res.gr, ri.name))
		return
	}
	if err := s.authorize(r.Context(), userFrom(r.Context()), ri); err != nil {
		writeError(w, err)
		return
	}
	if ri.subresource != "" {
		s.handleSubresource(w, r, res, ri)
		return
	}
	if !allowed(res.Verbs, ri.verb) {
		writeError(w, apierrors.NewMethodNotSupported(res.gr, ri.verb))
		return
	}
	if res.Group == metricsGroup {
		s.handleResourceMetrics(w, r, res, ri)
		return
	}
	switch ri.verb {
	case "create", "update", "patch":
		growStack()
	}
	switch ri.verb {
	case "get":
		s.handleGet(w, r, res, ri)
	case "list":
		s.handleList(w, r, res, ri)
	case "watch":
		s.handleWatch(w, r, res, ri)
	case "create":
		s.handleCreate(w, r, res, ri)
	case "update":
		s.handleUpdate(w, r, res, ri, "")
	case "patch":
		s.handlePatch(w, r, res, ri, "")
	case "delete":
		s.handleDelete(w, r, res, ri)
	case "deletecollection":
		s.handleDeleteCollection(w, r, res, ri)
	default:
		writeError(w, apierrors.NewMethodNotSupported(res.gr, r.Method))
	}
}

func allowed(verbs []string, verb string) bool {
	for _, v := range verbs {
		if v == verb {
			return true
		}
	}
	return false
}

// dryRun reports dryRun=All; any other value is a 400, as in kube.
func dryRun(r *http.Request) (bool, error) {
	vals := r.URL.Query()["dryRun"]
	for _, v := range vals {
		if v != "All" {
			return false, badRequest("dryRun must be All, not %q", v)
		}
	}
	return len(vals) > 0, nil
}
