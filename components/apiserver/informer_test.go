package apiserver_test

// Watch contract tests (RELIABILITY.md promises 4 and 5, KUBE-API-CONTRACT.md
// §3 and §8) against a real etcd, the HTTPS API server and client-go's own
// informers, reflectors and watches.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/testenv"
)

// wcDeadline bounds every wait in these tests.
const wcDeadline = 30 * time.Second

// wcEventually polls cond until it holds or the deadline passes.
func wcEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wcDeadline)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wcDeadline, what)
		}
		<-tick.C
	}
}

func wcPod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
}

func wcRV(t testing.TB, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q is not a decimal integer: %v", s, err)
	}
	return n
}

// wcOp is one write and the watch event it must produce.
type wcOp struct {
	typ  watch.EventType
	name string
	rv   string
}

func (o wcOp) String() string { return fmt.Sprintf("%s %s@%s", o.typ, o.name, o.rv) }

// wcWriter makes pod writes and records what each must look like on a
// watch: its type, name and the resourceVersion of the response.
type wcWriter struct {
	t   testing.TB
	cs  kubernetes.Interface
	ns  string
	ops []wcOp
}

func (w *wcWriter) record(typ watch.EventType, name, rv string) string {
	w.ops = append(w.ops, wcOp{typ, name, rv})
	return rv
}

func (w *wcWriter) create(name string, labels map[string]string) string {
	w.t.Helper()
	p, err := w.cs.CoreV1().Pods(w.ns).Create(w.t.Context(), wcPod(name, labels), metav1.CreateOptions{})
	if err != nil {
		w.t.Fatalf("create %s: %v", name, err)
	}
	return w.record(watch.Added, name, p.ResourceVersion)
}

// patch merges body into the pod; typ is what a watch of it reports.
func (w *wcWriter) patch(name, body string, typ watch.EventType) string {
	w.t.Helper()
	p, err := w.cs.CoreV1().Pods(w.ns).Patch(w.t.Context(), name, types.MergePatchType, []byte(body), metav1.PatchOptions{})
	if err != nil {
		w.t.Fatalf("patch %s: %v", name, err)
	}
	return w.record(typ, name, p.ResourceVersion)
}

// delete removes an unscheduled pod (no grace period) and records the
// resourceVersion of the delete, which the pod in the response carries.
func (w *wcWriter) delete(name string) string {
	w.t.Helper()
	obj, err := w.cs.CoreV1().RESTClient().Delete().Namespace(w.ns).Resource("pods").Name(name).
		Body(&metav1.DeleteOptions{}).Do(w.t.Context()).Get()
	if err != nil {
		w.t.Fatalf("delete %s: %v", name, err)
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		w.t.Fatalf("delete %s answered %T, want the deleted Pod", name, obj)
	}
	return w.record(watch.Deleted, name, p.ResourceVersion)
}

// wcRecorder wraps the client transport and records each request's URL
// and status code.
type wcRecorder struct {
	mu   sync.Mutex
	reqs []wcRequest
}

type wcRequest struct {
	method string
	path   string
	query  url.Values
	code   int
}

func (r *wcRecorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return wcRoundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, wcRequest{req.Method, req.URL.Path, req.URL.Query(), code})
		r.mu.Unlock()
		return resp, err
	})
}

func (r *wcRecorder) requests() []wcRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

type wcRoundTripper func(*http.Request) (*http.Response, error)

