package apiserver_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/testenv"
)

// RBAC bindings grant what their roles say, where they say, to whom they
// name; the default ClusterRoles (view, edit, admin through aggregation)
// exist from the first start; a revoked binding counts at once.
func TestServer_rbac(t *testing.T) {
	env := testenv.Start(t, testenv.Options{ExtraTokens: map[string]apiserver.User{
		"alice-token": {Name: "alice", Groups: []string{"dev"}},
		"bot-token":   {Name: "system:serviceaccount:team:deployer", Groups: []string{"system:serviceaccounts"}},
	}})
	ctx := t.Context()
	admin := env.Clientset
	alice, bot := clientAs(env, "alice-token"), clientAs(env, "bot-token")
	for _, ns := range []string{"team", "other"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, cm := range []string{"allowed", "other"} {
			if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cm}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"cluster-admin", "admin", "edit", "view"} {
		if _, err := admin.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("default ClusterRole %s: %v", name, err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, err error, allowed bool) {
		t.Helper()
		switch {
		case allowed && err != nil:
			t.Errorf("%s: %v, want allowed", what, err)
		case !allowed && !apierrors.IsForbidden(err):
			t.Errorf("%s: %v, want Forbidden", what, err)
		}
	}
	listPods := func(c kubernetes.Interface, ns string) error {
		_, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err
	}
	check("alice lists pods in team before any binding", listPods(alice, "team"), false)

	// The group dev views team.
	_, err := admin.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "dev-view"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: "dev"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"}}, metav1.CreateOptions{})
	must(err)
	check("alice lists pods in team (view)", listPods(alice, "team"), true)
	check("alice lists pods in other", listPods(alice, "other"), false)
	topPods := func(ns string) error {
		return alice.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/" + ns + "/pods").Do(ctx).Error()
	}
	check("alice reads pod metrics in team (view aggregates the metrics reader)", topPods("team"), true)
	check("alice reads pod metrics in other", topPods("other"), false)
	_, err = alice.CoreV1().Secrets("team").List(ctx, metav1.ListOptions{})
	check("alice lists secrets in team (view has none)", err, false)
	_, err = alice.CoreV1().ConfigMaps("team").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{})
	check("alice creates a configmap in team (view)", err, false)

	// A Role naming one ConfigMap, bound to alice herself.
	_, err = admin.RbacV1().Roles("team").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "one-cm"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"allowed"}, Verbs: []string{"get", "update"}}}},
		metav1.CreateOptions{})
	must(err)
	_, err = admin.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice-one-cm"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "alice"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "one-cm"}}, metav1.CreateOptions{})
	must(err)
	cm, err := alice.CoreV1().ConfigMaps("team").Get(ctx, "allowed", metav1.GetOptions{})
	must(err)
	cm.Data = map[string]string{"k": "v"}
	_, err = alice.CoreV1().ConfigMaps("team").Update(ctx, cm, metav1.UpdateOptions{})
	check("alice updates the named configmap", err, true)
	other, err := admin.CoreV1().ConfigMaps("team").Get(ctx, "other", metav1.GetOptions{})
	must(err)
	_, err = alice.CoreV1().ConfigMaps("team").Update(ctx, other, metav1.UpdateOptions{})
	check("alice updates another configmap", err, false)

	// A service account's user, bound cluster-wide to edit (which
	// aggregates view): it deploys anywhere, and reads Secrets.
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "deployer-edit"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "deployer", Namespace: "team"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"}}, metav1.CreateOptions{})
	must(err)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}}}}}
	_, err = bot.AppsV1().Deployments("other").Create(ctx, dep, metav1.CreateOptions{})
	check("the service account creates a Deployment (edit)", err, true)
	check("the service account lists pods (view through edit)", listPods(bot, "other"), true)
	_, err = bot.RbacV1().Roles("other").List(ctx, metav1.ListOptions{})
	check("the service account lists roles (admin only)", err, false)
	_, err = bot.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	check("the service account lists nodes (cluster-scoped, not in edit)", err, false)

	// A changed Role counts at once, however often it was read before.
	role, err := admin.RbacV1().Roles("team").Get(ctx, "one-cm", metav1.GetOptions{})
	must(err)
	role.Rules[0].ResourceNames = []string{"other"}
	_, err = admin.RbacV1().Roles("team").Update(ctx, role, metav1.UpdateOptions{})
	must(err)
	for _, name := range []string{"allowed", "other"} {
		cm, err := admin.CoreV1().ConfigMaps("team").Get(ctx, name, metav1.GetOptions{})
		must(err)
		_, err = alice.CoreV1().ConfigMaps("team").Update(ctx, cm, metav1.UpdateOptions{})
		check("alice updates "+name+" after the Role names only other", err, name == "other")
	}

	// A ClusterRole that aggregates into view widens it; gone, it no
	// longer does.
	listSecrets := func() error {
		_, err := alice.CoreV1().Secrets("team").List(ctx, metav1.ListOptions{})
		return err
	}
	_, err = admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "secrets-view",
		Labels: map[string]string{"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list"}}}}, metav1.CreateOptions{})
	must(err)
	check("alice lists secrets in team (view aggregates secrets-view)", listSecrets(), true)
	must(admin.RbacV1().ClusterRoles().Delete(ctx, "secrets-view", metav1.DeleteOptions{}))
	check("alice lists secrets in team after secrets-view is gone", listSecrets(), false)

	// Revoked: it counts at once.
	must(admin.RbacV1().RoleBindings("team").Delete(ctx, "dev-view", metav1.DeleteOptions{}))
	check("alice lists pods after the binding is gone", listPods(alice, "team"), false)
}
