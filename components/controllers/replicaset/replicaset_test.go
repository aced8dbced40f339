package replicaset_test

// Tests of the ReplicaSet controller against a real etcd and API server
// (testenv), with testenv's stand-in scheduler and kubelet running the
// Pods. RELIABILITY.md promise 8 is TestController_Run_restartMidScaleUp.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"kiln.dev/kiln/components/controllers/replicaset"
	"kiln.dev/kiln/components/testenv"
)

const (
	ns = "default"
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

// testLogger sends slog to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startEnv runs a control plane and the stand-in kubelet.
func startEnv(t *testing.T, opts testenv.StandInOptions) *testenv.Env {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	testenv.StandInKubelet(t, env, opts)
	return env
}

// runController runs one controller instance on a fresh informer factory
// over informerClient, writing with client. stop cancels it and waits
// for Run to return; it also runs at cleanup.
func runController(t *testing.T, client, informerClient kubernetes.Interface) (stop func()) {
	t.Helper()
	f := informers.NewSharedInformerFactory(informerClient, 0)
	// Events go to the API through informerClient, which never fails on
	// purpose, as the manager's shared broadcaster writes them.
	events := record.NewBroadcaster()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: informerClient.CoreV1().Events("")})
	c, err := replicaset.New(replicaset.Config{Client: client, Informers: f, Events: events, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	f.Start(ctx.Done())
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
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
	t.Cleanup(stop)
	return stop
}

// eventsOf returns the Events about obj, as kubectl describe finds them,
// as "Type Reason Message (source)" lines, once there are at least n
// (counting repeats folded into one Event).
func eventsOf(t *testing.T, cs kubernetes.Interface, obj metav1.Object, n int) []string {
	t.Helper()
	var out []string
	eventually(t, fmt.Sprintf("%d events about %s", n, obj.GetName()), func() bool {
		l, err := cs.CoreV1().Events(obj.GetNamespace()).List(t.Context(), metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(obj.GetUID())).String(),
		})
		if err != nil {
			t.Fatal(err)
		}
		out = out[:0]
		total := 0
		for _, e := range l.Items {
			out = append(out, fmt.Sprintf("%s %s %s (%s)", e.Type, e.Reason, e.Message, e.Source.Component))
			total += int(max(e.Count, 1))
		}
		return total >= n
	})
	slices.Sort(out)
	return out
}

// countPrefix counts the lines that start with prefix.
func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
	sel := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name, "tier": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
}

