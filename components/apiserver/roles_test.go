package apiserver_test

import (
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/testenv"
)

// The built-in roles: a viewer reads everything but Secrets and writes
// nothing; a pusher may only push to and fetch hosted repositories (the
// access review the git handler asks).
func TestServer_builtinRoles(t *testing.T) {
	env := testenv.Start(t, testenv.Options{ExtraTokens: map[string]apiserver.User{
		"viewer-token": {Name: "ci-viewer", Groups: []string{apiserver.GroupViewers}},
		"pusher-token": {Name: "ci-pusher", Groups: []string{apiserver.GroupPushers}},
	}})
	ctx := t.Context()
	if _, err := env.Clientset.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	viewer, pusher := clientAs(env, "viewer-token"), clientAs(env, "pusher-token")
	for _, tc := range []struct {
		name string
		call func() error
		want func(error) bool
	}{
		{"viewer lists pods", func() error { _, err := viewer.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); return err }, ok},
		{"viewer gets a namespace", func() error {
			_, err := viewer.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
			return err
		}, ok},
		{"viewer cannot read a Secret", func() error {
			_, err := viewer.CoreV1().Secrets("default").Get(ctx, "s", metav1.GetOptions{})
			return err
		}, apierrors.IsForbidden},
		{"viewer cannot create", func() error {
			_, err := viewer.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{})
			return err
		}, apierrors.IsForbidden},
		{"viewer cannot exec into a pod (a WebSocket exec is a GET)", func() error {
			return viewer.CoreV1().RESTClient().Get().Namespace("default").Resource("pods").Name("p").SubResource("exec").
				Param("command", "id").Param("stdout", "true").Do(ctx).Error()
		}, apierrors.IsForbidden},
		{"pusher cannot list pods", func() error { _, err := pusher.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); return err }, apierrors.IsForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !tc.want(err) {
				t.Errorf("error = %v", err)
			}
		})
	}
	review := func(user string, groups []string, verb string) bool {
		t.Helper()
		sar, err := env.Clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: groups, ResourceAttributes: &authorizationv1.ResourceAttributes{
				Group: "gitops.kiln.dev", Resource: "sources", Subresource: "git", Name: "app", Verb: verb}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	for _, tc := range []struct {
		user, group, verb string
		want              bool
	}{
		{"ci-pusher", apiserver.GroupPushers, "update", true},
		{"ci-pusher", apiserver.GroupPushers, "get", true},
		{"ci-pusher", apiserver.GroupPushers, "delete", false},
		{"ci-viewer", apiserver.GroupViewers, "get", true},
		{"ci-viewer", apiserver.GroupViewers, "update", false},
		{"someone", "developers", "get", false},
	} {
		if got := review(tc.user, []string{tc.group}, tc.verb); got != tc.want {
			t.Errorf("%s (%s) %s sources/git: allowed %v, want %v", tc.user, tc.group, tc.verb, got, tc.want)
		}
	}
}

func ok(err error) bool { return err == nil }

// clientAs is a client of env's API server with token.
func clientAs(env *testenv.Env, token string) kubernetes.Interface {
	rc := rest.CopyConfig(env.RESTConfig)
	rc.BearerToken = token
	return kubernetes.NewForConfigOrDie(rc)
}
