package nodelifecycle_test

// Tests of the node lifecycle controller against a real etcd and API
// server (testenv), with short durations. No kubelet runs: the test
// renews the Node's Lease and posts its status itself. RELIABILITY.md
// promise 9 (at test scale) is TestController_unreachableNodeLifecycle.

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"kiln.dev/kiln/components/controllers/nodelifecycle"
	"kiln.dev/kiln/components/testenv"
)

const (
	ns            = "default"
	grace         = 2 * time.Second
	monitorPeriod = 200 * time.Millisecond
	waitLimit     = 30 * time.Second
)

// eventually polls cond until it holds and returns when it first did.
func eventually(t testing.TB, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Now()
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func run(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	f := informers.NewSharedInformerFactory(cs, 0)
	c, err := nodelifecycle.New(nodelifecycle.Config{Client: cs, Informers: f, GracePeriod: grace, MonitorPeriod: monitorPeriod, Logger: testLogger(t)})
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
			t.Errorf("Run did not return within %v", waitLimit)
		}
		f.Shutdown()
	})
}

// kubelet stands in for a kubelet's heartbeats: it renews the Node's
// Lease every 100ms while on.
type kubelet struct {
	t    *testing.T
	cs   kubernetes.Interface
	node string
	mu   sync.Mutex
	on   bool
}

func startKubelet(t *testing.T, cs kubernetes.Interface, node string) *kubelet {
	ctx := t.Context()
	now := metav1.NewMicroTime(time.Now())
	holder := node
	if _, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: corev1.NamespaceNodeLease},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &now},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k := &kubelet{t: t, cs: cs, node: node, on: true}
	var wg sync.WaitGroup
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			k.mu.Lock()
			on := k.on
			k.mu.Unlock()
			if !on {
				continue
			}
			l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(wctx, node, metav1.GetOptions{})
			if err != nil {
				continue
			}
			now := metav1.NewMicroTime(time.Now())
			l.Spec.RenewTime = &now
			_, _ = cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(wctx, l, metav1.UpdateOptions{})
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return k
}

func (k *kubelet) set(on bool) {
	k.mu.Lock()
	k.on = on
	k.mu.Unlock()
}

// postReady posts the Node's Ready condition with a fresh heartbeat.
func postReady(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	for {
		n, err := cs.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		now := metav1.Now()
		cond := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}
		found := false
		for i := range n.Status.Conditions {
			if n.Status.Conditions[i].Type == corev1.NodeReady {
				n.Status.Conditions[i], found = cond, true
			}
		}
		if !found {
			n.Status.Conditions = append(n.Status.Conditions, cond)
		}
		_, err = cs.CoreV1().Nodes().UpdateStatus(t.Context(), n, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
}

func getNode(t *testing.T, cs kubernetes.Interface, name string) *corev1.Node {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readyStatus(n *corev1.Node) (corev1.ConditionStatus, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status, c.Reason
		}
	}
	return "", ""
}

func taint(n *corev1.Node, key string) *corev1.Taint {
	for i := range n.Spec.Taints {
		if n.Spec.Taints[i].Key == key && n.Spec.Taints[i].Effect == corev1.TaintEffectNoExecute {
			return &n.Spec.Taints[i]
		}
	}
	return nil
}

// createPod binds a Pod to node by creating it with spec.nodeName.
func createPod(t *testing.T, cs kubernetes.Interface, name, node string, tols ...corev1.Toleration) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{NodeName: node, Tolerations: tols,
			Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// evicted reports whether the Pod is gone or terminating (no kubelet
// finishes a graceful delete here).
func evicted(t *testing.T, cs kubernetes.Interface, name string) bool {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return p.DeletionTimestamp != nil
}

func podReady(t *testing.T, cs kubernetes.Interface, name string) corev1.ConditionStatus {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status
		}
	}
	return ""
}

func unreachableToleration(seconds *int64) corev1.Toleration {
	return corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
		Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}
}

func ptr[T any](v T) *T { return &v }