func (f wcRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// wcSeen is one handler call of an informer.
type wcSeen struct {
	op      wcOp
	initial bool
	// tombstone is a delete the informer inferred from a relist.
	tombstone bool
}

// wcHandler records an informer's handler calls.
type wcHandler struct {
	mu   sync.Mutex
	seen []wcSeen
}

func (h *wcHandler) add(op wcOp, initial, tombstone bool) {
	h.mu.Lock()
	h.seen = append(h.seen, wcSeen{op, initial, tombstone})
	h.mu.Unlock()
}

func (h *wcHandler) funcs() cache.ResourceEventHandlerDetailedFuncs {
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			p := obj.(*corev1.Pod)
			h.add(wcOp{watch.Added, p.Name, p.ResourceVersion}, initial, false)
		},
		UpdateFunc: func(_, obj any) {
			p := obj.(*corev1.Pod)
			h.add(wcOp{watch.Modified, p.Name, p.ResourceVersion}, false, false)
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				p := d.Obj.(*corev1.Pod)
				h.add(wcOp{watch.Deleted, p.Name, p.ResourceVersion}, false, true)
				return
			}
			p := obj.(*corev1.Pod)
			h.add(wcOp{watch.Deleted, p.Name, p.ResourceVersion}, false, false)
		},
	}
}

func (h *wcHandler) snapshot() []wcSeen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen)
}

// wcDefaultConfig is client-go's default client configuration (protobuf
// accepted, WatchListClient on) for the env's admin, recording requests.
func wcDefaultConfig(env *testenv.Env, rec *wcRecorder) *rest.Config {
	cfg := rest.CopyConfig(env.RESTConfig)
	cfg.ContentType = ""
	if rec != nil {
		cfg.WrapTransport = rec.wrap
	}
	return cfg
}

// wcStartInformer runs a pod informer on ns with a recording handler until
// the test ends, and waits for it to sync.
func wcStartInformer(t *testing.T, cfg *rest.Config, ns string) (cache.SharedIndexInformer, *wcHandler) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Pods().Informer()
	h := &wcHandler{}
	reg, err := inf.AddEventHandler(h.funcs())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	factory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
	})
	syncCtx, syncCancel := context.WithTimeout(ctx, wcDeadline)
	defer syncCancel()
	// The registration has synced once the handler has seen the initial
	// list, not just the cache.
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced, reg.HasSynced) {
		t.Fatalf("pod informer did not sync in %v", wcDeadline)
	}
	return inf, h
}

// wcServerState lists the pods of ns as name -> resourceVersion.
func wcServerState(t testing.TB, cs kubernetes.Interface, ns string) (map[string]string, string) {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, p := range l.Items {
		m[p.Name] = p.ResourceVersion
	}
	return m, l.ResourceVersion
}

func wcCacheState(inf cache.SharedIndexInformer) map[string]string {
	m := map[string]string{}
	for _, o := range inf.GetStore().List() {
		p := o.(*corev1.Pod)
		m[p.Name] = p.ResourceVersion
	}
	return m
}

func wcMapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// wcMixedOps makes n creates, updates and deletes in a fixed pseudo-random
// order, one at a time, so their resourceVersions are a total order.
func wcMixedOps(w *wcWriter, n int, seed uint64, prefix string) {
	w.t.Helper()
	rnd := rand.New(rand.NewPCG(seed, 7))
	var live []string
	next := 0
	for i := range n {
		switch r := rnd.IntN(10); {
		case len(live) < 3 || r < 4:
			name := fmt.Sprintf("%s-%03d", prefix, next)
			next++
			w.create(name, map[string]string{"app": "mix"})
			live = append(live, name)
		case r < 8:
			name := live[rnd.IntN(len(live))]
			w.patch(name, fmt.Sprintf(`{"metadata":{"annotations":{"step":"%d"}}}`, i), watch.Modified)
		default:
			j := rnd.IntN(len(live))
			w.delete(live[j])
			live = slices.Delete(live, j, j+1)
		}
	}
}

