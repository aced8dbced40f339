package daemonset_test

// Tests of the DaemonSet controller against a real etcd and API server
// (testenv). No scheduler or StandInKubelet runs: the tests create the
// Nodes themselves and play kubelet with fakeKubelet, which marks bound
// Pods Running and Ready and removes Pods whose deletion has started.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"kiln.dev/kiln/components/controllers/daemonset"
	"kiln.dev/kiln/components/testenv"
)

const (
	ns        = "default"
	waitLimit = 30 * time.Second
)

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		<-tick.C
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// runController runs the controller until the test ends.
func runController(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	f := informers.NewSharedInformerFactory(cs, 0)
	events := record.NewBroadcaster()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	c, err := daemonset.New(daemonset.Config{Client: cs, Informers: f, Events: events, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	f.Start(ctx.Done())
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Run did not return within %v of cancel", waitLimit)
		}
		f.Shutdown()
		events.Shutdown()
	})
}

// waitEvents waits until the Events about ds, as "Type Reason Message
// (source)" lines, satisfy cond.
func waitEvents(t *testing.T, cs kubernetes.Interface, ds *appsv1.DaemonSet, what string, cond func([]string) bool) {
	t.Helper()
	eventually(t, what, func() bool {
		l, err := cs.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(ds.UID)).String(),
		})
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, e := range l.Items {
			lines = append(lines, fmt.Sprintf("%s %s %s (%s)", e.Type, e.Reason, e.Message, e.Source.Component))
		}
		return cond(lines)
	})
}

// fakeKubelet marks every bound Pod Running and Ready after delay, and
// removes Pods whose graceful deletion has started. It stops at cleanup.
func fakeKubelet(t *testing.T, cs kubernetes.Interface, delay time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for ctx.Err() == nil {
			w, err := cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{})
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				pod, ok := ev.Object.(*corev1.Pod)
				if !ok || ev.Type == watch.Deleted {
					continue
				}
				pods := cs.CoreV1().Pods(pod.Namespace)
				switch {
				case pod.DeletionTimestamp != nil:
					zero := int64(0)
					_ = pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID}})
				case pod.Spec.NodeName != "" && pod.Status.Phase != corev1.PodRunning:
					wg.Go(func() {
						select {
						case <-time.After(delay):
						case <-ctx.Done():
							return
						}
						p := pod.DeepCopy()
						now := metav1.Now()
						p.Status.Phase = corev1.PodRunning
						p.Status.StartTime = &now
						p.Status.Conditions = append(p.Status.Conditions,
							corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
							corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now})
						_, _ = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
					})
				}
			}
			w.Stop()
		}
	})
}

func createNode(t *testing.T, cs kubernetes.Interface, name string, labels map[string]string, taints ...corev1.Taint) {
	t.Helper()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: taints},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}},
	}
	if _, err := cs.CoreV1().Nodes().Create(t.Context(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func newDS(name string, nodeSelector map[string]string) *appsv1.DaemonSet {
	sel := map[string]string{"app": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{
					NodeSelector: nodeSelector,
					Containers:   []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}},
				},
			},
		},
	}
}

