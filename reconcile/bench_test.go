package reconcile_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources"
	"kiln.dev/kiln/sources/dir"
	"kiln.dev/kiln/sources/git"
)

// The benchmarks below do one fixed workload per invocation and print one
// line each in the `make bench` format (DESIGN.md); run them with
// -benchtime 1x. The reconciler gets the client-side rate limit that
// `kiln server` gives it (cmd/kiln/sync.go), so the figures are the
// appliance's.

const (
	// benchSyncObjects is how many ConfigMaps the directory benchmarks
	// sync, one per file, beside one Namespace.
	benchSyncObjects = 1000
	// benchSyncChanges is how many one-file changes BenchmarkSyncDirLatency
	// times.
	benchSyncChanges = 50
	// benchGitObjects and benchGitChanges are the same for
	// BenchmarkSyncGitLatency.
	benchGitObjects = 50
	benchGitChanges = 10
	// benchPace is the pause between two changes.
	benchPace   = 500 * time.Millisecond
	benchSyncNS = "bench"
	benchSource = "bench"
	// benchWait bounds every wait for the reconciler.
	benchWait = 2 * time.Minute
)

// BenchmarkSyncDirLatency syncs a directory of 1,000 ConfigMaps (one per
// file) and a Namespace, then changes one file 50 times, half a second
// apart, and times each change from the write to the watch event that
// shows the new value in the API. It reports the median and, on a second
// line, the 99th percentile.
func BenchmarkSyncDirLatency(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	d := b.TempDir()
	benchWriteTree(b, d, benchSyncObjects)
	src, err := dir.New(dir.Config{Name: benchSource, Path: d, Logger: benchLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	benchRunReconciler(b, env, src, reconcile.SourceSpec{Kind: "dir", Path: d, Prune: true})
	benchWaitSynced(b, env)

	lat := make([]time.Duration, benchSyncChanges)
	b.ResetTimer()
	for i := range lat {
		name := benchCMName((i * 389) % benchSyncObjects) // spread over the tree
		value := fmt.Sprintf("change-%d", i)
		synced := benchWatchSynced(b, env)
		lat[i] = benchTimeChange(b, env, name, value, func() {
			benchWriteFile(b, d, name+".yaml", benchConfigMapYAML(name, value))
		})
		// Let the sync finish (status written) and its aftermath settle
		// (the drift watches list every managed object again) before the
		// next change, so that each change is timed alone, as a person's
		// edits, seconds apart, are. This paces the workload; it waits
		// for nothing.
		synced()
		time.Sleep(benchPace)
	}
	b.StopTimer()

	benchLogHistory(b, benchWaitSynced(b, env))
	slices.Sort(lat)
	p50, p99 := benchPercentile(lat, 0.50), benchPercentile(lat, 0.99)
	b.Logf("%d changes: min %v, p50 %v, p99 %v, max %v", len(lat), lat[0], p50, p99, lat[len(lat)-1])
	fmt.Printf("BENCH sync-dir-latency %.0f ms\n", benchMillis(p50))
	fmt.Printf("BENCH sync-dir-latency-p99 %.0f ms\n", benchMillis(p99))
}

// BenchmarkSyncGitLatency syncs 50 ConfigMaps and a Namespace from a bare
// repository served over smart HTTP by git http-backend, with a poll
// interval of an hour; then 10 times, half a second apart, it commits and
// pushes a change with the git CLI, POSTs a signed GitHub push webhook to
// reconcile's webhook handler and times from the end of the push (when a
// git host sends the webhook) to the watch event that shows the change in
// the API.
func BenchmarkSyncGitLatency(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	gitBin, err := exec.LookPath("git")
	testenv.Require(b, "git on PATH", err == nil)
	root := b.TempDir()
	r := benchNewRepo(b, gitBin, root)
	benchWriteTree(b, r.work, benchGitObjects)
	r.commitPush("initial")
	srv := benchGitServer(b, gitBin, root)

	src, err := git.New(git.Config{Name: benchSource, URL: srv.URL + "/remote.git", Interval: time.Hour,
		WorkDir: filepath.Join(b.TempDir(), "work"), Logger: benchLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	benchRunReconciler(b, env, src, reconcile.SourceSpec{Kind: "git", URL: srv.URL + "/remote.git", Interval: "1h", Prune: true})
	// The webhook as `kiln server` serves it (cmd/kiln/http.go).
	secret := []byte("bench-webhook-secret")
	mux := http.NewServeMux()
	mux.Handle(reconcile.WebhookPath, reconcile.WebhookHandler(reconcile.WebhookConfig{Logger: benchLogger(b),
		Sources: map[string]reconcile.WebhookSource{benchSource: {Trigger: src.Trigger, Secret: secret, Branch: "main"}}}))
	hook := httptest.NewServer(mux)
	b.Cleanup(hook.Close)
	benchWaitSynced(b, env)

	lat := make([]time.Duration, benchGitChanges)
	var push time.Duration
	b.ResetTimer()
	for i := range lat {
		name := benchCMName((i * 7) % benchGitObjects)
		value := fmt.Sprintf("change-%d", i)
		synced := benchWatchSynced(b, env)
		lat[i] = benchTimeChange(b, env, name, value, func() {
			benchWriteFile(b, r.work, name+".yaml", benchConfigMapYAML(name, value))
			start := time.Now()
			r.commitPush(value)
			push += time.Since(start)
		}, func() {
			benchPostWebhook(b, hook.URL+reconcile.WebhookPath+benchSource, secret)
		})
		synced()
		time.Sleep(benchPace) // as in BenchmarkSyncDirLatency
	}
	b.StopTimer()

	benchLogHistory(b, benchWaitSynced(b, env))
	slices.Sort(lat)
	p50 := benchPercentile(lat, 0.50)
	b.Logf("%d pushes (commit+push %v each): min %v, p50 %v, max %v", len(lat), push/time.Duration(len(lat)), lat[0], p50, lat[len(lat)-1])
	fmt.Printf("BENCH sync-git-latency %.0f ms\n", benchMillis(p50))
}

// BenchmarkSyncFull1000 times the first sync of 1,000 ConfigMaps (one per
// file) and a Namespace into a fresh control plane, from the reconciler's
// start to the Source's Ready condition, and compares it with `kubectl
// apply -f DIR --recursive` of the same directory into another fresh
// control plane. The ratio is kiln's time over kubectl's.
func BenchmarkSyncFull1000(b *testing.B) {
	kubectl := testenv.Kubectl(b)
	d := b.TempDir()
	benchWriteTree(b, d, benchSyncObjects)

	b.ResetTimer()
	env := testenv.Start(b, testenv.Options{})
	src, err := dir.New(dir.Config{Name: benchSource, Path: d, Logger: benchLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	w := benchWatchSource(b, env)
	start := time.Now()
	stop := benchRunReconciler(b, env, src, reconcile.SourceSpec{Kind: "dir", Path: d, Prune: true})
	st := w.until(b)
	kiln := time.Since(start)
	w.stop()
	stop()
	if got := benchCount(b, env); got != benchSyncObjects {
		b.Fatalf("kiln applied %d ConfigMaps, want %d", got, benchSyncObjects)
	}
	benchLogHistory(b, st)
	env.Stop()

	env2 := testenv.Start(b, testenv.Options{})
	home := b.TempDir()
	cmd := exec.CommandContext(b.Context(), kubectl, "apply", "-f", d, "--recursive", "--cache-dir", filepath.Join(home, "cache"))
	cmd.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG="+env2.Kubeconfig)
	start = time.Now()
	out, err := cmd.CombinedOutput()
	kube := time.Since(start)
	if err != nil {
		b.Fatalf("kubectl apply: %v\n%s", err, benchTail(out))
	}
	if got := benchCount(b, env2); got != benchSyncObjects {
		b.Fatalf("kubectl applied %d ConfigMaps, want %d", got, benchSyncObjects)
	}
	b.StopTimer()

	b.Logf("first sync of %d objects: kiln %v, kubectl apply %v", benchSyncObjects+1, kiln, kube)
	fmt.Printf("BENCH sync-full-1000 %.0f ms %.2f vs kubectl-apply\n", benchMillis(kiln), kiln.Seconds()/kube.Seconds())
}

// benchRunReconciler runs a reconciler over one source until the
// benchmark ends or the returned func is called.
func benchRunReconciler(b *testing.B, env *testenv.Env, src sources.Source, spec reconcile.SourceSpec) (stop func()) {
	b.Helper()
	rc := rest.CopyConfig(env.RESTConfig)
	rc.QPS, rc.Burst = 1000, 2000 // as cmd/kiln/sync.go gives the reconciler
	if spec.Namespace == "" {
		spec.Namespace = "default"
	}
	rec, err := reconcile.New(reconcile.Config{RESTConfig: rc, Logger: benchLogger(b),
		Sources: []reconcile.SourceConfig{{Name: benchSource, Spec: spec, Fetcher: src}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			b.Errorf("reconciler: %v", err)
		}
	}
	b.Cleanup(stop)
	return stop
}

func benchLogger(b *testing.B) *slog.Logger {
	return slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// sourceWatch follows the Source object.
type sourceWatch struct{ w watch.Interface }

func (s *sourceWatch) stop() { s.w.Stop() }

// benchWatchSource watches the Source (which need not exist yet).
func benchWatchSource(b *testing.B, env *testenv.Env) *sourceWatch {
	b.Helper()
	dyn, err := dynamic.NewForConfig(env.RESTConfig)
	if err != nil {
		b.Fatal(err)
	}
	w, err := dyn.Resource(reconcile.SourceGVR).Watch(b.Context(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", benchSource).String()})
	if err != nil {
		b.Fatal(err)
	}
	return &sourceWatch{w: w}
}

// until waits for the Source to be Ready with a revision applied.
func (s *sourceWatch) until(b *testing.B) reconcile.Source {
	b.Helper()
	timeout := time.After(benchWait)
	last := "no Source yet"
	for {
		select {
		case ev, ok := <-s.w.ResultChan():
			if !ok {
				b.Fatalf("source watch closed; last: %s", last)
			}
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				b.Fatalf("source watch: %v event %T", ev.Type, ev.Object)
			}
			var src reconcile.Source
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &src); err != nil {
				b.Fatal(err)
			}
			c := meta.FindStatusCondition(src.Status.Conditions, reconcile.ConditionReady)
			if c != nil {
				last = c.Reason + ": " + c.Message
			}
			if meta.IsStatusConditionTrue(src.Status.Conditions, reconcile.ConditionReady) &&
				src.Status.LastAppliedRevision != "" {
				return src
			}
		case <-timeout:
			b.Fatalf("source not synced in %v; last: %s", benchWait, last)
		}
	}
}

// benchWaitSynced waits for the Source to be Ready with a revision
// applied.
func benchWaitSynced(b *testing.B, env *testenv.Env) reconcile.Source {
	b.Helper()
	w := benchWatchSource(b, env)
	defer w.stop()
	return w.until(b)
}

// benchWatchSynced starts watching the reconciler's Events and returns a
// func that waits for the next Synced one (written after the Source's
// status). The Events are small, where the Source, with its inventory of
// 1,000 objects, is not: watching it would load the machine under test.
func benchWatchSynced(b *testing.B, env *testenv.Env) (wait func()) {
	b.Helper()
	evs := env.Clientset.CoreV1().Events(metav1.NamespaceDefault)
	l, err := evs.List(b.Context(), metav1.ListOptions{Limit: 1})
	if err != nil {
		b.Fatal(err)
	}
	w, err := evs.Watch(b.Context(), metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		b.Helper()
		defer w.Stop()
		timeout := time.After(benchWait)
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					b.Fatal("event watch closed")
				}
				e, ok := ev.Object.(*corev1.Event)
				if !ok || ev.Type != watch.Added || e.InvolvedObject.Name != benchSource {
					continue
				}
				switch e.Reason {
				case "Synced":
					return
				case "SyncFailed", "FetchFailed":
					b.Fatalf("%s: %s", e.Reason, e.Message)
				}
			case <-timeout:
				b.Fatalf("no Synced event in %v", benchWait)
			}
		}
	}
}

// benchTimeChange watches ConfigMap name, runs the change funcs and
// returns the time from the end of the first func to the event that shows
// data.value == value.
func benchTimeChange(b *testing.B, env *testenv.Env, name, value string, change ...func()) time.Duration {
	b.Helper()
	ctx := b.Context()
	cms := env.Clientset.CoreV1().ConfigMaps(benchSyncNS)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	// Watch from the list's revision: the object's own may be compacted.
	cur, err := cms.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil || len(cur.Items) != 1 {
		b.Fatalf("list %s: %v (%d items)", name, err, len(cur.Items))
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: cur.ResourceVersion, FieldSelector: sel})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	change[0]()
	start := time.Now()
	for _, f := range change[1:] {
		f()
	}
	timeout := time.After(benchWait)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				b.Fatalf("watch of %s closed", name)
			}
			if cm, ok := ev.Object.(*corev1.ConfigMap); ok && ev.Type == watch.Modified && cm.Data["value"] == value {
				return time.Since(start)
			}
		case <-timeout:
			b.Fatalf("%s not changed to %q in %v", name, value, benchWait)
		}
	}
}

// benchCount counts the ConfigMaps in the benchmark's namespace.
func benchCount(b *testing.B, env *testenv.Env) int {
	b.Helper()
	cs, err := kubernetes.NewForConfig(env.RESTConfig)
	if err != nil {
		b.Fatal(err)
	}
	l, err := cs.CoreV1().ConfigMaps(benchSyncNS).List(b.Context(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return len(l.Items)
}

func benchLogHistory(b *testing.B, st reconcile.Source) {
	b.Helper()
	var ms []string
	for _, h := range slices.Backward(st.Status.History) {
		ms = append(ms, fmt.Sprintf("%d", h.DurationMS))
	}
	b.Logf("sync durations (ms, oldest first): %s", strings.Join(ms, " "))
}

// benchWriteTree writes a Namespace and n ConfigMaps, one per file.
func benchWriteTree(b *testing.B, d string, n int) {
	b.Helper()
	benchWriteFile(b, d, "00-namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "+benchSyncNS+"\n")
	for i := range n {
		name := benchCMName(i)
		benchWriteFile(b, d, name+".yaml", benchConfigMapYAML(name, "initial"))
	}
}

func benchCMName(i int) string { return fmt.Sprintf("settings-%04d", i) }

// benchConfigMapYAML is a ConfigMap of about 600 bytes, as an app's
// settings are.
func benchConfigMapYAML(name, value string) string {
	return `apiVersion: v1
kind: ConfigMap
metadata:
  name: ` + name + `
  namespace: ` + benchSyncNS + `
  labels:
    app.kubernetes.io/name: shop
    app.kubernetes.io/component: ` + name + `
data:
  value: ` + value + `
  LOG_LEVEL: info
  LISTEN_ADDR: ":8080"
  DATABASE_URL: postgres://shop@db.shop.svc:5432/shop?sslmode=disable
  FEATURE_FLAGS: checkout-v2,search-suggest,dark-mode
  app.properties: |
    cache.ttl=300
    cache.size=1024
    retry.max=5
    retry.backoff=250ms
`
}

func benchWriteFile(b *testing.B, d, name, content string) {
	b.Helper()
	if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}

// benchRepo is a working clone that pushes to a bare repository.
type benchRepo struct {
	b    *testing.B
	git  string
	env  []string
	work string
}

func benchNewRepo(b *testing.B, gitBin, root string) *benchRepo {
	b.Helper()
	home := b.TempDir()
	r := &benchRepo{b: b, git: gitBin, work: filepath.Join(b.TempDir(), "work"), env: append(os.Environ(),
		"HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Bench", "GIT_AUTHOR_EMAIL=bench@example.com",
		"GIT_COMMITTER_NAME=Bench", "GIT_COMMITTER_EMAIL=bench@example.com")}
	bare := filepath.Join(root, "remote.git")
	r.run("", "init", "-q", "--bare", "-b", "main", bare)
	r.run("", "init", "-q", "-b", "main", r.work)
	r.run(r.work, "remote", "add", "origin", bare)
	return r
}

func (r *benchRepo) run(dir string, args ...string) {
	r.b.Helper()
	cmd := exec.Command(r.git, args...)
	cmd.Dir, cmd.Env = dir, r.env
	if out, err := cmd.CombinedOutput(); err != nil {
		r.b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (r *benchRepo) commitPush(msg string) {
	r.b.Helper()
	r.run(r.work, "add", "-A")
	r.run(r.work, "commit", "-q", "-m", msg)
	r.run(r.work, "push", "-q", "origin", "HEAD")
}

// benchGitServer serves the repositories under root over smart HTTP with
// git http-backend behind net/http/cgi, as a git host would.
func benchGitServer(b *testing.B, gitBin, root string) *httptest.Server {
	b.Helper()
	out, err := exec.Command(gitBin, "--exec-path").Output()
	testenv.Require(b, "git --exec-path", err == nil)
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	_, err = os.Stat(backend)
	testenv.Require(b, "git-http-backend", err == nil)
	var h http.Handler = &cgi.Handler{Path: backend, Root: "/", InheritEnv: []string{"PATH"}, Env: []string{
		"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null", "HOME=" + b.TempDir()}}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv
}

// benchPostWebhook sends what GitHub sends on a push to main.
func benchPostWebhook(b *testing.B, url string, secret []byte) {
	b.Helper()
	body := `{"ref":"refs/heads/main"}`
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(body))
	req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Fatalf("webhook: %s %s", resp.Status, reply)
	}
}

func benchPercentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func benchMillis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchTail is the end of a long command output.
func benchTail(out []byte) string {
	const n = 2000
	if len(out) > n {
		return "…" + string(out[len(out)-n:])
	}
	return string(out)
}
