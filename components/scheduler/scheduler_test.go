package scheduler

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/testenv"
)

func TestNew_validates(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	f := informers.NewSharedInformerFactory(env.Clientset, 0)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no client", Config{Informers: f}, "Config.Client is required"},
		{"no informers", Config{Client: env.Clientset}, "Config.Informers is required"},
		{"negative parallelism", Config{Client: env.Clientset, Informers: f, Parallelism: -1}, "Config.Parallelism must not be negative"},
		{"percentage over 100", Config{Client: env.Clientset, Informers: f, PercentageOfNodesToScore: 101}, "Config.PercentageOfNodesToScore must be at most 100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
	s, err := New(Config{Client: env.Clientset, Informers: f})
	if err != nil {
		t.Fatal(err)
	}
	if s.name != DefaultSchedulerName || s.algo.parallelism != DefaultParallelism || s.bindWorkers != DefaultBindWorkers {
		t.Fatalf("defaults not applied: %q %d %d", s.name, s.algo.parallelism, s.bindWorkers)
	}
}

func TestScheduler_Run_twice(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	s, stop := runScheduler(t, env.Clientset, Config{}, nil)
	eventually(t, "Run to start", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.started })
	if err := s.Run(t.Context()); !errors.Is(err, ErrRunTwice) {
		t.Fatalf("second Run: %v, want ErrRunTwice", err)
	}
	stop()
}

// The real kubectl describe shows why a pod waits, as with kube-scheduler.
func TestScheduler_kubectlDescribe_showsFailedScheduling(t *testing.T) {
	kubectl := testenv.Kubectl(t)
	env := testenv.Start(t, testenv.Options{})
	cs := fastClient(t, env)
	createNode(t, cs, nodeSpec{name: "n1", taints: []corev1.Taint{taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)}})
	createNode(t, cs, nodeSpec{name: "n2", cpu: "1"})
	createNode(t, cs, nodeSpec{name: "n3", cpu: "1"})
	s, _ := runScheduler(t, cs, Config{}, nil)
	eventually(t, "nodes in the cache", func() bool { n, _ := s.cache.counts(); return n == 3 })
	createPod(t, cs, newPod("web", "2", ""))
	const want = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
	if got := waitUnschedulable(t, cs, "web"); got != want {
		t.Fatalf("condition message %q, want %q", got, want)
	}
	var out []byte
	eventually(t, "kubectl describe to show the event", func() bool {
		var err error
		out, err = exec.CommandContext(t.Context(), kubectl, "--kubeconfig", env.Kubeconfig, "describe", "pod", "web", "-n", testNS).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl describe: %v\n%s", err, out)
		}
		return strings.Contains(string(out), "FailedScheduling")
	})
	text := string(out)
	for _, w := range []string{"Warning", "FailedScheduling", DefaultSchedulerName, want, "PodScheduled"} {
		if !strings.Contains(text, w) {
			t.Errorf("kubectl describe lacks %q:\n%s", w, text)
		}
	}
}

