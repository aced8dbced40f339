package reconcile_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/kubelet/simulated"
)

// wantLines fails the test for each want the output lacks.
func wantLines(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("push output lacks %q:\n%s", w, out)
		}
	}
}

// A push to the hosted repository deploys: the output lists what was
// applied and the rollout until healthy, and ends with the summary; the
// cluster and the Source agree.
func TestPush_deploysAndReportsRollout(t *testing.T) {
	c := startPushCluster(t, pushOptions{})
	work := c.clone(t, c.token)
	first := c.commit(t, work, "web", map[string]string{
		"web.yaml":    pushDeployment("web", 3, "example.com/web:v1", nil),
		"config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config}\ndata: {greeting: hello}\n",
	})
	out, err := c.push(t, work, "origin", "HEAD:main")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	short := first[:7]
	wantLines(t, out,
		"remote: kiln: checking main@"+short+" (2 files)",
		"remote: kiln: create ConfigMap default/web-config (config.yaml)",
		"remote: kiln: create Deployment default/web (web.yaml)",
		"remote: kiln: applied main@"+short+" in ",
		"2 created, 0 configured, 0 unchanged, 0 pruned",
		"remote: kiln: Deployment default/web: healthy",
		"remote: kiln: deployed main@"+short+" in ",
	)
	d, err := c.kube.AppsV1().Deployments("default").Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.AvailableReplicas != 3 {
		t.Errorf("web: %d available replicas after the push returned, want 3", d.Status.AvailableReplicas)
	}
	if got := c.source(t).Status.LastAppliedRevision; got != "main@sha1:"+first {
		t.Errorf("Source lastAppliedRevision = %q, want main@sha1:%s", got, first)
	}

	// A change reports its fields, and the rollout of the new replicas.
	second := c.commit(t, work, "scale", map[string]string{"web.yaml": pushDeployment("web", 2, "example.com/web:v2", nil), "config.yaml": ""})
	out, err = c.push(t, work, "origin", "HEAD:main")
	if err != nil {
		t.Fatalf("second push: %v\n%s", err, out)
	}
	t.Logf("second push:\n%s", out)
	wantLines(t, out,
		"remote: kiln: change Deployment default/web (web.yaml): spec.replicas 3 → 2, spec.template.spec.containers[0].image",
		"remote: kiln: prune ConfigMap default/web-config (config.yaml)",
		"0 created, 1 configured, 0 unchanged, 1 pruned",
		"remote: kiln: deployed main@"+second[:7],
	)
	if _, err := c.kube.CoreV1().ConfigMaps("default").Get(t.Context(), "web-config", metav1.GetOptions{}); err == nil {
		t.Error("web-config still exists after the push that removed it")
	}
}

// A commit that fails validation is refused with the file and the field;
// the branch does not move and nothing in the cluster changes.
func TestPush_invalidCommitRefused(t *testing.T) {
	c := startPushCluster(t, pushOptions{})
	work := c.clone(t, c.token)
	good := c.commit(t, work, "web", map[string]string{"web.yaml": pushDeployment("web", 1, "example.com/web:v1", nil)})
	if out, err := c.push(t, work, "origin", "HEAD:main"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	before, err := c.kube.AppsV1().Deployments("default").Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		files map[string]string
		wants []string
	}{
		{
			name:  "unknown field",
			files: map[string]string{"web.yaml": strings.Replace(pushDeployment("web", 1, "example.com/web:v2", nil), "  replicas: 1", "  replicas: 1\n  replicaz: 2", 1)},
			wants: []string{"remote: kiln: error: web.yaml:", "Deployment default/web: spec.replicaz", "[remote rejected] HEAD -> main (kiln refused the commit)"},
		},
		{
			name:  "refused by the server",
			files: map[string]string{"web.yaml": pushDeployment("web", -1, "example.com/web:v2", nil)},
			wants: []string{"remote: kiln: error: web.yaml: Deployment default/web:", "spec.replicas", "[remote rejected]"},
		},
		{
			name:  "yaml syntax",
			files: map[string]string{"broken.yaml": "kind: [unclosed\n"},
			wants: []string{"remote: kiln: error: broken.yaml", "did not move and nothing was applied"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.git.must(t, work, "reset", "-q", "--hard", good)
			c.commit(t, work, tc.name, tc.files)
			out, err := c.push(t, work, "origin", "HEAD:main")
			if err == nil {
				t.Fatalf("push succeeded, want it refused:\n%s", out)
			}
			wantLines(t, out, tc.wants...)
			t.Logf("refused push:\n%s", out)
			if got := c.remoteMain(t); got != good {
				t.Errorf("main moved to %s, want %s", got, good)
			}
		})
	}
	after, err := c.kube.AppsV1().Deployments("default").Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("web changed (resourceVersion %s -> %s) by refused pushes", before.ResourceVersion, after.ResourceVersion)
	}
}

