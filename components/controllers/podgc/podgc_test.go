package podgc_test

// Tests of the pod garbage collector against a real etcd and API server
// (testenv).

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/controllers/podgc"
	"kiln.dev/kiln/components/testenv"
)

const (
	ns        = "default"
	waitLimit = 30 * time.Second
)

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		<-tick.C
	}
}

// run starts the collector with cfg's Client, Informers and Logger filled
// in; it stops at cleanup.
func run(t *testing.T, cs kubernetes.Interface, cfg podgc.Config) {
	t.Helper()
	f := informers.NewSharedInformerFactory(cs, 0)
	cfg.Client, cfg.Informers = cs, f
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	gc, err := podgc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	f.Start(ctx.Done())
	go func() { done <- gc.Run(ctx) }()
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
		if err := gc.Run(context.Background()); err != podgc.ErrRunTwice {
			t.Errorf("second Run = %v, want ErrRunTwice", err)
		}
	})
}

func createNode(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	if _, err := cs.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createPod creates a Pod bound to node, in phase when it is not empty.
func createPod(t *testing.T, cs kubernetes.Interface, name, node string, phase corev1.PodPhase) {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{NodeName: node, RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if phase != "" {
		p.Status.Phase = phase
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(t.Context(), p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func exists(t *testing.T, cs kubernetes.Interface, name string) bool {
	t.Helper()
	_, err := cs.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func TestCollector_orphanedPodsDeleted(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	createNode(t, cs, "node-1")
	createPod(t, cs, "on-live-node", "node-1", corev1.PodRunning)
	createPod(t, cs, "on-gone-node", "ghost", corev1.PodRunning)
	createPod(t, cs, "unscheduled", "", "")
	run(t, cs, podgc.Config{Interval: 50 * time.Millisecond})
	eventually(t, "the orphan deleted", func() bool { return !exists(t, cs, "on-gone-node") })

	// A Pod on a Node the collector's cache has not shown is kept while
	// the Node exists; once the Node goes, its terminating Pod is
	// force-deleted.
	createNode(t, cs, "node-2")
	createPod(t, cs, "on-new-node", "node-2", corev1.PodRunning)
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), "on-new-node", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if !exists(t, cs, "on-new-node") {
		t.Fatal("terminating pod on a live node deleted")
	}
	if err := cs.CoreV1().Nodes().Delete(t.Context(), "node-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the terminating orphan force-deleted", func() bool { return !exists(t, cs, "on-new-node") })
	for _, name := range []string{"on-live-node", "unscheduled"} {
		if !exists(t, cs, name) {
			t.Fatalf("pod %s deleted, want kept", name)
		}
	}
}

func TestCollector_terminatedThreshold(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	createNode(t, cs, "node-1")
	phases := []corev1.PodPhase{corev1.PodSucceeded, corev1.PodFailed, corev1.PodSucceeded, corev1.PodFailed}
	for i, ph := range phases {
		createPod(t, cs, fmt.Sprintf("done-%d", i), "node-1", ph)
	}
	createPod(t, cs, "running", "node-1", corev1.PodRunning)
	run(t, cs, podgc.Config{TerminatedThreshold: 2, Interval: 50 * time.Millisecond})
	eventually(t, "the 2 oldest terminated pods deleted", func() bool {
		return !exists(t, cs, "done-0") && !exists(t, cs, "done-1")
	})
	time.Sleep(300 * time.Millisecond)
	for _, name := range []string{"done-2", "done-3", "running"} {
		if !exists(t, cs, name) {
			t.Fatalf("pod %s deleted, want kept", name)
		}
	}
}

func TestNew_validates(t *testing.T) {
	if _, err := podgc.New(podgc.Config{}); err == nil {
		t.Fatal("New without Client: want error")
	}
}
