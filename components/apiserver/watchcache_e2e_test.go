package apiserver_test

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"kiln.dev/kiln/components/testenv"
)

// TestWatch_nodeNameSelector_followsBinding: a kubelet's watch of its node's
// pods (served from the watch cache's spec.nodeName index) sees a pod when
// it is bound there, its updates and its delete, and nothing of pods on
// other nodes or never bound; a second watch resuming from the first
// event's resourceVersion gets exactly the later ones.
func TestWatch_nodeNameSelector_followsBinding(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	const ns = "default"
	pods := env.Clientset.CoreV1().Pods(ns)
	opts := metav1.ListOptions{FieldSelector: "spec.nodeName=n1"}
	list, err := pods.List(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.ResourceVersion = list.ResourceVersion
	wa, err := pods.Watch(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Stop()

	w := &wcWriter{t: t, cs: env.Clientset, ns: ns}
	bind := func(name, node string) string {
		t.Helper()
		if err := pods.Bind(t.Context(), &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("bind %s to %s: %v", name, node, err)
		}
		p, err := pods.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.ResourceVersion
	}
	w.create("mine", nil)
	w.create("theirs", nil)
	w.create("unbound", nil)
	w.ops = nil
	w.record(watch.Added, "mine", bind("mine", "n1"))
	bind("theirs", "n2")
	w.patch("theirs", `{"metadata":{"labels":{"x":"1"}}}`, "")
	w.ops = w.ops[:len(w.ops)-1]
	w.patch("mine", `{"metadata":{"labels":{"x":"1"}}}`, watch.Modified)
	w.delete("unbound")
	w.ops = w.ops[:len(w.ops)-1]
	// A bound pod's delete is graceful; a zero grace period removes it,
	// as the kubelet's final delete does.
	zero := int64(0)
	obj, err := env.Clientset.CoreV1().RESTClient().Delete().Namespace(ns).Resource("pods").Name("mine").
		Body(&metav1.DeleteOptions{GracePeriodSeconds: &zero}).Do(t.Context()).Get()
	if err != nil {
		t.Fatalf("delete mine: %v", err)
	}
	w.record(watch.Deleted, "mine", obj.(*corev1.Pod).ResourceVersion)

	got := wcReadOps(t, wa, len(w.ops))
	if !slices.Equal(got, w.ops) {
		t.Fatalf("node n1 watch:\n got %v\nwant %v", got, w.ops)
	}

	opts.ResourceVersion = w.ops[0].rv
	again, err := pods.Watch(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Stop()
	w.create("sentinel", nil)
	w.ops = w.ops[:len(w.ops)-1]
	w.record(watch.Added, "sentinel", bind("sentinel", "n1"))
	if got := wcReadOps(t, again, len(w.ops)-1); !slices.Equal(got, w.ops[1:]) {
		t.Fatalf("resumed node n1 watch:\n got %v\nwant %v", got, w.ops[1:])
	}
}