// TestInformer_WatchList_everyWriteOnceInOrder: a SharedInformer with
// client-go's defaults syncs through one watch-list request, and then sees
// each of 200 writes exactly once, in resourceVersion order, with the
// resourceVersion the write's response carried.
func TestInformer_WatchList_everyWriteOnceInOrder(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	const ns = "default"
	w := &wcWriter{t: t, cs: env.Clientset, ns: ns}
	for i := range 5 {
		w.create(fmt.Sprintf("pre-%d", i), nil)
	}
	pre := slices.Clone(w.ops)
	w.ops = nil

	rec := &wcRecorder{}
	inf, h := wcStartInformer(t, wcDefaultConfig(env, rec), ns)

	// The informer synced with a single watch-list request, not a list.
	var podReqs []wcRequest
	for _, r := range rec.requests() {
		if r.path == "/api/v1/namespaces/"+ns+"/pods" {
			podReqs = append(podReqs, r)
		}
	}
	if len(podReqs) != 1 {
		t.Fatalf("informer made %d pod requests to sync, want 1 watch-list: %+v", len(podReqs), podReqs)
	}
	if q := podReqs[0].query; q.Get("watch") != "true" || q.Get("sendInitialEvents") != "true" || q.Get("allowWatchBookmarks") != "true" || podReqs[0].code != http.StatusOK {
		t.Fatalf("sync request was not an accepted watch-list: %+v", podReqs[0])
	}
	var initial []wcOp
	for _, s := range h.snapshot() {
		if !s.initial {
			t.Fatalf("handler call before any write was not an initial ADDED: %+v", s)
		}
		initial = append(initial, s.op)
	}
	slices.SortFunc(initial, func(a, b wcOp) int { return wcCmp(a.name, b.name) })
	if !slices.Equal(initial, pre) {
		t.Fatalf("initial events:\n got %v\nwant %v", initial, pre)
	}

	const n = 200
	wcMixedOps(w, n, 1, "p")
	// A sentinel write after the sequence: once it is seen, everything
	// before it has been delivered, so extra or duplicate events show.
	w.create("sentinel", nil)
	want := w.ops
	wcEventually(t, "the sentinel event", func() bool {
		s := h.snapshot()
		return len(s) > 0 && s[len(s)-1].op.name == "sentinel"
	})
	var got []wcOp
	for _, s := range h.snapshot()[len(pre):] {
		if s.initial || s.tombstone {
			t.Fatalf("unexpected handler call after sync: %+v", s)
		}
		got = append(got, s.op)
	}
	// Each pod's events are ordered by resourceVersion, and no
	// resourceVersion is seen twice.
	last := map[string]int64{}
	seenRV := map[string]bool{}
	for _, e := range got {
		rv := wcRV(t, e.rv)
		if rv <= last[e.name] {
			t.Errorf("%s: resourceVersion %d after %d", e.name, rv, last[e.name])
		}
		last[e.name] = rv
		if seenRV[e.rv] {
			t.Errorf("resourceVersion %s delivered twice", e.rv)
		}
		seenRV[e.rv] = true
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("event %d of %d: got %v, want %v (got %d events, want %d)", i, len(want), got[i], want[i], len(got), len(want))
			}
		}
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	server, _ := wcServerState(t, env.Clientset, ns)
	if c := wcCacheState(inf); !wcMapsEqual(c, server) {
		t.Fatalf("informer cache differs from the server:\ncache  %v\nserver %v", c, server)
	}
	t.Logf("%d writes seen once each, in order; cache matches %d pods", len(want), len(server))
}

func wcCmp(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// wcNextEvent reads one event or fails after the deadline.
func wcNextEvent(t testing.TB, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case e, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed early")
		}
		return e
	case <-time.After(wcDeadline):
		t.Fatalf("no watch event in %v", wcDeadline)
	}
	return watch.Event{}
}

// wcReadOps reads n events and returns them as ops.
func wcReadOps(t testing.TB, w watch.Interface, n int) []wcOp {
	t.Helper()
	var out []wcOp
	for range n {
		e := wcNextEvent(t, w)
		p, ok := e.Object.(*corev1.Pod)
		if !ok {
			t.Fatalf("event %s carries %T: %+v", e.Type, e.Object, e.Object)
		}
		out = append(out, wcOp{e.Type, p.Name, p.ResourceVersion})
	}
	return out
}

