package hosted

import (
	"fmt"
	"net/http"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/sources/hosted/gitserver"
)

// What a git request is authorized as: a verb on the "git" subresource of
// the source's Source object (gitops.kiln.dev/v1alpha1, sources/<name>).
// A role that may update sources/git and nothing else may push but do
// nothing else.
const (
	authGroup       = "gitops.kiln.dev"
	authResource    = "sources"
	authSubresource = "git"
	// VerbRead is asked for clone and fetch.
	VerbRead = "get"
	// VerbWrite is asked for push.
	VerbWrite = "update"
)

// TokenAuthorizer authorizes git requests with the API server's own
// bearer tokens: the token (from "Authorization: Bearer", or the password
// of Basic authentication, as git credential helpers send it) is checked
// with a TokenReview, then the user it names with an access review (see
// UserAuthorizer). No token, or an unknown one, is
// gitserver.ErrUnauthenticated. kube must be allowed to create both
// reviews. Use it where nothing has authenticated the request before.
func TokenAuthorizer(kube kubernetes.Interface) func(r *http.Request, source string, write bool) (string, error) {
	return func(r *http.Request, source string, write bool) (string, error) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			_, token, _ = r.BasicAuth()
		}
		token = strings.TrimSpace(token)
		if token == "" {
			return "", gitserver.ErrUnauthenticated
		}
		tr, err := kube.AuthenticationV1().TokenReviews().Create(r.Context(), &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			// The error never holds the token: the API does not echo it.
			return "", fmt.Errorf("token review: %w", err)
		}
		if !tr.Status.Authenticated {
			return "", gitserver.ErrUnauthenticated
		}
		return tr.Status.User.Username, review(r, kube, tr.Status.User, source, write)
	}
}

// UserAuthorizer authorizes git requests someone else has authenticated
// (the API server does, for the handlers it serves beside the API):
// userFrom returns the request's user, or false when there is none
// (gitserver.ErrUnauthenticated). The user must pass a
// SubjectAccessReview of VerbRead or, for a push, VerbWrite on
// sources/<name>/git in gitops.kiln.dev; a refusal is
// gitserver.ErrForbidden. kube must be allowed to create the review.
func UserAuthorizer(kube kubernetes.Interface, userFrom func(r *http.Request) (authenticationv1.UserInfo, bool)) func(r *http.Request, source string, write bool) (string, error) {
	return func(r *http.Request, source string, write bool) (string, error) {
		user, ok := userFrom(r)
		if !ok {
			return "", gitserver.ErrUnauthenticated
		}
		return user.Username, review(r, kube, user, source, write)
	}
}

// review asks whether user may read or write source's repository.
func review(r *http.Request, kube kubernetes.Interface, user authenticationv1.UserInfo, source string, write bool) error {
	verb := VerbRead
	if write {
		verb = VerbWrite
	}
	sar, err := kube.AuthorizationV1().SubjectAccessReviews().Create(r.Context(), &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user.Username, UID: user.UID, Groups: user.Groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Group: authGroup, Resource: authResource, Subresource: authSubresource, Name: source, Verb: verb,
			},
		}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("access review: %w", err)
	}
	if !sar.Status.Allowed {
		return gitserver.ErrForbidden
	}
	return nil
}