// A pod waiting for room is bound within a second of the change that
// makes room: a node added, or a pod deleted.
func TestScheduler_becomesSchedulable_withinASecond(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := fastClient(t, env)
	createNode(t, cs, nodeSpec{name: "small", cpu: "1"})
	createPod(t, cs, on(newPod("big", "1500m", ""), "room"))
	createNode(t, cs, nodeSpec{name: "room", cpu: "2"})
	s, _ := runScheduler(t, cs, Config{}, nil)
	eventually(t, "the cluster in the cache", func() bool { n, p := s.cache.counts(); return n == 2 && p == 1 })

	// A node is added.
	createPod(t, cs, newPod("a", "3", ""))
	waitUnschedulable(t, cs, "a")
	start := time.Now()
	createNode(t, cs, nodeSpec{name: "large", cpu: "4"})
	if node := waitBound(t, cs, "a"); node != "large" {
		t.Fatalf("a bound to %s, want large", node)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a bound %v after its node was added, want < 1s", d)
	} else {
		t.Logf("a bound %v after its node was added", d.Round(time.Millisecond))
	}

	// A pod is deleted.
	createPod(t, cs, newPod("b", "1200m", ""))
	waitUnschedulable(t, cs, "b")
	start = time.Now()
	zero := int64(0)
	if err := cs.CoreV1().Pods(testNS).Delete(t.Context(), "big", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if node := waitBound(t, cs, "b"); node != "room" {
		t.Fatalf("b bound to %s, want room", node)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("b bound %v after a pod was deleted, want < 1s", d)
	} else {
		t.Logf("b bound %v after a pod was deleted", d.Round(time.Millisecond))
	}
}

// A pod whose nodeName the user set is bound already: the scheduler
// leaves it alone (no binding, no condition) but counts it on its node.
func TestScheduler_userNodeName_isCountedNotScheduled(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := fastClient(t, env)
	createNode(t, cs, nodeSpec{name: "n1", cpu: "2"})
	createNode(t, cs, nodeSpec{name: "n2", cpu: "2"})
	var binds atomic.Int32
	s, _ := runScheduler(t, cs, Config{}, func(s *Scheduler) {
		bind := s.bind
		s.bind = func(ctx context.Context, b *corev1.Binding) error { binds.Add(1); return bind(ctx, b) }
	})
	createPod(t, cs, on(newPod("pinned", "1500m", ""), "n1"))
	eventually(t, "the pinned pod in the cache", func() bool { _, p := s.cache.counts(); return p == 1 })
	createPod(t, cs, newPod("p", "1", ""))
	if node := waitBound(t, cs, "p"); node != "n2" {
		t.Fatalf("p bound to %s, want n2 (n1 is full with the pinned pod)", node)
	}
	if n := binds.Load(); n != 1 {
		t.Fatalf("%d binds, want 1 (only p)", n)
	}
	pinned, err := cs.CoreV1().Pods(testNS).Get(t.Context(), "pinned", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pinned.Spec.NodeName != "n1" || len(pinned.Status.Conditions) != 0 {
		t.Fatalf("pinned pod touched: node %q conditions %v", pinned.Spec.NodeName, pinned.Status.Conditions)
	}
}

// A bind that fails forgets its assumption (or the node would look full)
// and retries the pod after its backoff.
func TestScheduler_bindFailure_forgetsAndRetries(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := fastClient(t, env)
	createNode(t, cs, nodeSpec{name: "n1", pods: "1"})
	var calls atomic.Int32
	runScheduler(t, cs, Config{}, func(s *Scheduler) {
		bind := s.bind
		s.bind = func(ctx context.Context, b *corev1.Binding) error {
			if calls.Add(1) == 1 {
				return apierrors.NewInternalError(errors.New("injected"))
			}
			return bind(ctx, b)
		}
	})
	createPod(t, cs, newPod("p", "", ""))
	if node := waitBound(t, cs, "p"); node != "n1" {
		t.Fatalf("bound to %s", node)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d bind calls, want 2", n)
	}
}

// A Scheduled event is recorded for each bind, as kube-scheduler does.
func TestScheduler_recordsScheduledEvent(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := fastClient(t, env)
	createNode(t, cs, nodeSpec{name: "n1"})
	runScheduler(t, cs, Config{}, nil)
	createPod(t, cs, newPod("p", "", ""))
	waitBound(t, cs, "p")
	eventually(t, "the Scheduled event", func() bool {
		l, err := cs.CoreV1().Events(testNS).List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=p,reason=Scheduled"})
		return err == nil && len(l.Items) == 1 && l.Items[0].Message == "Successfully assigned default/p to n1"
	})
}

// bindRecorder counts, per pod, the binds the API server accepted, across
// scheduler instances, through the bind seam.
type bindRecorder struct {
	mu     sync.Mutex
	ok     map[types.UID]int
	byInst map[string]int
	lost   int // refused because another won
}

func newBindRecorder() *bindRecorder {
	return &bindRecorder{ok: map[types.UID]int{}, byInst: map[string]int{}}
}

func (r *bindRecorder) wrap(inst string, delay time.Duration) func(*Scheduler) {
	return func(s *Scheduler) {
		bind := s.bind
		s.bind = func(ctx context.Context, b *corev1.Binding) error {
			if delay > 0 {
				time.Sleep(delay) // a slow API: binds are in flight when the instance stops
			}
			err := bind(ctx, b)
			r.mu.Lock()
			defer r.mu.Unlock()
			switch {
			case err == nil:
				r.ok[b.UID]++
				r.byInst[inst]++
			case apierrors.IsConflict(err):
				r.lost++
			}
			return err
		}
	}
}

func (r *bindRecorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.ok {
		n += c
	}
	return n
}

// nodeWatcher fails the test if any pod's nodeName ever changes once set.
func nodeWatcher(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	w, err := cs.CoreV1().Pods(testNS).Watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { w.Stop(); <-done })
	go func() {
		defer close(done)
		first := map[types.UID]string{}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted || p.Spec.NodeName == "" {
				continue
			}
			if n, seen := first[p.UID]; seen && n != p.Spec.NodeName {
				t.Errorf("pod %s moved from %s to %s: bound twice", p.Name, n, p.Spec.NodeName)
			}
			first[p.UID] = p.Spec.NodeName
		}
	}()
}