// A Deployment whose pods crash fails the push: the branch moved and the
// sync applied, but the output says the rollout failed and why.
func TestPush_crashingRolloutFails(t *testing.T) {
	c := startPushCluster(t, pushOptions{})
	work := c.clone(t, c.token)
	// minReadySeconds 1 (what a deadline under 600 s gives): a crashing
	// pod is Ready for the moment before its exit is seen, which must not
	// count as available.
	c.commit(t, work, "crash", map[string]string{"web.yaml": pushDeploymentDeadline("web", 2, "example.com/web:broken",
		map[string]string{simulated.AnnotationExitCode: "1"}, 300)})
	out, err := c.push(t, work, "origin", "HEAD:main")
	if err == nil {
		t.Fatalf("push of a crashing Deployment succeeded:\n%s", out)
	}
	wantLines(t, out, "remote: kiln: applied main@", "CrashLoopBackOff", "remote: kiln: deploy of main@",
		"(the branch moved, but the deploy is not healthy)")
}

// -o kiln.dry-run reports what would change and moves nothing; -o
// kiln.no-wait returns once applied; -o kiln.wait bounds the wait.
func TestPush_options(t *testing.T) {
	c := startPushCluster(t, pushOptions{})
	work := c.clone(t, c.token)
	first := c.commit(t, work, "web", map[string]string{"web.yaml": pushDeployment("web", 1, "example.com/web:v1", nil)})
	out, err := c.push(t, work, "-o", "kiln.dry-run", "origin", "HEAD:main")
	if err != nil {
		t.Fatalf("dry-run push: %v\n%s", err, out)
	}
	wantLines(t, out, "remote: kiln: dry run: a sync of main@"+first[:7]+" would:", "remote: kiln: create Deployment default/web (web.yaml)",
		"remote: kiln: dry run: the commit is valid; main did not move and nothing was applied")
	if got := c.remoteMain(t); got != "" {
		t.Errorf("main = %s after a dry run, want none", got)
	}
	if _, err := c.kube.AppsV1().Deployments("default").Get(t.Context(), "web", metav1.GetOptions{}); err == nil {
		t.Error("a dry run created the Deployment")
	}

	out, err = c.push(t, work, "-o", "kiln.no-wait", "origin", "HEAD:main")
	if err != nil {
		t.Fatalf("no-wait push: %v\n%s", err, out)
	}
	wantLines(t, out, "not waiting for the rollout (kiln.no-wait)")
	if strings.Contains(out, "healthy") {
		t.Errorf("a no-wait push waited for the rollout:\n%s", out)
	}

	c.commit(t, work, "never ready", map[string]string{"web.yaml": pushDeployment("web", 1, "example.com/web:v2",
		map[string]string{simulated.AnnotationStartDelay: "1h"})})
	out, err = c.push(t, work, "-o", "kiln.wait=2s", "origin", "HEAD:main")
	if err == nil {
		t.Fatalf("push of a Deployment that never starts succeeded:\n%s", out)
	}
	wantLines(t, out, "not healthy within 2s: Deployment default/web:")

	c.commit(t, work, "another", map[string]string{"web.yaml": pushDeployment("web", 1, "example.com/web:v3", nil)})
	out, err = c.push(t, work, "-o", "kiln.bogus", "origin", "HEAD:main")
	if err == nil {
		t.Fatalf("push with an unknown kiln option succeeded:\n%s", out)
	}
	wantLines(t, out, `unknown push option "kiln.bogus"`, "(unknown kiln push option)")
}

// A push without a token, or with one that may not push, is refused.
func TestPush_auth(t *testing.T) {
	c := startPushCluster(t, pushOptions{})
	work := c.clone(t, c.token)
	c.commit(t, work, "web", map[string]string{"web.yaml": pushDeployment("web", 1, "example.com/web:v1", nil)})
	// Refused with 401, git asks for credentials, which the test's
	// environment cannot give.
	const unauthenticated = "could not read Username"
	for _, tc := range []struct{ name, header, want string }{
		{"no token", "", unauthenticated},
		{"unknown token", "Authorization: Bearer nope", unauthenticated},
		{"viewer", "Authorization: Bearer " + pushViewerToken, "403"},
	} {
		out, err := c.git.run(t, work, "-c", "http.extraHeader=", "-c", "http.extraHeader="+tc.header, "push", "origin", "HEAD:main")
		if tc.header == "" {
			out, err = c.git.run(t, work, "-c", "http.extraHeader=", "push", "origin", "HEAD:main")
		}
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: push %v, want refused with %q:\n%s", tc.name, err, tc.want, out)
		}
	}
	if got := c.remoteMain(t); got != "" {
		t.Errorf("main = %s, want no push to have landed", got)
	}
}
