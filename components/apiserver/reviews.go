package apiserver

import (
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// isReview reports the create-only review resources, which are answered,
// not stored (kubectl auth can-i / whoami, webhook token checks).
func isReview(res *resource) bool {
	switch res.Group + "/" + res.Name {
	case "authorization.k8s.io/selfsubjectaccessreviews", "authorization.k8s.io/subjectaccessreviews",
		"authorization.k8s.io/selfsubjectrulesreviews", "authorization.k8s.io/localsubjectaccessreviews",
		"authentication.k8s.io/selfsubjectreviews", "authentication.k8s.io/tokenreviews":
		return true
	}
	return false
}

func (s *Server) handleReview(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	obj := res.newObject()
	if _, err := decodeBody(r, body, obj, res.GroupVersionKind(), decodeOptions{fieldValidation: "Ignore"}); err != nil {
		writeError(w, err)
		return
	}
	u := userFrom(r.Context())
	var out runtime.Object = obj
	switch o := obj.(type) {
	case *authorizationv1.SelfSubjectAccessReview:
		o.Status = s.review(r, u, o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes)
	case *authorizationv1.SubjectAccessReview:
		o.Status = s.review(r, User{Name: o.Spec.User, UID: o.Spec.UID, Groups: o.Spec.Groups}, o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes)
	case *authorizationv1.LocalSubjectAccessReview:
		if o.Spec.ResourceAttributes != nil {
			o.Spec.ResourceAttributes.Namespace = ri.namespace
		}
		o.Status = s.review(r, User{Name: o.Spec.User, UID: o.Spec.UID, Groups: o.Spec.Groups}, o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes)
	case *authorizationv1.SelfSubjectRulesReview:
		if isMaster(u) {
			o.Status.ResourceRules = []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}
			o.Status.NonResourceRules = []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}}
		}
	case *authenticationv1.SelfSubjectReview:
		o.Status.UserInfo = authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
	case *authenticationv1.TokenReview:
		tu, ok := s.cfg.Tokens[o.Spec.Token]
		if !ok {
			tu, ok = s.serviceAccountUser(r.Context(), o.Spec.Token)
		}
		if ok {
			o.Status.Authenticated = true
			o.Status.User = authenticationv1.UserInfo{Username: tu.Name, UID: tu.UID, Groups: tu.Groups}
		}
		o.Spec.Token = "" // never echo a credential
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) review(r *http.Request, u User, ra *authorizationv1.ResourceAttributes, nra *authorizationv1.NonResourceAttributes) authorizationv1.SubjectAccessReviewStatus {
	if ra == nil {
		// Non-resource URLs: health and version are open; the rest is for
		// masters.
		return authorizationv1.SubjectAccessReviewStatus{Allowed: isMaster(u)}
	}
	ri := requestInfo{group: ra.Group, version: ra.Version, resource: ra.Resource,
		subresource: ra.Subresource, namespace: ra.Namespace, name: ra.Name, verb: ra.Verb}
	if ra.FieldSelector != nil {
		ri.fieldSelector = ra.FieldSelector.RawSelector
	}
	err := s.authorize(r.Context(), u, ri)
	if err != nil {
		return authorizationv1.SubjectAccessReviewStatus{Allowed: false, Reason: err.Error()}
	}
	return authorizationv1.SubjectAccessReviewStatus{Allowed: true}
}

func isMaster(u User) bool {
	for _, g := range u.Groups {
		if g == GroupMasters {
			return true
		}
	}
	return false
}