func createDS(t *testing.T, cs kubernetes.Interface, ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	t.Helper()
	out, err := cs.AppsV1().DaemonSets(ns).Create(t.Context(), ds, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func getDS(t *testing.T, cs kubernetes.Interface, name string) *appsv1.DaemonSet {
	t.Helper()
	ds, err := cs.AppsV1().DaemonSets(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// livePods lists the DaemonSet's Pods that are not terminating.
func livePods(t *testing.T, cs kubernetes.Interface, name string) []corev1.Pod {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// nodesOf is the sorted nodeNames of pods.
func nodesOf(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Spec.NodeName)
	}
	slices.Sort(out)
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitOnNodes waits until the DaemonSet's live Pods are exactly one on
// each of nodes, all Ready, and returns them.
func waitOnNodes(t *testing.T, cs kubernetes.Interface, name string, nodes ...string) []corev1.Pod {
	t.Helper()
	slices.Sort(nodes)
	var pods []corev1.Pod
	eventually(t, fmt.Sprintf("ready pods exactly on %v", nodes), func() bool {
		pods = livePods(t, cs, name)
		return slices.Equal(nodesOf(pods), nodes) && !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return !podReady(&p) })
	})
	return pods
}

func wantStatus(t *testing.T, cs kubernetes.Interface, name string, want appsv1.DaemonSetStatus) {
	t.Helper()
	var got appsv1.DaemonSetStatus
	eventually(t, "status", func() bool {
		ds := getDS(t, cs, name)
		got = ds.Status
		want.ObservedGeneration = ds.Generation
		return got.DesiredNumberScheduled == want.DesiredNumberScheduled &&
			got.CurrentNumberScheduled == want.CurrentNumberScheduled &&
			got.NumberReady == want.NumberReady &&
			got.NumberAvailable == want.NumberAvailable &&
			got.NumberUnavailable == want.NumberUnavailable &&
			got.UpdatedNumberScheduled == want.UpdatedNumberScheduled &&
			got.NumberMisscheduled == want.NumberMisscheduled &&
			got.ObservedGeneration == want.ObservedGeneration
	})
}

func TestController_placement(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	worker := map[string]string{"role": "worker"}
	createNode(t, cs, "n1", worker)
	createNode(t, cs, "n2", worker, corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule})
	createNode(t, cs, "n3", map[string]string{"role": "other"})
	fakeKubelet(t, cs, 0)
	runController(t, cs)

	ds := createDS(t, cs, newDS("agent", worker))
	pods := waitOnNodes(t, cs, "agent", "n1")
	p := pods[0]
	if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != ds.UID || ref.Kind != "DaemonSet" {
		t.Errorf("controller ref = %+v, want DaemonSet %s", ref, ds.UID)
	}
	if p.Labels[daemonset.LabelRevisionHash] == "" {
		t.Errorf("no %s label: %v", daemonset.LabelRevisionHash, p.Labels)
	}
	if got, want := p.Labels[daemonset.LabelTemplateGeneration], fmt.Sprint(ds.Generation); got != want {
		t.Errorf("%s = %q, want %q", daemonset.LabelTemplateGeneration, got, want)
	}
	terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchFields) != 1 || terms[0].MatchFields[0].Values[0] != "n1" {
		t.Errorf("node affinity = %+v, want metadata.name In [n1]", terms)
	}
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable, corev1.TaintNodeUnschedulable} {
		if !slices.ContainsFunc(p.Spec.Tolerations, func(tl corev1.Toleration) bool { return tl.Key == key }) {
			t.Errorf("no toleration for %s: %+v", key, p.Spec.Tolerations)
		}
	}
	wantStatus(t, cs, "agent", appsv1.DaemonSetStatus{DesiredNumberScheduled: 1, CurrentNumberScheduled: 1,
		NumberReady: 1, NumberAvailable: 1, UpdatedNumberScheduled: 1})

	// A new eligible Node gets a Pod.
	createNode(t, cs, "n4", worker)
	waitOnNodes(t, cs, "agent", "n1", "n4")

	// A Node that loses the selected label loses its Pod.
	if _, err := cs.CoreV1().Nodes().Patch(t.Context(), "n1", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"role":null}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitOnNodes(t, cs, "agent", "n4")
	wantStatus(t, cs, "agent", appsv1.DaemonSetStatus{DesiredNumberScheduled: 1, CurrentNumberScheduled: 1,
		NumberReady: 1, NumberAvailable: 1, UpdatedNumberScheduled: 1})

	// A deleted Node's Pod is deleted.
	createNode(t, cs, "n5", worker)
	waitOnNodes(t, cs, "agent", "n4", "n5")
	if err := cs.CoreV1().Nodes().Delete(t.Context(), "n5", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitOnNodes(t, cs, "agent", "n4")

	// An extra Pod on a Node is deleted. (The oldest is kept; both may
	// have been created in the same second, so either may be.)
	extra := p.DeepCopy()
	extra.ObjectMeta = metav1.ObjectMeta{GenerateName: "agent-extra-", Namespace: ns, Labels: p.Labels, OwnerReferences: p.OwnerReferences}
	extra.Spec.NodeName = "n4"
	extra.Status = corev1.PodStatus{}
	if _, err := cs.CoreV1().Pods(ns).Create(t.Context(), extra, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "one pod left on n4", func() bool {
		pods := livePods(t, cs, "agent")
		return len(pods) == 1 && pods[0].Spec.NodeName == "n4"
	})

	// Every create and delete is an Event about the DaemonSet, as
	// kubectl describe ds shows them: the Pods for n1, n4 and n5 created;
	// n1's, n5's and the extra one deleted.
	var events []string
	waitEvents(t, cs, ds, "SuccessfulCreate and SuccessfulDelete events", func(lines []string) bool {
		events = lines
		created, deleted := 0, 0
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, "Normal SuccessfulCreate Created pod: agent-") && strings.HasSuffix(l, "(daemonset-controller)"):
				created++
			case strings.HasPrefix(l, "Normal SuccessfulDelete Deleted pod: agent-") && strings.HasSuffix(l, "(daemonset-controller)"):
				deleted++
			}
		}
		return created == 3 && deleted == 3
	})
	if first := "Normal SuccessfulCreate Created pod: " + p.Name + " (daemonset-controller)"; !slices.Contains(events, first) {
		t.Errorf("events %q lack %q", events, first)
	}
}