func createRS(t testing.TB, cs kubernetes.Interface, rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	t.Helper()
	out, err := cs.AppsV1().ReplicaSets(ns).Create(t.Context(), rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func getRS(t *testing.T, cs kubernetes.Interface, name string) *appsv1.ReplicaSet {
	t.Helper()
	rs, err := cs.AppsV1().ReplicaSets(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func scaleRS(t *testing.T, cs kubernetes.Interface, name string, n int32) *appsv1.ReplicaSet {
	t.Helper()
	rs, err := cs.AppsV1().ReplicaSets(ns).Patch(t.Context(), name, types.MergePatchType,
		fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// waitStatus waits until the ReplicaSet's status has observed its
// current generation and cond holds.
func waitStatus(t *testing.T, cs kubernetes.Interface, name, what string, cond func(appsv1.ReplicaSetStatus) bool) *appsv1.ReplicaSet {
	t.Helper()
	var rs *appsv1.ReplicaSet
	eventually(t, name+" status: "+what, func() bool {
		rs = getRS(t, cs, name)
		return rs.Status.ObservedGeneration == rs.Generation && cond(rs.Status)
	})
	return rs
}

func readyAll(n int32) func(appsv1.ReplicaSetStatus) bool {
	return func(s appsv1.ReplicaSetStatus) bool {
		return s.Replicas == n && s.ReadyReplicas == n && s.AvailableReplicas == n && s.FullyLabeledReplicas == n
	}
}

func live(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// livePods lists the live (not terminating, not finished) Pods with the
// ReplicaSet's app label.
func livePods(t *testing.T, cs kubernetes.Interface, app string) []corev1.Pod {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(l.Items, func(p corev1.Pod) bool { return !live(&p) })
}

// ownedBy reports whether rs is the Pod's controller.
func ownedBy(p *corev1.Pod, rs *appsv1.ReplicaSet) bool {
	ref := metav1.GetControllerOf(p)
	return ref != nil && ref.UID == rs.UID
}

// podCounter follows a Pod watch and counts the live Pods with one app
// label after every event. The watch shows every revision in order, so
// its maximum is the true maximum, which a polled list could miss.
type podCounter struct {
	t   *testing.T
	cs  kubernetes.Interface
	app string

	mu    sync.Mutex
	live  map[string]bool
	n     int
	max   int
	seen  map[string]bool // every Pod name the watch showed
	fatal error
}

func countPods(t *testing.T, cs kubernetes.Interface, app string) *podCounter {
	t.Helper()
	c := &podCounter{t: t, cs: cs, app: app, live: map[string]bool{}, seen: map[string]bool{}}
	l, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Items {
		c.observe(watch.Added, &l.Items[i])
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	var wg sync.WaitGroup
	wg.Go(func() { c.follow(ctx, l.ResourceVersion) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return c
}

func (c *podCounter) follow(ctx context.Context, rv string) {
	for ctx.Err() == nil {
		w, err := c.cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
		if err != nil {
			select { // only when ctx ends or the server is stopping
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				if ev.Type == watch.Error {
					c.mu.Lock()
					c.fatal = apierrors.FromObject(ev.Object)
					c.mu.Unlock()
					w.Stop()
					return
				}
				continue
			}
			rv = p.ResourceVersion
			c.observe(ev.Type, p)
		}
		w.Stop()
	}
}

func (c *podCounter) observe(typ watch.EventType, p *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[p.Name] = true
	if p.Labels["app"] != c.app {
		return
	}
	was := c.live[p.Name]
	now := typ != watch.Deleted && live(p)
	switch {
	case now && !was:
		c.n++
	case !now && was:
		c.n--
	}
	if now {
		c.live[p.Name] = true
	} else {
		delete(c.live, p.Name)
	}
	c.max = max(c.max, c.n)
}

// count is the number of live Pods as of the last event seen.
func (c *podCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// maxAfterNow returns the maximum so far, once the watch has caught up
// with everything written before the call: it writes a marker Pod (not
// counted) and waits to see it.
func (c *podCounter) maxAfterNow() int {
	c.t.Helper()
	marker, err := c.cs.CoreV1().Pods(ns).Create(c.t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "marker-", Labels: map[string]string{"marker": "true"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	eventually(c.t, "the counting watch to catch up", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.fatal != nil {
			c.t.Fatalf("counting watch: %v", c.fatal)
		}
		return c.seen[marker.Name]
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max
}

// faults is a transport for a client that misbehaves on purpose.
type faults struct {
	base http.RoundTripper
	// failCreates, while true, answers every Pod create 403.
	failCreates atomic.Bool
	// watchDelay holds back every byte of a watch response this long: a
	// slow watch, as behind a congested apiserver.
	watchDelay time.Duration
}

// faultyClient returns a client of env whose transport is f.
func faultyClient(t *testing.T, env *testenv.Env, f *faults) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(env.RESTConfig)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { f.base = rt; return f }
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func (f *faults) RoundTrip(req *http.Request) (*http.Response, error) {
	if f.failCreates.Load() && req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/pods") {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		body := `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,"message":"pods is forbidden: injected by the test"}`
		return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
	}
	resp, err := f.base.RoundTrip(req)
	if err == nil && f.watchDelay > 0 && req.URL.Query().Get("watch") == "true" {
		resp.Body = delayBody(resp.Body, f.watchDelay)
	}
	return resp, err
}

// delayedBody hands out each chunk of the body d after it arrived.
type delayedBody struct {
	rc     io.ReadCloser
	d      time.Duration
	chunks chan chunk
	closed chan struct{}
	once   sync.Once

	buf []byte // read side only
	err error
}

type chunk struct {
	b   []byte
	at  time.Time
	err error
}

func delayBody(rc io.ReadCloser, d time.Duration) *delayedBody {
	b := &delayedBody{rc: rc, d: d, chunks: make(chan chunk, 1024), closed: make(chan struct{})}
	go b.pump()
	return b
}

// pump reads the body as it arrives; it exits on a read error, which
// Close causes.
func (b *delayedBody) pump() {
	for {
		p := make([]byte, 32<<10)
		n, err := b.rc.Read(p)
		select {
		case b.chunks <- chunk{p[:n], time.Now(), err}:
		case <-b.closed:
			return
		}
		if err != nil {
			return
		}
	}
}

func (b *delayedBody) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		var c chunk
		select {
		case c = <-b.chunks:
		case <-b.closed:
			return 0, io.ErrClosedPipe
		}
		timer := time.NewTimer(time.Until(c.at.Add(b.d)))
		select {
		case <-timer.C:
		case <-b.closed:
			timer.Stop()
			return 0, io.ErrClosedPipe
		}
		b.buf, b.err = c.b, c.err
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *delayedBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return b.rc.Close()
}

func TestController_sync_scaleUpFromZero(t *testing.T) {
	t.Parallel()
	env := startEnv(t, testenv.StandInOptions{})
	cs := env.Clientset
	counter := countPods(t, cs, "web")
	runController(t, cs, cs)

	rs := createRS(t, cs, newRS("web", 0))
	waitStatus(t, cs, "web", "observed with 0 replicas", func(s appsv1.ReplicaSetStatus) bool { return s.Replicas == 0 })

	scaleRS(t, cs, "web", 5)
	waitStatus(t, cs, "web", "5 ready", readyAll(5))
	pods := livePods(t, cs, "web")
	if len(pods) != 5 {
		t.Fatalf("%d live pods, want 5", len(pods))
	}
	for _, p := range pods {
		if p.GenerateName != "web-" || !strings.HasPrefix(p.Name, "web-") {
			t.Errorf("pod %s: generateName %q, want web-", p.Name, p.GenerateName)
		}
		if p.Labels["app"] != "web" || p.Labels["tier"] != "web" || len(p.Labels) != 2 {
			t.Errorf("pod %s: labels %v, want the template's", p.Name, p.Labels)
		}
		want := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: rs.UID, Controller: new(true), BlockOwnerDeletion: new(true)}}
		if !slices.EqualFunc(p.OwnerReferences, want, func(a, b metav1.OwnerReference) bool {
			return a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Name == b.Name && a.UID == b.UID && *a.Controller && *a.BlockOwnerDeletion
		}) {
			t.Errorf("pod %s: ownerReferences %+v, want %+v", p.Name, p.OwnerReferences, want)
		}
	}
	if got := counter.maxAfterNow(); got != 5 {
		t.Errorf("at most %d live pods at once, want exactly 5", got)
	}
	// One SuccessfulCreate per Pod, naming it, as kubectl describe rs
	// shows them.
	events := eventsOf(t, cs, rs, 5)
	for _, p := range pods {
		want := "Normal SuccessfulCreate Created pod: " + p.Name + " (replicaset-controller)"
		if !slices.Contains(events, want) {
			t.Errorf("events %q lack %q", events, want)
		}
	}

	// A change that needs no Pod still moves observedGeneration.
	cur, err := cs.AppsV1().ReplicaSets(ns).Patch(t.Context(), "web", types.MergePatchType,
		[]byte(`{"spec":{"template":{"metadata":{"annotations":{"note":"x"}}}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cur.Generation != 3 {
		t.Fatalf("generation %d after two spec changes, want 3", cur.Generation)
	}
	waitStatus(t, cs, "web", "observedGeneration 3", readyAll(5))
}

func TestController_sync_scaleDownDeletesLeastUsefulFirst(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	ready.Store(true)
	env := startEnv(t, testenv.StandInOptions{Ready: func(*corev1.Pod) bool { return ready.Load() }})
	cs := env.Clientset
	runController(t, cs, cs)

	createRS(t, cs, newRS("down", 3))
	waitStatus(t, cs, "down", "3 ready", readyAll(3))
	first := livePods(t, cs, "down")
	// Two of the three have been ready for an hour; the third just
	// became ready and is the least useful of the ready ones.
	var old []string
	for _, p := range first[:2] {
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodReady {
				p.Status.Conditions[i].LastTransitionTime = metav1.NewTime(time.Now().Add(-time.Hour))
			}
		}
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(t.Context(), &p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		old = append(old, p.Name)
	}

	// Two more that run but never become ready.
	ready.Store(false)
	scaleRS(t, cs, "down", 5)
	waitStatus(t, cs, "down", "5 pods, 3 ready", func(s appsv1.ReplicaSetStatus) bool { return s.Replicas == 5 && s.ReadyReplicas == 3 })

	scaleRS(t, cs, "down", 2)
	var left []string
	eventually(t, "2 pods left", func() bool {
		all, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=down"})
		if err != nil {
			t.Fatal(err)
		}
		left = nil
		for _, p := range all.Items {
			left = append(left, p.Name) // terminating ones too: wait until they are gone
		}
		return len(left) == 2
	})
	slices.Sort(left)
	slices.Sort(old)
	if !slices.Equal(left, old) {
		t.Errorf("kept %v, want the two long-ready pods %v", left, old)
	}
	rs := waitStatus(t, cs, "down", "2 ready", readyAll(2))
	events := eventsOf(t, cs, rs, 5+3)
	if n := countPrefix(events, "Normal SuccessfulDelete Deleted pod: down-"); n != 3 {
		t.Errorf("%d SuccessfulDelete events, want 3: %q", n, events)
	}
}

func TestController_sync_replacesDeletedPod(t *testing.T) {
	t.Parallel()
	env := startEnv(t, testenv.StandInOptions{})
	cs := env.Clientset
	counter := countPods(t, cs, "del")
	runController(t, cs, cs)

	createRS(t, cs, newRS("del", 3))
	waitStatus(t, cs, "del", "3 ready", readyAll(3))
	victim := livePods(t, cs, "del")[0].Name
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a replacement", func() bool {
		pods := livePods(t, cs, "del")
		return len(pods) == 3 && !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.Name == victim })
	})
	waitStatus(t, cs, "del", "3 ready", readyAll(3))
	if got := counter.maxAfterNow(); got != 3 {
		t.Errorf("at most %d live pods at once, want 3", got)
	}
}

func TestController_sync_releasesRelabelledPod(t *testing.T) {
	t.Parallel()
	env := startEnv(t, testenv.StandInOptions{})
	cs := env.Clientset
	runController(t, cs, cs)

	rs := createRS(t, cs, newRS("rel", 3))
	waitStatus(t, cs, "rel", "3 ready", readyAll(3))
	name := livePods(t, cs, "rel")[0].Name
	if _, err := cs.CoreV1().Pods(ns).Patch(t.Context(), name, types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"app":"elsewhere"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the relabelled pod released", func() bool {
		p, err := cs.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err) // released, never deleted
		}
		return len(p.OwnerReferences) == 0
	})
	eventually(t, "a replacement", func() bool {
		pods := livePods(t, cs, "rel")
		return len(pods) == 3 && !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.Name == name || !ownedBy(&p, rs) })
	})
	waitStatus(t, cs, "rel", "3 ready", readyAll(3))
}

func TestController_sync_adoptsMatchingOrphan(t *testing.T) {
	t.Parallel()
	env := startEnv(t, testenv.StandInOptions{})
	cs := env.Clientset
	tmpl := newRS("adopt", 3).Spec.Template
	orphan, err := cs.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stray", Labels: tmpl.Labels}, Spec: tmpl.Spec,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	counter := countPods(t, cs, "adopt")
	rs := createRS(t, cs, newRS("adopt", 3))
	runController(t, cs, cs)

	waitStatus(t, cs, "adopt", "3 ready", readyAll(3))
	p, err := cs.CoreV1().Pods(ns).Get(t.Context(), "stray", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.UID != orphan.UID || !ownedBy(p, rs) {
		t.Fatalf("orphan not adopted: uid %s (was %s), owners %+v", p.UID, orphan.UID, p.OwnerReferences)
	}
	if ref := metav1.GetControllerOf(p); ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Errorf("adopted pod's controller ref %+v lacks blockOwnerDeletion", ref)
	}
	pods := livePods(t, cs, "adopt")
	if len(pods) != 3 || slices.ContainsFunc(pods, func(p corev1.Pod) bool { return !ownedBy(&p, rs) }) {
		t.Errorf("want 3 live pods all owned, got %d", len(pods))
	}
	if got := counter.maxAfterNow(); got != 3 {
		t.Errorf("at most %d live pods at once, want 3", got)
	}
}

func TestController_sync_replacesFailedPod(t *testing.T) {
	t.Parallel()
	env := startEnv(t, testenv.StandInOptions{})
	cs := env.Clientset
	runController(t, cs, cs)

	createRS(t, cs, newRS("fail", 2))
	waitStatus(t, cs, "fail", "2 ready", readyAll(2))
	p := livePods(t, cs, "fail")[0]
	p.Status.Phase = corev1.PodFailed
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(t.Context(), &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a replacement for the failed pod", func() bool {
		pods := livePods(t, cs, "fail")
		return len(pods) == 2 && !slices.ContainsFunc(pods, func(q corev1.Pod) bool { return q.Name == p.Name })
	})
	waitStatus(t, cs, "fail", "2 ready", readyAll(2))
	if _, err := cs.CoreV1().Pods(ns).Get(t.Context(), p.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("the failed pod: %v; it is not the controller's to delete", err)
	}
}

func TestController_sync_replicaFailureOnCreateErrors(t *testing.T) {
	t.Parallel()
	env := startEnv(t, testenv.StandInOptions{})
	cs := env.Clientset
	f := &faults{}
	f.failCreates.Store(true)
	runController(t, faultyClient(t, env, f), cs)

	createRS(t, cs, newRS("broken", 2))
	rs := waitStatus(t, cs, "broken", "ReplicaFailure", func(s appsv1.ReplicaSetStatus) bool {
		for _, c := range s.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure {
				return c.Status == corev1.ConditionTrue && c.Reason == replicaset.ReasonFailedCreate && strings.Contains(c.Message, "injected")
			}
		}
		return false
	})
	if rs.Status.Replicas != 0 {
		t.Errorf("status.replicas %d with every create failing", rs.Status.Replicas)
	}
	events := eventsOf(t, cs, rs, 1)
	if n := countPrefix(events, "Warning FailedCreate Error creating: pods is forbidden: injected by the test (replicaset-controller)"); n != 1 {
		t.Errorf("events %q, want one FailedCreate with the API's error", events)
	}

	f.failCreates.Store(false)
	waitStatus(t, cs, "broken", "2 ready and no ReplicaFailure", func(s appsv1.ReplicaSetStatus) bool {
		return readyAll(2)(s) && len(s.Conditions) == 0
	})
}

func TestController_sync_availableAfterMinReadySeconds(t *testing.T) {
	t.Parallel()
	env := startEnv(t, testenv.StandInOptions{})
	cs := env.Clientset
	runController(t, cs, cs)

	rs := newRS("slow", 2)
	rs.Spec.MinReadySeconds = 1
	createRS(t, cs, rs)
	// Nothing changes once the Pods are ready: only the controller's
	// own requeue after minReadySeconds can count them available.
	waitStatus(t, cs, "slow", "2 available", readyAll(2))
}

// TestController_Run_restartMidScaleUp is RELIABILITY.md promise 8 and
// issue 4's check: the controller is stopped in the middle of a scale-up
// from 0 to 500 and a new instance, with fresh caches, finishes it; both
// see the Pods through a slow watch. At no revision are there more than
// 500 live Pods, and there end up exactly 500.
func TestController_Run_restartMidScaleUp(t *testing.T) {
	t.Parallel()
	const want = 500
	env := startEnv(t, testenv.StandInOptions{})
	cs := env.Clientset
	counter := countPods(t, cs, "burst")
	createRS(t, cs, newRS("burst", want))

	stopFirst := runController(t, cs, faultyClient(t, env, &faults{watchDelay: 200 * time.Millisecond}))
	eventually(t, "the scale-up to start", func() bool { return counter.count() >= 20 })
	stopFirst()
	if n := len(livePods(t, cs, "burst")); n >= want {
		t.Fatalf("%d pods when the first instance stopped: not mid-scale-up", n)
	} else {
		t.Logf("first instance stopped at %d pods", n)
	}

	runController(t, cs, faultyClient(t, env, &faults{watchDelay: 200 * time.Millisecond}))
	waitStatus(t, cs, "burst", fmt.Sprintf("%d ready", want), readyAll(want))
	if n := len(livePods(t, cs, "burst")); n != want {
		t.Errorf("%d live pods, want %d", n, want)
	}
	if got := counter.maxAfterNow(); got != want {
		t.Errorf("at most %d live pods at once, want %d", got, want)
	}
}
