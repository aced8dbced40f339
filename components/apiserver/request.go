package apiserver

import (
	"net/http"
	"strings"
)

// requestInfo is what a resource URL says.
type requestInfo struct {
	group, version string
	resource       string
	namespace      string
	name           string
	subresource    string
	verb           string // get list watch create update patch delete deletecollection
	// fieldSelector and labelSelector are the raw selectors of a list or
	// watch, which the node authorizer reads.
	fieldSelector, labelSelector string
}

// parseResourcePath parses /api/v1/... and /apis/G/V/... paths. ok is false
// for anything that is not a resource path (discovery is handled before).
func parseResourcePath(r *http.Request) (requestInfo, bool) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var ri requestInfo
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		ri.version = parts[1]
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		ri.group, ri.version = parts[1], parts[2]
		parts = parts[3:]
	default:
		return ri, false
	}
	// namespaces/{ns}/{resource}... unless it is the namespace's own
	// subresource (status, finalize), as kube's RequestInfoFactory does.
	if parts[0] == "namespaces" && len(parts) > 1 {
		ri.namespace = parts[1]
		if len(parts) > 2 && parts[2] != "status" && parts[2] != "finalize" {
			parts = parts[2:]
		} else {
			ri.name = parts[1]
			ri.namespace = ""
			ri.resource = "namespaces"
			if len(parts) > 2 {
				ri.subresource = parts[2]
			}
			if len(parts) > 3 {
				return ri, false
			}
			ri.verb = verbFor(r, true)
			return ri, true
		}
	}
	ri.resource = parts[0]
	if len(parts) > 1 {
		ri.name = parts[1]
	}
	if len(parts) > 2 {
		ri.subresource = parts[2]
	}
	if len(parts) > 3 {
		return ri, false
	}
	for _, p := range parts {
		if p == "" {
			return ri, false
		}
	}
	ri.verb = verbFor(r, ri.name != "")
	if ri.verb == "get" && isStreamSubresource(ri.subresource) {
		// A WebSocket exec is a GET, but it acts like the POST of SPDY:
		// kube-apiserver authorizes both as create.
		ri.verb = "create"
	}
	if ri.verb == "list" || ri.verb == "watch" {
		ri.fieldSelector = r.URL.Query().Get("fieldSelector")
		ri.labelSelector = r.URL.Query().Get("labelSelector")
	}
	return ri, true
}

// isStreamSubresource reports the pod subresources that open a stream
// into a container.
func isStreamSubresource(sub string) bool {
	return sub == "exec" || sub == "attach" || sub == "portforward"
}

func verbFor(r *http.Request, named bool) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if isWatch(r) {
			return "watch"
		}
		if named {
			return "get"
		}
		return "list"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		if named {
			return "delete"
		}
		return "deletecollection"
	}
	return ""
}

func isWatch(r *http.Request) bool {
	w := r.URL.Query().Get("watch")
	return w == "true" || w == "1"
}