func TestController_nodeAffinityAndTolerations(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	createNode(t, cs, "a", map[string]string{"zone": "z1"})
	createNode(t, cs, "b", map[string]string{"zone": "z2"})
	createNode(t, cs, "c", map[string]string{"zone": "z1", "gpu": "yes"},
		corev1.Taint{Key: "gpu", Value: "yes", Effect: corev1.TaintEffectNoSchedule})
	createNode(t, cs, "d", map[string]string{"zone": "z1"},
		corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	fakeKubelet(t, cs, 0)
	runController(t, cs)

	ds := newDS("aff", nil)
	ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z1"}}},
		}}},
	}}
	ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpEqual, Value: "yes", Effect: corev1.TaintEffectNoSchedule}}
	createDS(t, cs, ds)
	// b fails the affinity; c's taint is tolerated; d is cordoned, which
	// DaemonSet Pods tolerate by default.
	pods := waitOnNodes(t, cs, "aff", "a", "c", "d")
	for _, p := range pods {
		terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != 1 || len(terms[0].MatchExpressions) != 1 || len(terms[0].MatchFields) != 1 || terms[0].MatchFields[0].Values[0] != p.Spec.NodeName {
			t.Errorf("pod on %s: affinity terms %+v", p.Spec.NodeName, terms)
		}
	}
	// A NoExecute taint the Pod does not tolerate evicts it.
	if _, err := cs.CoreV1().Nodes().Patch(t.Context(), "a", types.MergePatchType,
		[]byte(`{"spec":{"taints":[{"key":"maint","effect":"NoExecute"}]}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitOnNodes(t, cs, "aff", "c", "d")
	wantStatus(t, cs, "aff", appsv1.DaemonSetStatus{DesiredNumberScheduled: 2, CurrentNumberScheduled: 2,
		NumberReady: 2, NumberAvailable: 2, UpdatedNumberScheduled: 2})
}

// unavailableTracker watches Pods and records the most Nodes of nodes
// that at one moment had no live Ready Pod of app.
type unavailableTracker struct {
	max atomic.Int32
}

func trackUnavailable(t *testing.T, cs kubernetes.Interface, app string, nodes []string) *unavailableTracker {
	t.Helper()
	tr := &unavailableTracker{}
	l, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]*corev1.Pod{}
	for i := range l.Items {
		pods[l.Items[i].Name] = &l.Items[i]
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + app, ResourceVersion: l.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); w.Stop(); wg.Wait() })
	wg.Go(func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				delete(pods, p.Name)
			} else {
				pods[p.Name] = p
			}
			var n int32
			for _, node := range nodes {
				available := false
				for _, q := range pods {
					if q.Spec.NodeName == node && q.DeletionTimestamp == nil && podReady(q) {
						available = true
					}
				}
				if !available {
					n++
				}
			}
			if n > tr.max.Load() {
				tr.max.Store(n)
			}
		}
	})
	return tr
}

func TestController_rollingUpdate(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	nodes := []string{"n1", "n2", "n3", "n4"}
	for _, n := range nodes {
		createNode(t, cs, n, nil)
	}
	// Pods become Ready a little after they start, so that a rollout that
	// did not wait for readiness would show more than one unavailable.
	fakeKubelet(t, cs, 100*time.Millisecond)
	runController(t, cs)

	ds := newDS("roll", nil)
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: new(intstr.FromInt32(1))}}
	createDS(t, cs, ds)
	old := waitOnNodes(t, cs, "roll", nodes...)
	oldHash := old[0].Labels[daemonset.LabelRevisionHash]
	wantStatus(t, cs, "roll", appsv1.DaemonSetStatus{DesiredNumberScheduled: 4, CurrentNumberScheduled: 4,
		NumberReady: 4, NumberAvailable: 4, UpdatedNumberScheduled: 4})

	tr := trackUnavailable(t, cs, "roll", nodes)
	if _, err := cs.AppsV1().DaemonSets(ns).Patch(t.Context(), "roll", types.MergePatchType,
		[]byte(`{"spec":{"template":{"metadata":{"annotations":{"v":"2"}}}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	var newHash string
	eventually(t, "every pod on the new hash and ready", func() bool {
		pods := livePods(t, cs, "roll")
		if len(pods) != len(nodes) {
			return false
		}
		for _, p := range pods {
			h := p.Labels[daemonset.LabelRevisionHash]
			if h == oldHash || (newHash != "" && h != newHash) || !podReady(&p) || p.Annotations["v"] != "2" {
				return false
			}
			newHash = h
		}
		return slices.Equal(nodesOf(pods), nodes)
	})
	wantStatus(t, cs, "roll", appsv1.DaemonSetStatus{DesiredNumberScheduled: 4, CurrentNumberScheduled: 4,
		NumberReady: 4, NumberAvailable: 4, UpdatedNumberScheduled: 4})
	switch m := tr.max.Load(); {
	case m > 1:
		t.Errorf("%d nodes were unavailable at once, maxUnavailable is 1", m)
	case m < 1:
		t.Errorf("no node was ever unavailable: the pods were not replaced")
	}
}

func TestController_onDelete(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	createNode(t, cs, "n1", nil)
	createNode(t, cs, "n2", nil)
	fakeKubelet(t, cs, 0)
	runController(t, cs)

	ds := newDS("od", nil)
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	createDS(t, cs, ds)
	old := waitOnNodes(t, cs, "od", "n1", "n2")
	oldHash := old[0].Labels[daemonset.LabelRevisionHash]

	if _, err := cs.AppsV1().DaemonSets(ns).Patch(t.Context(), "od", types.MergePatchType,
		[]byte(`{"spec":{"template":{"metadata":{"annotations":{"v":"2"}}}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// Once the new generation is observed, nothing is updated...
	wantStatus(t, cs, "od", appsv1.DaemonSetStatus{DesiredNumberScheduled: 2, CurrentNumberScheduled: 2,
		NumberReady: 2, NumberAvailable: 2, UpdatedNumberScheduled: 0})
	for _, p := range livePods(t, cs, "od") {
		if p.Labels[daemonset.LabelRevisionHash] != oldHash {
			t.Fatalf("pod %s replaced under OnDelete", p.Name)
		}
	}
	// ...until the user deletes a Pod.
	var victim corev1.Pod
	for _, p := range old {
		if p.Spec.NodeName == "n1" {
			victim = p
		}
	}
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitOnNodes(t, cs, "od", "n1", "n2")
	for _, p := range pods {
		replaced := p.Labels[daemonset.LabelRevisionHash] != oldHash
		if replaced != (p.Spec.NodeName == "n1") {
			t.Errorf("pod on %s: hash %s (old %s)", p.Spec.NodeName, p.Labels[daemonset.LabelRevisionHash], oldHash)
		}
	}
	wantStatus(t, cs, "od", appsv1.DaemonSetStatus{DesiredNumberScheduled: 2, CurrentNumberScheduled: 2,
		NumberReady: 2, NumberAvailable: 2, UpdatedNumberScheduled: 1})
}

// kubectl runs the real kubectl against env, with a HOME of its own so
// that no discovery cache is shared, and returns its combined output.
func kubectl(t *testing.T, env *testenv.Env, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), testenv.Kubectl(t), append([]string{"--kubeconfig", env.Kubeconfig, "-n", ns}, args...)...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// revisions lists the DaemonSet's ControllerRevisions as "revision:hash",
// oldest first.
func revisions(t *testing.T, cs kubernetes.Interface, ds *appsv1.DaemonSet) []string {
	t.Helper()
	l, err := cs.AppsV1().ControllerRevisions(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=" + ds.Name})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range l.Items {
		if metav1.IsControlledBy(&r, ds) {
			out = append(out, fmt.Sprintf("%d:%s", r.Revision, r.Labels[daemonset.LabelRevisionHash]))
		}
	}
	slices.Sort(out)
	return out
}

// Every template the DaemonSet has had is a ControllerRevision, as in
// kube, so that kubectl rollout history and undo work; going back to an
// earlier template renumbers its revision rather than adding one, and
// only spec.revisionHistoryLimit old ones are kept.
func TestController_history(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	testenv.Kubectl(t)
	cs := env.Clientset
	createNode(t, cs, "n1", nil)
	fakeKubelet(t, cs, 0)
	runController(t, cs)

	spec := newDS("hist", nil)
	spec.Spec.RevisionHistoryLimit = new(int32(2))
	ds := createDS(t, cs, spec)
	setV := func(v string) string {
		t.Helper()
		if _, err := cs.AppsV1().DaemonSets(ns).Patch(t.Context(), "hist", types.MergePatchType,
			fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{"v":%q}}}}}`, v), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		var hash string
		eventually(t, "the pod of v="+v, func() bool {
			pods := livePods(t, cs, "hist")
			if len(pods) != 1 || pods[0].Annotations["v"] != v || !podReady(&pods[0]) {
				return false
			}
			hash = pods[0].Labels[daemonset.LabelRevisionHash]
			return true
		})
		return hash
	}
	h1 := waitOnNodes(t, cs, "hist", "n1")[0].Labels[daemonset.LabelRevisionHash]
	h2 := setV("2")
	h3 := setV("3")
	eventually(t, "three revisions", func() bool {
		return slices.Equal(revisions(t, cs, ds), []string{"1:" + h1, "2:" + h2, "3:" + h3})
	})
	out := kubectl(t, env, "rollout", "history", "ds/hist")
	if !regexp.MustCompile(`(?m)^REVISION\s+CHANGE-CAUSE\n1\s+<none>\n2\s+<none>\n3\s+<none>`).MatchString(out) {
		t.Errorf("kubectl rollout history ds/hist:\n%s", out)
	}
	if out := kubectl(t, env, "rollout", "history", "ds/hist", "--revision=2"); !strings.Contains(out, "v: 2") {
		t.Errorf("kubectl rollout history ds/hist --revision=2 lacks the template's annotation v: 2:\n%s", out)
	}

	// kubectl rollout undo applies revision 2's data: the template of
	// v=2 again, whose revision becomes 4.
	kubectl(t, env, "rollout", "undo", "ds/hist", "--to-revision=2")
	eventually(t, "the pod of v=2 again", func() bool {
		pods := livePods(t, cs, "hist")
		return len(pods) == 1 && pods[0].Labels[daemonset.LabelRevisionHash] == h2 && podReady(&pods[0])
	})
	eventually(t, "revisions 1, 3 and 4", func() bool {
		return slices.Equal(revisions(t, cs, ds), []string{"1:" + h1, "3:" + h3, "4:" + h2})
	})
	if got := getDS(t, cs, "hist").Spec.Template.Annotations["v"]; got != "2" {
		t.Errorf("template annotation v=%q after undo, want 2", got)
	}
	// A new template: three old revisions, one beyond the limit of 2;
	// the oldest goes.
	h5 := setV("5")
	eventually(t, "revisions 3, 4 and 5", func() bool {
		return slices.Equal(revisions(t, cs, ds), []string{"3:" + h3, "4:" + h2, "5:" + h5})
	})
}
