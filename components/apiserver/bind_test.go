package apiserver_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/testenv"
)

// TestBinding_bind: pods/binding sets spec.nodeName, the PodScheduled
// condition and the binding's annotations and nothing else, and answers
// 409 as kube's BindingREST does for a bound, gated or terminating pod and
// for a UID or resourceVersion precondition that fails.
func TestBinding_bind(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	pods := env.Clientset.CoreV1().Pods("default")
	create := func(t *testing.T, name string, change func(*corev1.Pod)) *corev1.Pod {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"keep": "me"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
		if change != nil {
			change(p)
		}
		out, err := pods.Create(t.Context(), p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	binding := func(name string) *corev1.Binding {
		return &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-a"}}
	}
	wantConflict := func(t *testing.T, err error, msg string) {
		t.Helper()
		if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), msg) {
			t.Errorf("bind: %v, want 409 containing %q", err, msg)
		}
	}

	t.Run("sets nodeName, PodScheduled and annotations only", func(t *testing.T) {
		before := create(t, "plain", nil)
		// The scheduler's earlier failure, which binding turns True.
		before.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/0 nodes"}}
		before, err := pods.UpdateStatus(t.Context(), before, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b := binding("plain")
		b.Annotations = map[string]string{"scheduled-by": "test"}
		b.UID = before.UID
		b.ResourceVersion = before.ResourceVersion
		start := time.Now().Add(-time.Second)
		if err := pods.Bind(t.Context(), b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		after, err := pods.Get(t.Context(), "plain", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if after.Spec.NodeName != "node-a" {
			t.Errorf("nodeName %q, want node-a", after.Spec.NodeName)
		}
		if len(after.Status.Conditions) != 1 {
			t.Fatalf("conditions %+v, want one", after.Status.Conditions)
		}
		c := after.Status.Conditions[0]
		if c.Type != corev1.PodScheduled || c.Status != corev1.ConditionTrue || c.Reason != "" || c.Message != "" || c.LastTransitionTime.Time.Before(start.Truncate(time.Second)) {
			t.Errorf("condition %+v, want PodScheduled True from now without reason", c)
		}
		if after.Annotations["keep"] != "me" || after.Annotations["scheduled-by"] != "test" {
			t.Errorf("annotations %v, want keep=me and scheduled-by=test", after.Annotations)
		}
		// Everything else is as it was.
		after.Spec.NodeName, after.Status.Conditions, after.Annotations = "", before.Status.Conditions, before.Annotations
		after.ResourceVersion = before.ResourceVersion
		if !equality.Semantic.DeepEqual(before, after) {
			t.Errorf("binding changed more than nodeName, PodScheduled and annotations:\nbefore %+v\nafter  %+v", before, after)
		}

		wantConflict(t, pods.Bind(t.Context(), binding("plain"), metav1.CreateOptions{}), `pods/binding "plain": pod plain is already assigned to node "node-a"`)
	})

	t.Run("preconditions", func(t *testing.T) {
		p := create(t, "pre", nil)
		b := binding("pre")
		b.UID = types.UID("0000")
		wantConflict(t, pods.Bind(t.Context(), b, metav1.CreateOptions{}), "Precondition failed: UID in precondition: 0000")
		b = binding("pre")
		b.ResourceVersion = "1"
		wantConflict(t, pods.Bind(t.Context(), b, metav1.CreateOptions{}), "Precondition failed: ResourceVersion in precondition: 1")
		got, err := pods.Get(t.Context(), "pre", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != p.ResourceVersion || got.Spec.NodeName != "" {
			t.Errorf("failed binds wrote: rv %s→%s nodeName %q", p.ResourceVersion, got.ResourceVersion, got.Spec.NodeName)
		}
	})

	t.Run("scheduling gates", func(t *testing.T) {
		create(t, "gated", func(p *corev1.Pod) { p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}} })
		wantConflict(t, pods.Bind(t.Context(), binding("gated"), metav1.CreateOptions{}), "pod gated has non-empty .spec.schedulingGates")
	})

	t.Run("terminating", func(t *testing.T) {
		create(t, "leaving", func(p *corev1.Pod) { p.Finalizers = []string{"example.com/hold"} })
		if err := pods.Delete(t.Context(), "leaving", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		wantConflict(t, pods.Bind(t.Context(), binding("leaving"), metav1.CreateOptions{}), "pod leaving is being deleted, cannot be assigned to a host")
	})

	t.Run("missing pod", func(t *testing.T) {
		if err := pods.Bind(t.Context(), binding("nobody"), metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("bind: %v, want NotFound", err)
		}
	})

	t.Run("dry run writes nothing", func(t *testing.T) {
		p := create(t, "dry", nil)
		if err := pods.Bind(t.Context(), binding("dry"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatal(err)
		}
		got, err := pods.Get(t.Context(), "dry", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != p.ResourceVersion || got.Spec.NodeName != "" {
			t.Errorf("dry run wrote: rv %s→%s nodeName %q", p.ResourceVersion, got.ResourceVersion, got.Spec.NodeName)
		}
	})
}