// TestWatch_fromResourceVersion_exactlyLaterEvents: a watch from RV N gets
// every event after N and nothing at or before it, and two watches from
// the same RV see the same sequence.
func TestWatch_fromResourceVersion_exactlyLaterEvents(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	const ns = "default"
	w := &wcWriter{t: t, cs: env.Clientset, ns: ns}
	wcMixedOps(w, 30, 2, "r")
	const k = 12
	from := w.ops[k-1].rv
	w.create("sentinel", nil)
	want := w.ops[k:]

	var streams [][]wcOp
	for range 2 {
		wa, err := env.Clientset.CoreV1().Pods(ns).Watch(t.Context(), metav1.ListOptions{ResourceVersion: from})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, wcReadOps(t, wa, len(want)))
		wa.Stop()
	}
	for i, got := range streams {
		if !slices.Equal(got, want) {
			t.Fatalf("watch %d from %s:\n got %v\nwant %v", i, from, got, want)
		}
	}
}

// TestWatch_labelSelector_transitions: a selector watch reports an object
// that starts matching as ADDED and one that stops matching as DELETED,
// carrying its last matching state at the resourceVersion of the change,
// as kube's watch does.
func TestWatch_labelSelector_transitions(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	const ns = "default"
	w := &wcWriter{t: t, cs: env.Clientset, ns: ns}
	w.create("p", map[string]string{"app": "other"})
	from := w.ops[0].rv
	wa, err := env.Clientset.CoreV1().Pods(ns).Watch(t.Context(), metav1.ListOptions{ResourceVersion: from, LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Stop()
	w.ops = nil
	w.patch("p", `{"metadata":{"labels":{"app":"web"}}}`, watch.Added)
	w.patch("p", `{"metadata":{"annotations":{"a":"1"}}}`, watch.Modified)
	w.patch("p", `{"metadata":{"labels":{"app":"other"}}}`, watch.Deleted)
	// Writes to objects that do not match produce no event.
	w.patch("p", `{"metadata":{"annotations":{"a":"2"}}}`, "")
	w.ops = w.ops[:len(w.ops)-1]
	w.create("q", map[string]string{"app": "other"})
	w.ops = w.ops[:len(w.ops)-1]
	w.patch("p", `{"metadata":{"labels":{"app":"web"}}}`, watch.Added)
	w.delete("p")
	w.create("sentinel", map[string]string{"app": "web"})

	var got []wcOp
	for range w.ops {
		e := wcNextEvent(t, wa)
		p := e.Object.(*corev1.Pod)
		got = append(got, wcOp{e.Type, p.Name, p.ResourceVersion})
		if p.Labels["app"] != "web" {
			t.Errorf("%s %s@%s carries labels %v; a selector watch must only show matching states", e.Type, p.Name, p.ResourceVersion, p.Labels)
		}
	}
	if !slices.Equal(got, w.ops) {
		t.Fatalf("selector watch:\n got %v\nwant %v", got, w.ops)
	}
}

// TestWatch_sendInitialEvents_bookmarkEndsInitialEvents: a watch-list
// stream is ADDED for every object, one BOOKMARK annotated
// k8s.io/initial-events-end at an RV not older than any of them, then live
// events newer than the bookmark.
func TestWatch_sendInitialEvents_bookmarkEndsInitialEvents(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	const ns = "default"
	w := &wcWriter{t: t, cs: env.Clientset, ns: ns}
	for i := range 3 {
		w.create(fmt.Sprintf("a%d", i), nil)
	}
	w.patch("a1", `{"metadata":{"annotations":{"x":"y"}}}`, watch.Modified)
	state, _ := wcServerState(t, env.Clientset, ns)

	yes := true
	wa, err := env.Clientset.CoreV1().Pods(ns).Watch(t.Context(), metav1.ListOptions{
		SendInitialEvents: &yes, AllowWatchBookmarks: true, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Stop()
	got := map[string]string{}
	var maxRV int64
	for range state {
		e := wcNextEvent(t, wa)
		p, ok := e.Object.(*corev1.Pod)
		if e.Type != watch.Added || !ok {
			t.Fatalf("initial event %s %T, want ADDED Pod", e.Type, e.Object)
		}
		got[p.Name] = p.ResourceVersion
		maxRV = max(maxRV, wcRV(t, p.ResourceVersion))
	}
	if !wcMapsEqual(got, state) {
		t.Fatalf("initial events %v, want %v", got, state)
	}
	e := wcNextEvent(t, wa)
	bm, ok := e.Object.(*corev1.Pod)
	if e.Type != watch.Bookmark || !ok || bm.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Fatalf("after initial events got %s %+v, want the initial-events-end BOOKMARK", e.Type, e.Object)
	}
	bmRV := wcRV(t, bm.ResourceVersion)
	if bmRV < maxRV {
		t.Fatalf("bookmark RV %d older than initial object RV %d", bmRV, maxRV)
	}
	w.ops = nil
	w.create("live", nil)
	live := wcReadOps(t, wa, 1)
	if live[0] != w.ops[0] || wcRV(t, live[0].rv) <= bmRV {
		t.Fatalf("live event %v (bookmark %d), want %v", live[0], bmRV, w.ops[0])
	}
}

// TestWatch_compactedResourceVersion_410ThenRelist: after compaction a
// watch (or an exact list) from an older RV answers 410 Expired, a watch
// that was already caught up keeps going, and a relist gives an RV to
// watch from.
func TestWatch_compactedResourceVersion_410ThenRelist(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	const ns = "default"
	pods := env.Clientset.CoreV1().Pods(ns)
	w := &wcWriter{t: t, cs: env.Clientset, ns: ns}
	old := w.create("a", nil)
	live, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: old})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Stop()
	w.create("b", nil)
	w.patch("a", `{"metadata":{"annotations":{"x":"1"}}}`, watch.Modified)
	if got := wcReadOps(t, live, 2); !slices.Equal(got, w.ops[1:]) {
		t.Fatalf("live watch: got %v, want %v", got, w.ops[1:])
	}
	cur, err := env.Store.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}

	// A new watch from before the compaction: 410, as a status or as an
	// ERROR event.
	wa, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: old})
	if err == nil {
		e := wcNextEvent(t, wa)
		wa.Stop()
		st, ok := e.Object.(*metav1.Status)
		if e.Type != watch.Error || !ok || st.Code != http.StatusGone {
			t.Fatalf("watch from compacted RV %s: got %s %+v, want 410", old, e.Type, e.Object)
		}
	} else if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("watch from compacted RV %s: %v, want 410 Expired", old, err)
	}
	_, err = pods.List(ctx, metav1.ListOptions{ResourceVersion: old, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("exact list at compacted RV %s: %v, want 410 Expired", old, err)
	}

	// The watch that was caught up before the compaction is unaffected.
	w.ops = nil
	w.create("c", nil)
	if got := wcReadOps(t, live, 1); !slices.Equal(got, w.ops) {
		t.Fatalf("live watch after compaction: got %v, want %v", got, w.ops)
	}

	// Relist, then watch from the list's RV.
	state, listRV := wcServerState(t, env.Clientset, ns)
	if len(state) != 3 || wcRV(t, listRV) < cur {
		t.Fatalf("relist: %v at %s (compacted at %d)", state, listRV, cur)
	}
	wa, err = pods.Watch(ctx, metav1.ListOptions{ResourceVersion: listRV})
	if err != nil {
		t.Fatalf("watch from the relist RV %s: %v", listRV, err)
	}
	defer wa.Stop()
	w.ops = nil
	w.delete("b")
	if got := wcReadOps(t, wa, 1); !slices.Equal(got, w.ops) {
		t.Fatalf("watch from relist RV: got %v, want %v", got, w.ops)
	}
}

