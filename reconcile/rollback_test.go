package reconcile_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/kubelet/simulated"
	"kiln.dev/kiln/reconcile"
)

// With rollback: auto, a pushed Deployment whose pods crash is rolled
// back when it passes its progress deadline: the push says so and fails,
// the last healthy revision is live again and its pods kept serving
// throughout, the Source's status and an Event record it, and the branch
// still names the pushed commit.
func TestPush_rollbackAuto(t *testing.T) {
	// A crash-looping pod is briefly Ready after each restart, which the
	// deployment controller counts as progress: with a back-off longer
	// than the 3s progress deadline, the deadline passes before the
	// second restart.
	c := startPushCluster(t, pushOptions{rollback: reconcile.RollbackAuto, backoff: 30 * time.Second})
	work := c.clone(t, c.token)
	good := c.commit(t, work, "v1", map[string]string{"web.yaml": pushDeploymentDeadline("web", 3, "example.com/web:v1", nil, 3)})
	if out, err := c.push(t, work, "origin", "HEAD:main"); err != nil {
		t.Fatalf("push v1: %v\n%s", err, out)
	}
	servingBefore := c.readyPods(t, "app=web")
	if len(servingBefore) != 3 {
		t.Fatalf("%d ready pods after v1, want 3: %v", len(servingBefore), servingBefore)
	}

	bad := c.commit(t, work, "v2 crashes", map[string]string{"web.yaml": pushDeploymentDeadline("web", 3, "example.com/web:v2", map[string]string{simulated.AnnotationExitCode: "1"}, 3)})
	out, err := c.push(t, work, "origin", "HEAD:main")
	if err == nil {
		t.Fatalf("push of a crashing revision succeeded:\n%s", out)
	}
	t.Logf("push:\n%s", out)
	wantLines(t, out, "CrashLoopBackOff", "remote: kiln: rolled back: re-applied main@"+good[:7]+", the last healthy revision; the branch still names main@"+bad[:7],
		"remote: kiln: deploy of main@"+bad[:7]+" failed after ", "(deploy failed; rolled back to main@"+good[:7]+")")

	if got := c.remoteMain(t); got != bad {
		t.Errorf("main = %s, want the pushed %s (the branch is not rewritten)", got, bad)
	}
	src := c.source(t)
	if src.Status.LastAppliedRevision != "main@sha1:"+good {
		t.Errorf("lastAppliedRevision = %s, want main@sha1:%s", src.Status.LastAppliedRevision, good)
	}
	if h := src.Status.History; len(h) == 0 || h[0].RollbackOf != "main@sha1:"+bad || h[0].Revision != "main@sha1:"+good {
		t.Errorf("history[0] = %+v, want a re-apply of %s for %s", h[0], good, bad)
	}
	cond := meta.FindStatusCondition(src.Status.Conditions, reconcile.ConditionRolledBack)
	if cond == nil || cond.Status != metav1.ConditionTrue || !strings.Contains(cond.Message, "main@sha1:"+bad) || !strings.Contains(cond.Message, "progress deadline") {
		t.Errorf("RolledBack condition = %+v", cond)
	}
	events, err := c.kube.CoreV1().Events("default").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(events.Items, func(e corev1.Event) bool { return e.Reason == "RolledBack" && e.InvolvedObject.Name == "app" }) {
		t.Error("no RolledBack Event on Source app")
	}
	pushEventually(t, "v1 rolled out again", func() bool {
		d, err := c.kube.AppsV1().Deployments("default").Get(t.Context(), "web", metav1.GetOptions{})
		return err == nil && d.Spec.Template.Spec.Containers[0].Image == "example.com/web:v1" && d.Status.AvailableReplicas == 3 &&
			d.Status.UpdatedReplicas == 3 && d.Status.Replicas == 3
	})
	if after := c.readyPods(t, "app=web"); !slices.Equal(after, servingBefore) {
		t.Errorf("ready pods %v after the rollback, want the v1 pods %v serving throughout", after, servingBefore)
	}

	// The next good push clears the condition.
	c.commit(t, work, "v3", map[string]string{"web.yaml": pushDeploymentDeadline("web", 3, "example.com/web:v3", nil, 3)})
	if out, err := c.push(t, work, "origin", "HEAD:main"); err != nil {
		t.Fatalf("push v3: %v\n%s", err, out)
	}
	if cond := meta.FindStatusCondition(c.source(t).Status.Conditions, reconcile.ConditionRolledBack); cond != nil {
		t.Errorf("RolledBack condition %+v after a healthy push", cond)
	}
}

// The last healthy revision outlives the reconciler: it is recorded in
// the Source's status, and a new reconciler (a restarted kiln, or another
// server after a failover) that applies a crashing revision rolls back to
// it, reading it from the hosted repository.
func TestRollbackAuto_afterRestart(t *testing.T) {
	c := startPushCluster(t, pushOptions{rollback: reconcile.RollbackAuto, backoff: 30 * time.Second})
	work := c.clone(t, c.token)
	good := c.commit(t, work, "v1", map[string]string{"web.yaml": pushDeploymentDeadline("web", 2, "example.com/web:v1", nil, 3)})
	if out, err := c.push(t, work, "origin", "HEAD:main"); err != nil {
		t.Fatalf("push v1: %v\n%s", err, out)
	}
	pushEventually(t, "v1 recorded as the last healthy revision", func() bool {
		return c.source(t).Status.LastHealthyRevision == "main@sha1:"+good
	})

	// The crashing commit goes straight into the repository while no
	// reconciler runs (a push the old server stored as it went away): the
	// new reconciler's first snapshot is it, so it never saw v1 healthy.
	var bad string
	c.restartReconciler(t, func() {
		bad = c.commit(t, work, "v2 crashes", map[string]string{"web.yaml": pushDeploymentDeadline("web", 2, "example.com/web:v2", map[string]string{simulated.AnnotationExitCode: "1"}, 3)})
		c.git.must(t, work, "push", "-q", c.dir, "HEAD:main")
	})
	pushEventually(t, "v2 applied by the new reconciler, then rolled back to v1", func() bool {
		st := c.source(t).Status
		return len(st.History) > 0 && st.History[0].RollbackOf == "main@sha1:"+bad && st.LastAppliedRevision == "main@sha1:"+good
	})
	pushEventually(t, "v1 rolled out again", func() bool {
		d, err := c.kube.AppsV1().Deployments("default").Get(t.Context(), "web", metav1.GetOptions{})
		return err == nil && d.Spec.Template.Spec.Containers[0].Image == "example.com/web:v1" && d.Status.AvailableReplicas == 2
	})
}
