package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/testenv"
)

// The benchmark does one fixed workload per invocation and prints its
// lines in the `make bench` format (DESIGN.md); run it with -benchtime 1x.

// SchedulingBasic, as kube-scheduler's scheduler_perf runs it
// (5000Nodes_10000Pods): nodes of 4 cpu, 32Gi and 110 pods; pods
// requesting 100m cpu and 500Mi memory.
const (
	benchNodes       = 5000
	benchInitPods    = 1000
	benchPods        = 10000
	benchCreators    = 16
	benchNodeWriters = 32
)

// BenchmarkSchedulerThroughput creates 5,000 nodes, lets the scheduler
// place 1,000 pods, then creates 10,000 more from 16 goroutines while it
// runs. The create rate is pods/s of the creating goroutines; the
// schedule rate is the measured pods over the time from the first create
// to the last bind, as a watch observes it. Their ratio says whether the
// scheduler keeps up with the API (1.0: every pod bound as soon as all
// were created).
func BenchmarkSchedulerThroughput(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	ctx := b.Context()
	creators := benchClient(b, env)

	nodeStart := time.Now()
	if err := benchParallel(ctx, benchNodeWriters, benchNodes, func(ctx context.Context, i int) error {
		_, err := creators.CoreV1().Nodes().Create(ctx, benchNode(fmt.Sprintf("node-%04d", i)), metav1.CreateOptions{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d nodes created in %v", benchNodes, time.Since(nodeStart).Round(time.Millisecond))

	bound := watchBinds(b, creators)
	quiet := slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, _ := runScheduler(b, benchClient(b, env), Config{Logger: quiet}, nil)
	eventually(b, "nodes in the scheduler's cache", func() bool { n, _ := s.cache.counts(); return n == benchNodes })

	initStart := time.Now()
	if err := benchCreatePods(ctx, creators, "init", benchInitPods); err != nil {
		b.Fatal(err)
	}
	bound.wait(b, benchInitPods)
	b.Logf("%d initial pods bound in %v", benchInitPods, time.Since(initStart).Round(time.Millisecond))

	b.ResetTimer()
	start := time.Now()
	if err := benchCreatePods(ctx, creators, "pod", benchPods); err != nil {
		b.Fatal(err)
	}
	created := time.Since(start)
	last := bound.wait(b, benchInitPods+benchPods)
	b.StopTimer()

	scheduled := last.Sub(start)
	createRate := benchPods / created.Seconds()
	scheduleRate := benchPods / scheduled.Seconds()
	b.Logf("created %d pods in %v (%.0f/s); last bound after %v (%.0f/s)", benchPods, created.Round(time.Millisecond), createRate,
		scheduled.Round(time.Millisecond), scheduleRate)
	fmt.Printf("BENCH scheduler-throughput %.0f pods/s %.2f vs pod-create\n", scheduleRate, scheduleRate/createRate)
	fmt.Printf("BENCH scheduler-create-rate %.0f pods/s\n", createRate)
}

// benchClient has protobuf bodies and the high QPS the brief asks for.
func benchClient(b *testing.B, env *testenv.Env) kubernetes.Interface {
	return fastClient(b, env)
}

func benchNode(name string) *corev1.Node {
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{
			Capacity: alloc, Allocatable: alloc,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
		},
	}
}

func benchPod(name string) *corev1.Pod {
	req := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("500Mi")}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "pause", Image: "registry.k8s.io/pause:3.10",
			Ports:     []corev1.ContainerPort{{ContainerPort: 80}},
			Resources: corev1.ResourceRequirements{Requests: req, Limits: req},
		}}},
	}
}

func benchCreatePods(ctx context.Context, cs kubernetes.Interface, prefix string, n int) error {
	return benchParallel(ctx, benchCreators, n, func(ctx context.Context, i int) error {
		_, err := cs.CoreV1().Pods(testNS).Create(ctx, benchPod(fmt.Sprintf("%s-%05d", prefix, i)), metav1.CreateOptions{})
		return err
	})
}

// benchParallel runs fn for i in [0, n) on workers goroutines.
func benchParallel(ctx context.Context, workers, n int, fn func(context.Context, int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// bindCounter counts pods seen bound by a watch, and when the last was.
type bindCounter struct {
	mu    sync.Mutex
	cond  *sync.Cond
	n     int
	last  time.Time
	seen  map[types.UID]bool
	nodes map[string]int
}

func watchBinds(b *testing.B, cs kubernetes.Interface) *bindCounter {
	b.Helper()
	bc := &bindCounter{seen: map[types.UID]bool{}, nodes: map[string]int{}}
	bc.cond = sync.NewCond(&bc.mu)
	// Only bound pods: the API server filters out the creates, so the
	// measuring watch decodes half the events it otherwise would.
	w, err := cs.CoreV1().Pods(testNS).Watch(b.Context(), metav1.ListOptions{FieldSelector: "spec.nodeName!="})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	b.Cleanup(func() { w.Stop(); <-done })
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted || p.Spec.NodeName == "" {
				continue
			}
			now := time.Now()
			bc.mu.Lock()
			if !bc.seen[p.UID] {
				bc.seen[p.UID] = true
				bc.n++
				bc.last = now
				bc.nodes[p.Spec.NodeName]++
				bc.cond.Broadcast()
			}
			bc.mu.Unlock()
		}
		bc.mu.Lock()
		bc.cond.Broadcast()
		bc.mu.Unlock()
	}()
	return bc
}

// wait blocks until n pods were seen bound and returns when the last was;
// it fails after waitLimit without progress.
func (bc *bindCounter) wait(b *testing.B, n int) time.Time {
	b.Helper()
	stop := make(chan struct{})
	defer close(stop)
	var timedOut atomic.Bool
	go func() {
		prev := -1
		for {
			select {
			case <-stop:
				return
			case <-time.After(waitLimit):
			}
			bc.mu.Lock()
			if bc.n == prev {
				timedOut.Store(true)
				bc.cond.Broadcast()
				bc.mu.Unlock()
				return
			}
			prev = bc.n
			bc.mu.Unlock()
		}
	}()
	bc.mu.Lock()
	defer bc.mu.Unlock()
	for bc.n < n && !timedOut.Load() {
		bc.cond.Wait()
	}
	if bc.n < n {
		b.Fatalf("%d of %d pods bound; no progress for %v", bc.n, n, waitLimit)
	}
	return bc.last
}
