package apiserver

// Groups with a built-in role, for the users of a static token file:
// the two roles kiln's users ask for besides the admin's, without writing
// RBAC bindings (rbac.go) for them.
const (
	// GroupViewers may get, list and watch everything but Secrets, and
	// clone and fetch hosted repositories: a read-only token.
	GroupViewers = "kiln:viewers"
	// GroupPushers may push to and fetch from hosted repositories and
	// nothing else: the token of a CI job that deploys by pushing.
	GroupPushers = "kiln:pushers"
)

// The git subresource of Source objects, which the hosted repositories'
// handler asks about in its access reviews (sources/hosted).
const (
	sourcesGroup    = "gitops.kiln.dev"
	sourcesResource = "sources"
	gitSubresource  = "git"
)

// roleAllows reports whether one of u's built-in roles allows ri.
func roleAllows(u User, ri requestInfo) bool {
	if basicUserAllows(ri) {
		return true
	}
	isGit := ri.group == sourcesGroup && ri.resource == sourcesResource && ri.subresource == gitSubresource
	for _, g := range u.Groups {
		switch g {
		case GroupPushers:
			if isGit && (ri.verb == "get" || ri.verb == "update") {
				return true
			}
		case GroupViewers:
			if isGit && ri.verb == "get" {
				return true
			}
			if isGit || ri.resource == "secrets" {
				continue
			}
			// Reading a pod's log is reading; exec, attach and port
			// forwarding are not.
			readable := ri.subresource == "" || ri.subresource == "status" || ri.subresource == "log" || ri.subresource == "scale"
			if readable && (ri.verb == "get" || ri.verb == "list" || ri.verb == "watch") {
				return true
			}
		}
	}
	return false
}

// basicUserAllows is kube's system:basic-user role, which every
// authenticated user has: asking who it is and what it may do.
func basicUserAllows(ri requestInfo) bool {
	if ri.verb != "create" || ri.subresource != "" {
		return false
	}
	switch ri.group + "/" + ri.resource {
	case "authorization.k8s.io/selfsubjectaccessreviews", "authorization.k8s.io/selfsubjectrulesreviews",
		"authentication.k8s.io/selfsubjectreviews":
		return true
	}
	return false
}