func TestController_unreachableNodeLifecycle(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	if _, err := cs.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	postReady(t, cs, "n1")
	k := startKubelet(t, cs, "n1")
	run(t, cs)

	createPod(t, cs, "tolerate-1s", "n1", unreachableToleration(ptr[int64](1)))
	createPod(t, cs, "tolerate-4s", "n1", unreachableToleration(ptr[int64](4)))
	createPod(t, cs, "tolerate-forever", "n1", unreachableToleration(nil))
	createPod(t, cs, "default-300s", "n1") // the API server adds 300 s tolerations

	// 1. Renewing the Lease keeps the Node Ready for well past the grace
	// period, though its Ready heartbeat is never renewed.
	deadline := time.Now().Add(2 * grace)
	for time.Now().Before(deadline) {
		n := getNode(t, cs, "n1")
		if s, _ := readyStatus(n); s != corev1.ConditionTrue || len(n.Spec.Taints) != 0 {
			t.Fatalf("node with a fresh Lease: Ready=%s, taints %v", s, n.Spec.Taints)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// 2. Stop renewing: Ready=Unknown and the unreachable taint within
	// the grace period plus a few monitor periods.
	k.set(false)
	stopped := time.Now()
	var tn *corev1.Taint
	marked := eventually(t, "Ready=Unknown and the unreachable taint", func() bool {
		n := getNode(t, cs, "n1")
		s, reason := readyStatus(n)
		tn = taint(n, corev1.TaintNodeUnreachable)
		return s == corev1.ConditionUnknown && reason == "NodeStatusUnknown" && tn != nil
	})
	// The last renewal was up to one renew period (100 ms) before
	// stopped.
	if d := marked.Sub(stopped); d < grace-100*time.Millisecond || d > grace+10*monitorPeriod+time.Second {
		t.Fatalf("node marked %v after the renewals stopped, want within [%v, %v]", d, grace-100*time.Millisecond, grace+10*monitorPeriod+time.Second)
	}
	t.Logf("node marked unreachable %v after the last renewal", marked.Sub(stopped))
	if tn.TimeAdded == nil {
		t.Fatal("unreachable taint has no timeAdded")
	}
	// And its NoSchedule twin, so that the scheduler places nothing new
	// there: every Pod tolerates the NoExecute one for a while.
	if n := getNode(t, cs, "n1"); !slices.ContainsFunc(n.Spec.Taints, func(ta corev1.Taint) bool {
		return ta.Key == corev1.TaintNodeUnreachable && ta.Effect == corev1.TaintEffectNoSchedule
	}) {
		t.Fatalf("no unreachable:NoSchedule taint: %v", n.Spec.Taints)
	}
	if n := getNode(t, cs, "n1"); taint(n, corev1.TaintNodeNotReady) != nil {
		t.Fatalf("not-ready taint on an unreachable node: %v", n.Spec.Taints)
	}
	eventually(t, "pods marked not Ready", func() bool {
		return podReady(t, cs, "tolerate-forever") == corev1.ConditionFalse && podReady(t, cs, "default-300s") == corev1.ConditionFalse
	})

	// 3. The 1 s pod is evicted 1-2 s after the taint was added (never
	// early: timeAdded is stored to the second and rounded up).
	gone := eventually(t, "tolerate-1s evicted", func() bool { return evicted(t, cs, "tolerate-1s") })
	if d := gone.Sub(marked); d < time.Second-100*time.Millisecond || d > 3*time.Second {
		t.Fatalf("tolerate-1s evicted %v after the taint was seen, want 1-2s", d)
	}
	t.Logf("tolerate-1s evicted %v after the taint was seen", gone.Sub(marked))

	// 4. The kubelet comes back: the taint goes, which cancels the 4 s
	// pod's eviction.
	k.set(true)
	postReady(t, cs, "n1")
	eventually(t, "the taint removed", func() bool {
		n := getNode(t, cs, "n1")
		s, _ := readyStatus(n)
		return s == corev1.ConditionTrue && len(n.Spec.Taints) == 0
	})
	time.Sleep(time.Until(tn.TimeAdded.Add(time.Second + 4*time.Second + time.Second))) // past the 4 s pod's deadline
	for _, name := range []string{"tolerate-4s", "tolerate-forever", "default-300s"} {
		if evicted(t, cs, name) {
			t.Errorf("%s evicted", name)
		}
	}
	if n := getNode(t, cs, "n1"); len(n.Spec.Taints) != 0 {
		t.Fatalf("taints came back on a live node: %v", n.Spec.Taints)
	}
}

func TestController_notReadyTaintAndEviction(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	if _, err := cs.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startKubelet(t, cs, "n1")
	run(t, cs)
	createPod(t, cs, "tolerate-unreachable-only", "n1",
		unreachableToleration(nil),
		corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr[int64](0)})
	createPod(t, cs, "default-300s", "n1")

	// The kubelet is alive but reports Ready=False: not-ready, not
	// unreachable.
	n := getNode(t, cs, "n1")
	now := metav1.Now()
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", LastHeartbeatTime: now, LastTransitionTime: now}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(t.Context(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the not-ready taint", func() bool { return taint(getNode(t, cs, "n1"), corev1.TaintNodeNotReady) != nil })
	if n := getNode(t, cs, "n1"); taint(n, corev1.TaintNodeUnreachable) != nil {
		t.Fatalf("unreachable taint on a node that reports: %v", n.Spec.Taints)
	}
	eventually(t, "the 0 s pod evicted", func() bool { return evicted(t, cs, "tolerate-unreachable-only") })
	if evicted(t, cs, "default-300s") {
		t.Fatal("default-300s evicted")
	}
	if s := podReady(t, cs, "default-300s"); s != corev1.ConditionFalse {
		t.Fatalf("default-300s Ready=%q, want False", s)
	}
}

func TestNew_validates(t *testing.T) {
	cs := fake.NewClientset()
	f := informers.NewSharedInformerFactory(cs, 0)
	for name, cfg := range map[string]nodelifecycle.Config{
		"no client":        {Informers: f},
		"no informers":     {Client: cs},
		"negative grace":   {Client: cs, Informers: f, GracePeriod: -time.Second},
		"negative monitor": {Client: cs, Informers: f, MonitorPeriod: -time.Second},
	} {
		if _, err := nodelifecycle.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	// Two controllers may share one factory (the pod index is added once).
	for range 2 {
		if _, err := nodelifecycle.New(nodelifecycle.Config{Client: cs, Informers: f}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRun_refusesSecondCall(t *testing.T) {
	cs := fake.NewClientset()
	f := informers.NewSharedInformerFactory(cs, 0)
	c, err := nodelifecycle.New(nodelifecycle.Config{Client: cs, Informers: f})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	f.Start(ctx.Done())
	// Whichever call comes second is refused at once; the other blocks
	// until ctx is done.
	done := make(chan error, 2)
	go func() { done <- c.Run(ctx) }()
	go func() { done <- c.Run(ctx) }()
	if err := <-done; !errors.Is(err, nodelifecycle.ErrRunTwice) {
		t.Fatalf("first Run to return: %v, want ErrRunTwice", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	f.Shutdown()
}