// wcLW is a pod ListerWatcher that runs a hook before the first watch
// that resumes from a resourceVersion, and records each watch's outcome.
type wcLW struct {
	cs        kubernetes.Interface
	ns        string
	watchList bool
	// shortFirstWatch ends the first (watch-list) stream after a few
	// seconds, so the reflector resumes from its RV.
	shortFirstWatch bool
	hook            func(rv string)

	mu      sync.Mutex
	hooked  bool
	watches []string
	lists   int
}

func (l *wcLW) IsWatchListSemanticsUnSupported() bool { return !l.watchList }

func (l *wcLW) List(opts metav1.ListOptions) (runtime.Object, error) {
	panic("reflector must call ListWithContext")
}

func (l *wcLW) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	panic("reflector must call WatchWithContext")
}

func (l *wcLW) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	l.mu.Lock()
	l.lists++
	l.mu.Unlock()
	return l.cs.CoreV1().Pods(l.ns).List(ctx, opts)
}

func (l *wcLW) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	l.mu.Lock()
	first := len(l.watches) == 0
	runHook := !l.hooked && opts.ResourceVersion != "" && opts.ResourceVersion != "0" && opts.SendInitialEvents == nil
	if runHook {
		l.hooked = true
	}
	l.mu.Unlock()
	if first && l.shortFirstWatch {
		two := int64(2)
		opts.TimeoutSeconds = &two
	}
	if runHook {
		l.hook(opts.ResourceVersion)
	}
	w, err := l.cs.CoreV1().Pods(l.ns).Watch(ctx, opts)
	outcome := "ok"
	switch {
	case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
		outcome = "410"
	case err != nil:
		outcome = err.Error()
	}
	kind := "watch"
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
		kind = "watch-list"
	}
	l.mu.Lock()
	l.watches = append(l.watches, fmt.Sprintf("%s rv=%q: %s", kind, opts.ResourceVersion, outcome))
	l.mu.Unlock()
	return w, err
}