func createPods(t *testing.T, cs kubernetes.Interface, n int, cpu string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if _, err := cs.CoreV1().Pods(testNS).Create(t.Context(), newPod(fmt.Sprintf("p-%03d", i), cpu, ""), metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// checkPlacement checks that every pod is bound, exactly once, and that
// no node holds more pods or cpu than it allows.
func checkPlacement(t *testing.T, cs kubernetes.Interface, rec *bindRecorder, wantPods int) {
	t.Helper()
	pods, err := cs.CoreV1().Pods(testNS).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := cs.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int64{}
	cpu := map[string]int64{}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" {
			t.Errorf("pod %s not bound", p.Name)
			continue
		}
		count[p.Spec.NodeName]++
		cpu[p.Spec.NodeName] += p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue()
		rec.mu.Lock()
		if n := rec.ok[p.UID]; n != 1 {
			t.Errorf("pod %s bound %d times", p.Name, n)
		}
		rec.mu.Unlock()
	}
	if len(pods.Items) != wantPods {
		t.Errorf("%d pods, want %d", len(pods.Items), wantPods)
	}
	for _, n := range nodes.Items {
		if c, max := count[n.Name], n.Status.Allocatable.Pods().Value(); c > max {
			t.Errorf("node %s holds %d pods, allows %d", n.Name, c, max)
		}
		if c, max := cpu[n.Name], n.Status.Allocatable.Cpu().MilliValue(); c > max {
			t.Errorf("node %s holds %dm cpu, allows %dm", n.Name, c, max)
		}
	}
}

// Two schedulers racing for the same pods never bind one twice: the API
// server refuses the loser's bind.
func TestScheduler_twoRacing_neverBindTwice(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := fastClient(t, env)
	for i := range 20 {
		createNode(t, cs, nodeSpec{name: fmt.Sprintf("n%02d", i)})
	}
	nodeWatcher(t, cs)
	rec := newBindRecorder()
	a, _ := runScheduler(t, cs, Config{}, rec.wrap("a", 0))
	b, _ := runScheduler(t, cs, Config{}, rec.wrap("b", 0))
	for _, s := range []*Scheduler{a, b} {
		eventually(t, "nodes in the cache", func() bool { n, _ := s.cache.counts(); return n == 20 })
	}
	const pods = 300
	createPods(t, cs, pods, "100m")
	eventually(t, "every pod bound", func() bool { return rec.total() >= pods })
	checkPlacement(t, cs, rec, pods)
	rec.mu.Lock()
	t.Logf("binds: a %d, b %d, refused %d", rec.byInst["a"], rec.byInst["b"], rec.lost)
	rec.mu.Unlock()
}

// A scheduler stopped in the middle of a batch (as when it loses its
// lease) finishes its binds in flight before Run returns, and its
// successor, whose cache is built from the informer, places the rest
// without over-committing a node: the nodes have exactly as many pod slots
// as there are pods.
func TestScheduler_restartMidBatch_neverOvercommits(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := fastClient(t, env)
	const nodes, perNode = 10, 4
	for i := range nodes {
		createNode(t, cs, nodeSpec{name: fmt.Sprintf("n%02d", i), pods: fmt.Sprint(perNode)})
	}
	nodeWatcher(t, cs)
	rec := newBindRecorder()
	// Two slow writers hold a back most of the batch: its decisions wait
	// for room to hand over their binds.
	a, stopA := runScheduler(t, cs, Config{BindWorkers: 2}, rec.wrap("a", 50*time.Millisecond))
	eventually(t, "nodes in the cache", func() bool { n, _ := a.cache.counts(); return n == nodes })
	createPods(t, cs, nodes*perNode, "100m")
	eventually(t, "a third of the pods bound", func() bool { return rec.total() >= nodes*perNode/3 })
	stopA()
	rec.mu.Lock()
	boundByA := rec.byInst["a"]
	rec.mu.Unlock()
	t.Logf("a bound %d pods before it stopped", boundByA)
	if boundByA >= nodes*perNode {
		t.Fatalf("a bound every pod before it stopped; the test needs it stopped mid-batch")
	}

	b, _ := runScheduler(t, cs, Config{}, rec.wrap("b", 0))
	eventually(t, "every pod bound", func() bool { return rec.total() >= nodes*perNode })
	rec.mu.Lock()
	if rec.byInst["a"] != boundByA {
		t.Errorf("a bound %d more pods after Run returned", rec.byInst["a"]-boundByA)
	}
	rec.mu.Unlock()
	checkPlacement(t, cs, rec, nodes*perNode)
	// No pod is left waiting (it would be, had b over-committed a node).
	if act, back, unsched := b.queue.sizes(); act+back+unsched != 0 {
		t.Errorf("queue not empty: %d active, %d backoff, %d unschedulable", act, back, unsched)
	}
}

