package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/testenv"
)

// Helpers shared by the tests against the real API server.

const (
	testNS = "default"
	// waitLimit bounds every wait.
	waitLimit = 30 * time.Second
)

// eventually polls cond until it holds, failing the test after waitLimit.
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

// fastClient is a client with protobuf bodies (client-go's default is
// JSON) and the high QPS a scheduler binding 1,000 pods a second needs.
func fastClient(t testing.TB, env *testenv.Env) kubernetes.Interface {
	t.Helper()
	rc := rest.CopyConfig(env.RESTConfig)
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	rc.QPS, rc.Burst = 5000, 10000
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// runScheduler runs one scheduler on a fresh informer factory until stop
// is called (or the test ends); tweak may set test seams before Run.
func runScheduler(t testing.TB, cs kubernetes.Interface, cfg Config, tweak func(*Scheduler)) (s *Scheduler, stop func()) {
	t.Helper()
	f := informers.NewSharedInformerFactory(cs, 0)
	cfg.Client, cfg.Informers = cs, f
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(s)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	f.Start(ctx.Done())
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		f.Shutdown()
	}
	t.Cleanup(stop)
	return s, stop
}

// nodeSpec describes a test node; zero sizes mean 4 cpu, 8Gi, 110 pods.
type nodeSpec struct {
	name          string
	cpu, memory   string
	pods          string
	ephemeral     string
	labels        map[string]string
	taints        []corev1.Taint
	unschedulable bool
}

func newNode(ns nodeSpec) *corev1.Node {
	or := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(or(ns.cpu, "4")),
		corev1.ResourceMemory: resource.MustParse(or(ns.memory, "8Gi")),
		corev1.ResourcePods:   resource.MustParse(or(ns.pods, "110")),
	}
	if ns.ephemeral != "" {
		alloc[corev1.ResourceEphemeralStorage] = resource.MustParse(ns.ephemeral)
	}
	l := map[string]string{corev1.LabelHostname: ns.name}
	for k, v := range ns.labels {
		l[k] = v
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: ns.name, Labels: l},
		Spec:       corev1.NodeSpec{Taints: ns.taints, Unschedulable: ns.unschedulable},
		Status: corev1.NodeStatus{
			Capacity: alloc, Allocatable: alloc,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
		},
	}
}

func createNode(t testing.TB, cs kubernetes.Interface, ns nodeSpec) {
	t.Helper()
	if _, err := cs.CoreV1().Nodes().Create(t.Context(), newNode(ns), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", ns.name, err)
	}
}

// newPod is a pod with one container requesting cpu and memory (empty:
// none).
func newPod(name, cpu, memory string) *corev1.Pod {
	c := corev1.Container{Name: "c", Image: "registry.k8s.io/pause:3.10"}
	if cpu != "" || memory != "" {
		c.Resources.Requests = corev1.ResourceList{}
		if cpu != "" {
			c.Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if memory != "" {
			c.Resources.Requests[corev1.ResourceMemory] = resource.MustParse(memory)
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
	}
}

func createPod(t testing.TB, cs kubernetes.Interface, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if pod.Namespace == "" {
		pod.Namespace = testNS
	}
	out, err := cs.CoreV1().Pods(pod.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	return out
}

// waitBound waits until the pod has a node and returns it.
func waitBound(t testing.TB, cs kubernetes.Interface, name string) string {
	t.Helper()
	var node string
	eventually(t, fmt.Sprintf("pod %s bound", name), func() bool {
		p, err := cs.CoreV1().Pods(testNS).Get(t.Context(), name, metav1.GetOptions{})
		if err == nil {
			node = p.Spec.NodeName
		}
		return node != ""
	})
	return node
}

// waitUnschedulable waits for PodScheduled=False, reason Unschedulable,
// and returns its message.
func waitUnschedulable(t testing.TB, cs kubernetes.Interface, name string) string {
	t.Helper()
	var msg string
	eventually(t, fmt.Sprintf("pod %s unschedulable", name), func() bool {
		p, err := cs.CoreV1().Pods(testNS).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		if p.Spec.NodeName != "" {
			t.Fatalf("pod %s bound to %s, want unschedulable", name, p.Spec.NodeName)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				msg = c.Message
				return true
			}
		}
		return false
	})
	return msg
}

// clearCluster deletes every pod of testNS and every node, and waits
// until they are gone. It may run from t.Cleanup, after t.Context ended.
func clearCluster(t testing.TB, cs kubernetes.Interface) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	zero := int64(0)
	pods, err := cs.CoreV1().Pods(testNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if err := cs.CoreV1().Pods(testNS).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if err := cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	eventually(t, "cluster cleared", func() bool {
		p, err1 := cs.CoreV1().Pods(testNS).List(ctx, metav1.ListOptions{})
		n, err2 := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err1 == nil && err2 == nil && len(p.Items) == 0 && len(n.Items) == 0
	})
}