func (l *wcLW) log() (watches []string, lists int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.watches), l.lists
}

// TestReflector_watchExpired_relists: when the reflector resumes a watch
// from an RV that compaction removed, the server answers 410 and the
// reflector's relist (a list, or a watch-list) brings its store back to
// exactly the server's state, both with the classic list+watch and with
// client-go's default watch-list.
func TestReflector_watchExpired_relists(t *testing.T) {
	for _, tc := range []struct {
		name      string
		watchList bool
	}{
		{name: "list+watch", watchList: false},
		{name: "watch-list", watchList: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.Start(t, testenv.Options{})
			ctx := t.Context()
			const ns = "default"
			w := &wcWriter{t: t, cs: env.Clientset, ns: ns}
			w.create("a", nil)
			w.create("b", nil)
			cs, err := kubernetes.NewForConfig(wcDefaultConfig(env, nil))
			if err != nil {
				t.Fatal(err)
			}
			hookDone := make(chan struct{})
			lw := &wcLW{cs: cs, ns: ns, watchList: tc.watchList, shortFirstWatch: tc.watchList}
			lw.hook = func(rv string) {
				// Between the reflector's sync and its watch: writes it
				// must not miss, then compaction past its RV.
				defer close(hookDone)
				hw := &wcWriter{t: t, cs: env.Clientset, ns: ns}
				hw.create("during", nil)
				hw.delete("a")
				cur, err := env.Store.CurrentRevision(ctx)
				if err == nil {
					err = env.Store.Compact(ctx, cur)
				}
				if err != nil {
					t.Errorf("compact: %v", err)
				}
			}
			st := cache.NewStore(cache.MetaNamespaceKeyFunc)
			r := cache.NewReflectorWithOptions(lw, &corev1.Pod{}, st, cache.ReflectorOptions{Name: "wc-" + tc.name})
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); r.RunWithContext(rctx) }()
			defer func() { cancel(); <-done }()

			select {
			case <-hookDone:
			case <-time.After(wcDeadline):
				ws, ls := lw.log()
				t.Fatalf("the reflector never resumed a watch from an RV (watches %v, lists %d)", ws, ls)
			}
			// The reflector gets 410, re-syncs and watches again; a write
			// after that must reach its store through the new watch.
			wcEventually(t, "a watch to succeed after the 410", func() bool {
				ws, _ := lw.log()
				i := slices.IndexFunc(ws, func(s string) bool { return strings.HasSuffix(s, ": 410") })
				return i >= 0 && slices.ContainsFunc(ws[i+1:], func(s string) bool { return strings.HasSuffix(s, ": ok") })
			})
			w.create("after", nil)
			wcEventually(t, "the reflector store to equal the server", func() bool {
				server, _ := wcServerState(t, env.Clientset, ns)
				got := map[string]string{}
				for _, o := range st.List() {
					p := o.(*corev1.Pod)
					got[p.Name] = p.ResourceVersion
				}
				return wcMapsEqual(got, server)
			})
			ws, ls := lw.log()
			t.Logf("watches %v; lists %d", ws, ls)
			i := slices.IndexFunc(ws, func(s string) bool { return strings.HasSuffix(s, ": 410") })
			if tc.watchList {
				if ls != 0 || !slices.ContainsFunc(ws[i+1:], func(s string) bool { return strings.HasPrefix(s, "watch-list") && strings.HasSuffix(s, ": ok") }) {
					t.Fatalf("after 410 the reflector must re-sync with a watch-list: %v, lists %d", ws, ls)
				}
			} else if ls < 2 {
				t.Fatalf("after 410 the reflector must relist: %d lists", ls)
			}
		})
	}
}

