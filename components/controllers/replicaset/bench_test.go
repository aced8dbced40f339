package replicaset_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"kiln.dev/kiln/components/controllers/replicaset"
	"kiln.dev/kiln/components/scheduler"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/components/testenv/hollow"
)

// The benchmark does one fixed workload per invocation and prints its
// line in the `make bench` format (DESIGN.md); run it with -benchtime 1x.

const (
	benchNodes    = 100
	benchReplicas = 1000
	// benchCreators is how many goroutines create the baseline's Pods,
	// as the scheduler's benchmark creates its own.
	benchCreators = 16
	benchWait     = 5 * time.Minute
)

// BenchmarkScaleUp1000 is issue 4's rs-scale-1000: a ReplicaSet from 0
// to 1,000 replicas on 100 hollow nodes (real kubelets on the simulated
// runtime), with the real scheduler and the real ReplicaSet controller
// against the real API server and etcd, until every Pod is Ready. The
// baseline, pod-create, is the same 1,000 Pods created directly through
// the API by 16 goroutines on an identical cluster (same nodes,
// scheduler and kubelets, no controller), until every Pod is Ready: their
// ratio is what the controller adds (goal <= 1.5). The controller's
// client has kiln server's limits (QPS 200, burst 400), the scheduler's
// its own (QPS 5,000), each kubelet the kubelet's (QPS 50). It also
// prints how long the baseline's creates alone took.
func BenchmarkScaleUp1000(b *testing.B) {
	var direct, creates, viaRS time.Duration
	b.Run("pod-create", func(b *testing.B) { direct, creates = scaleUp(b, false) })
	b.Run("replicaset", func(b *testing.B) { viaRS, _ = scaleUp(b, true) })
	if direct == 0 || viaRS == 0 {
		return // a sub-benchmark failed
	}
	fmt.Printf("BENCH rs-scale-1000 %.2f s %.2f vs pod-create\n", viaRS.Seconds(), viaRS.Seconds()/direct.Seconds())
	fmt.Printf("BENCH pod-create-1000 %.2f s\n", direct.Seconds())
	fmt.Printf("BENCH pod-create-1000-api-only %.2f s\n", creates.Seconds())
}

// scaleUp starts a cluster of 100 hollow nodes and the scheduler, and
// times 1,000 Pods from the first write to the last Ready: created by a
// ReplicaSet scaled from 0, or directly. It also returns how long the
// direct creates took.
func scaleUp(b *testing.B, viaRS bool) (ready, creates time.Duration) {
	env := testenv.Start(b, testenv.Options{})
	quiet := slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	hollow.Start(b, env, hollow.Options{Nodes: benchNodes, Logger: quiet})

	ctx, cancel := context.WithCancel(context.WithoutCancel(b.Context()))
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	f := informers.NewSharedInformerFactory(benchClient(b, env, 200, 400), 0)
	s, err := scheduler.New(scheduler.Config{Client: benchClient(b, env, 5000, 10000), Informers: f, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	var rs *appsv1.ReplicaSet
	if viaRS {
		// As the controller manager runs it: a shared broadcaster writing
		// its Events through the same client.
		cs := benchClient(b, env, 200, 400)
		events := record.NewBroadcaster()
		events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
		c, err := replicaset.New(replicaset.Config{Client: cs, Informers: f, Events: events, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer events.Shutdown()
			if err := c.Run(ctx); err != nil {
				b.Error(err)
			}
		})
		rs = createRS(b, env.Clientset, newRS("scale", 0))
	}
	f.Start(ctx.Done())
	wg.Go(func() {
		if err := s.Run(ctx); err != nil {
			b.Error(err)
		}
	})
	wg.Go(func() { <-ctx.Done(); f.Shutdown() })
	if viaRS {
		waitObserved(b, env.Clientset, rs.Name)
	}

	readyCh := watchReady(b, env.Clientset, benchReplicas)
	b.ResetTimer()
	start := time.Now()
	if viaRS {
		if _, err := env.Clientset.AppsV1().ReplicaSets(ns).Patch(b.Context(), rs.Name, types.MergePatchType,
			fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, benchReplicas), metav1.PatchOptions{}); err != nil {
			b.Fatal(err)
		}
	} else {
		createDirect(b, env, benchReplicas)
		creates = time.Since(start)
	}
	select {
	case at := <-readyCh:
		ready = at.Sub(start)
	case <-time.After(benchWait):
		b.Fatalf("%d pods not all Ready after %v", benchReplicas, benchWait)
	}
	b.StopTimer()
	b.Logf("%d pods Ready in %v (creates alone: %v)", benchReplicas, ready.Round(time.Millisecond), creates.Round(time.Millisecond))
	return ready, creates
}

// benchClient is a client of env with the given rate limits.
func benchClient(b *testing.B, env *testenv.Env, qps float32, burst int) kubernetes.Interface {
	b.Helper()
	rc := rest.CopyConfig(env.RESTConfig)
	rc.QPS, rc.Burst = qps, burst
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	return cs
}

// waitObserved waits until the controller has written the ReplicaSet's
// status once, so that its caches are warm before the clock starts.
func waitObserved(b *testing.B, cs kubernetes.Interface, name string) {
	b.Helper()
	deadline := time.Now().Add(benchWait)
	for {
		rs, err := cs.AppsV1().ReplicaSets(ns).Get(b.Context(), name, metav1.GetOptions{})
		if err == nil && rs.Status.ObservedGeneration == rs.Generation {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("replicaset %s never observed: %v", name, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// createDirect creates n Pods of the ReplicaSet's template from
// benchCreators goroutines.
func createDirect(b *testing.B, env *testenv.Env, n int) {
	b.Helper()
	tmpl := newRS("scale", 0).Spec.Template
	var next atomic.Int32
	var wg sync.WaitGroup
	for range benchCreators {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				pod := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
				pod.Name = fmt.Sprintf("scale-%04d", i)
				if _, err := env.Clientset.CoreV1().Pods(ns).Create(b.Context(), pod, metav1.CreateOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// watchReady follows the Pods of the namespace and sends the time the
// n-th one became Ready.
func watchReady(b *testing.B, cs kubernetes.Interface, n int) <-chan time.Time {
	b.Helper()
	w, err := cs.CoreV1().Pods(ns).Watch(b.Context(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan time.Time, 1)
	go func() {
		defer w.Stop()
		ready := map[string]bool{}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted || ready[p.Name] || !podIsReady(p) {
				continue
			}
			ready[p.Name] = true
			if len(ready) == n {
				out <- time.Now()
				return
			}
		}
	}()
	return out
}

func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