// While a bind is in flight its pod holds room on the node (the next pod
// is told the node is full); when the bind fails the room is freed and
// the waiting pod is placed at once.
func TestScheduler_assumedPodHoldsRoomUntilBindFails(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := fastClient(t, env)
	createNode(t, cs, nodeSpec{name: "n1", pods: "1"})
	entered, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	runScheduler(t, cs, Config{}, func(s *Scheduler) {
		bind := s.bind
		s.bind = func(ctx context.Context, b *corev1.Binding) error {
			if b.Name == "a" && first.CompareAndSwap(false, true) {
				close(entered)
				select {
				case <-release:
				case <-ctx.Done():
				}
				return apierrors.NewInternalError(errors.New("injected"))
			}
			return bind(ctx, b)
		}
	})
	createPod(t, cs, newPod("a", "", ""))
	select {
	case <-entered:
	case <-time.After(waitLimit):
		t.Fatal("a's bind never started")
	}
	createPod(t, cs, newPod("b", "", ""))
	if msg := waitUnschedulable(t, cs, "b"); msg != "0/1 nodes are available: 1 Too many pods." {
		t.Fatalf("b: %q", msg)
	}
	start := time.Now()
	close(release)
	if node := waitBound(t, cs, "b"); node != "n1" {
		t.Fatalf("b bound to %s", node)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("b bound %v after a's bind failed, want < 1s", d)
	}
	if msg := waitUnschedulable(t, cs, "a"); msg != "0/1 nodes are available: 1 Too many pods." {
		t.Fatalf("a: %q", msg)
	}
}

// A pod that fails again for the same reason bumps its FailedScheduling
// event's count instead of adding events; a new reason is a new event and
// a new condition message.
func TestScheduler_failedScheduling_repeatsCounted(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := fastClient(t, env)
	createNode(t, cs, nodeSpec{name: "n1", cpu: "1"})
	s, _ := runScheduler(t, cs, Config{}, nil)
	eventually(t, "the node in the cache", func() bool { n, _ := s.cache.counts(); return n == 1 })
	createPod(t, cs, newPod("p", "2", ""))
	const first = "0/1 nodes are available: 1 Insufficient cpu."
	if msg := waitUnschedulable(t, cs, "p"); msg != first {
		t.Fatalf("message %q", msg)
	}
	events := func() []corev1.Event {
		l, err := cs.CoreV1().Events(testNS).List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=p,reason=FailedScheduling"})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	eventually(t, "the first event", func() bool { return len(events()) == 1 })
	// A label change retries the pod; it fails the same way.
	n, err := cs.CoreV1().Nodes().Get(t.Context(), "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels["retry"] = "1"
	if _, err := cs.CoreV1().Nodes().Update(t.Context(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the event's count to reach 2", func() bool {
		evs := events()
		return len(evs) == 1 && evs[0].Count == 2 && evs[0].Message == first
	})
	// A second node that is tainted changes the reason.
	createNode(t, cs, nodeSpec{name: "n2", taints: []corev1.Taint{taint("k", "v", corev1.TaintEffectNoSchedule)}})
	const second = "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: v}."
	eventually(t, "the new condition message", func() bool { return waitUnschedulable(t, cs, "p") == second })
	eventually(t, "a second event", func() bool { return len(events()) == 2 })
}