// wcServer is a second API server over the env's store, which the test can
// stop and start again on the same address.
type wcServer struct {
	t    *testing.T
	env  *testenv.Env
	addr string
	stop func()
}

func (s *wcServer) start() {
	s.t.Helper()
	tlsDir := filepath.Join(s.env.DataDir, "tls")
	ca, err := pki.EnsureCA(tlsDir)
	if err != nil {
		s.t.Fatal(err)
	}
	cert, err := ca.EnsureServing(tlsDir, "serving", []string{"127.0.0.1", "localhost"})
	if err != nil {
		s.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	log := slog.New(slog.NewTextHandler(s.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := apiserver.New(apiserver.Config{Store: s.env.Store, Listener: ln, TLS: &cert, Logger: log,
		Tokens: map[string]apiserver.User{s.env.Token: {Name: "admin", Groups: []string{apiserver.GroupMasters}}}})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(s.t.Context()))
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				s.t.Errorf("second apiserver: %v", err)
			}
		case <-time.After(wcDeadline):
			s.t.Errorf("second apiserver did not stop in %v", wcDeadline)
		}
	}
	s.t.Cleanup(s.stop)
	select {
	case <-srv.Ready():
	case err := <-done:
		s.t.Fatalf("second apiserver stopped: %v", err)
	case <-time.After(wcDeadline):
		s.t.Fatal("second apiserver not ready")
	}
}

// TestInformer_apiserverRestartAndCompaction_converges: an informer whose
// API server goes away while writes happen and history is compacted past
// its RV ends, once the server is back, with a cache equal to the server's
// list, and its handler saw the final state of every object.
func TestInformer_apiserverRestartAndCompaction_converges(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	const ns = "default"
	srv := &wcServer{t: t, env: env, addr: "127.0.0.1:0"}
	srv.start()
	cfg := wcDefaultConfig(env, nil)
	cfg.Host = "https://" + srv.addr
	inf, h := wcStartInformer(t, cfg, ns)

	w := &wcWriter{t: t, cs: env.Clientset, ns: ns}
	wcMixedOps(w, 40, 3, "before")
	wcEventually(t, "the informer to see the first writes", func() bool {
		server, _ := wcServerState(t, env.Clientset, ns)
		return wcMapsEqual(wcCacheState(inf), server)
	})

	srv.stop()
	wcMixedOps(w, 40, 4, "down")
	// Delete some objects the informer holds, so a relist must drop them.
	for _, name := range []string{"before-000", "before-001", "before-002"} {
		if _, err := env.Clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			w.delete(name)
		}
	}
	cur, err := env.Store.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}
	srv.start()
	wcMixedOps(w, 40, 5, "after")

	server, _ := wcServerState(t, env.Clientset, ns)
	wcEventually(t, "the informer cache to equal the server's list", func() bool {
		return wcMapsEqual(wcCacheState(inf), server)
	})
	// The handler's view: apply its calls in order; it must end at the
	// server's state, and no object's RV may go backwards. Handlers run
	// after the cache is updated, so the view may lag it a little.
	viewOf := func(calls []wcSeen) map[string]string {
		view := map[string]string{}
		for _, s := range calls {
			if s.op.typ == watch.Deleted {
				delete(view, s.op.name)
			} else {
				view[s.op.name] = s.op.rv
			}
		}
		return view
	}
	var calls []wcSeen
	deadline := time.Now().Add(wcDeadline)
	for calls = h.snapshot(); !wcMapsEqual(viewOf(calls), server); calls = h.snapshot() {
		if time.Now().After(deadline) {
			t.Fatalf("handler's final view differs from the server:\nview   %v\nserver %v", viewOf(calls), server)
		}
		time.Sleep(10 * time.Millisecond)
	}
	last := map[string]int64{}
	for _, s := range calls {
		rv := wcRV(t, s.op.rv)
		if rv < last[s.op.name] {
			t.Errorf("handler saw %s go back from RV %d to %d", s.op.name, last[s.op.name], rv)
		}
		last[s.op.name] = rv
	}
	t.Logf("converged on %d pods after %d handler calls", len(server), len(h.snapshot()))
}

// TestList_paged_oneResourceVersion: every page of a paged list is read at
// the first page's RV (a write between pages is not seen), and a continue
// token whose RV was compacted answers 410 Expired.
func TestList_paged_oneResourceVersion(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	cms := env.Clientset.CoreV1().ConfigMaps("default")
	for i := range 25 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%02d", i)}}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// kube-root-ca.crt-style objects may exist in default; count them.
	all, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	total := len(all.Items)

	var names []string
	var rvs []string
	opts := metav1.ListOptions{Limit: 10}
	for page := 0; ; page++ {
		l, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		rvs = append(rvs, l.ResourceVersion)
		for _, cm := range l.Items {
			names = append(names, cm.Name)
		}
		if page == 0 {
			if l.RemainingItemCount == nil || *l.RemainingItemCount != int64(total-10) {
				t.Errorf("page 0 remainingItemCount %v, want %d", l.RemainingItemCount, total-10)
			}
			// A write between pages must not show up in later pages.
			if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-zz-between"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if l.Continue == "" {
			if len(l.Items) > 10 {
				t.Fatalf("last page has %d items, limit 10", len(l.Items))
			}
			break
		}
		if len(l.Items) != 10 {
			t.Fatalf("page %d has %d items with a continue token, want 10", page, len(l.Items))
		}
		opts.Continue = l.Continue
	}
	if len(rvs) != (total+9)/10 {
		t.Fatalf("%d pages for %d objects with limit 10", len(rvs), total)
	}
	for _, rv := range rvs[1:] {
		if rv != rvs[0] {
			t.Fatalf("pages have resourceVersions %v, want one", rvs)
		}
	}
	want := make([]string, 0, total)
	for _, cm := range all.Items {
		want = append(want, cm.Name)
	}
	if !slices.Equal(names, want) {
		t.Fatalf("paged names:\n got %v\nwant %v", names, want)
	}

	// An expired continue token: 410.
	l, err := cms.List(ctx, metav1.ListOptions{Limit: 10})
	if err != nil || l.Continue == "" {
		t.Fatalf("first page: %v (continue %q)", err, l.Continue)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-zz-after"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cur, err := env.Store.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}
	_, err = cms.List(ctx, metav1.ListOptions{Limit: 10, Continue: l.Continue})
	if !apierrors.IsResourceExpired(err) {
		t.Fatalf("continue after compaction: %v, want 410 Expired", err)
	}
	if s, ok := err.(apierrors.APIStatus); !ok || s.Status().Code != http.StatusGone {
		t.Fatalf("continue after compaction: %v, want code 410", err)
	}
}
