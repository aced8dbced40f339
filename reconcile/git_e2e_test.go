package reconcile_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/git"
)

// These tests run the whole GitOps path with real parts: the git CLI
// commits and pushes to a bare repository served over smart HTTP (git
// http-backend behind net/http/cgi) or file://, a GitHub-style signed
// webhook makes the go-git source fetch (its poll interval is an hour,
// so nothing else does), and the reconciler applies to a real API server.

const (
	gitE2ESecret = "e2e-hook-secret"
	gitE2EAuthor = "Ada Lovelace <ada@example.com>"
)

const gitNSYAML = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
`

const gitDeployYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.25"}]
`

const gitCMYAML = `apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: shop}
data: {greeting: hello}
`

const gitOtherCMYAML = `apiVersion: v1
kind: ConfigMap
metadata: {name: rewritten, namespace: shop}
data: {history: rewritten}
`

// gitRemote is a bare repository and a work clone that commits and
// pushes to it with the git CLI.
type gitRemote struct {
	t    *testing.T
	git  string
	home string
	root string // holds bare; served over HTTP
	bare string
	work string
}

func newGitRemote(t *testing.T) *gitRemote {
	t.Helper()
	bin, err := exec.LookPath("git")
	testenv.Require(t, "git on PATH", err == nil)
	r := &gitRemote{t: t, git: bin, home: t.TempDir(), root: t.TempDir()}
	r.bare = filepath.Join(r.root, "shop.git")
	r.work = filepath.Join(t.TempDir(), "work")
	r.run("", "init", "-q", "--bare", "-b", "main", r.bare)
	r.run("", "init", "-q", "-b", "main", r.work)
	r.run(r.work, "remote", "add", "origin", r.bare)
	return r
}

// runErr runs git isolated from the machine's configuration.
func (r *gitRemote) runErr(dir string, args ...string) (string, error) {
	cmd := exec.Command(r.git, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+r.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Kiln CI", "GIT_COMMITTER_EMAIL=ci@example.com")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (r *gitRemote) run(dir string, args ...string) string {
	r.t.Helper()
	out, err := r.runErr(dir, args...)
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// write writes files (path → content) into the work clone.
func (r *gitRemote) write(files map[string]string) {
	r.t.Helper()
	for p, c := range files {
		full := filepath.Join(r.work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// commit commits everything in the work clone and returns the hash.
func (r *gitRemote) commit(msg string) string {
	r.t.Helper()
	r.run(r.work, "add", "-A")
	r.run(r.work, "commit", "-q", "-m", msg)
	return r.run(r.work, "rev-parse", "HEAD")
}

// push pushes main, as a person does: a rewrite is refused.
func (r *gitRemote) push() {
	r.t.Helper()
	r.run(r.work, "push", "-q", "origin", "main")
}

// gitHTTPServer is git http-backend behind net/http/cgi on a loopback
// address that stays the same across stop and start.
type gitHTTPServer struct {
	t       *testing.T
	handler http.Handler
	mu      sync.Mutex
	addr    string
	srv     *httptest.Server
}

func newGitHTTPServer(t *testing.T, r *gitRemote) *gitHTTPServer {
	t.Helper()
	exe, err := r.runErr("", "--exec-path")
	testenv.Require(t, "git --exec-path", err == nil)
	backend := filepath.Join(exe, "git-http-backend")
	_, err = os.Stat(backend)
	testenv.Require(t, "git-http-backend", err == nil)
	g := &gitHTTPServer{t: t, addr: "127.0.0.1:0", handler: &cgi.Handler{
		Path: backend, Root: "/", InheritEnv: []string{"PATH"},
		Env: []string{"GIT_PROJECT_ROOT=" + r.root, "GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME=" + r.home},
	}}
	g.start()
	t.Cleanup(g.stop)
	return g
}

func (g *gitHTTPServer) start() {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		g.t.Fatalf("listen %s: %v", g.addr, err)
	}
	g.addr = ln.Addr().String()
	g.srv = httptest.NewUnstartedServer(g.handler)
	g.srv.Listener.Close()
	g.srv.Listener = ln
	g.srv.Start()
}

func (g *gitHTTPServer) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.srv != nil {
		g.srv.Close()
		g.srv = nil
	}
}

// gitSync is a control plane, a reconciler over one git source named
// "shop", and that source's webhook.
type gitSync struct {
	remote *gitRemote
	kube   kubernetes.Interface
	dyn    dynamic.Interface
	hook   string // the webhook's URL
	// down and up make the remote unreachable and reachable again.
	down, up func()
}

// startGitSync serves r over transport ("http" or "file") and starts a
// reconciler on it.
func startGitSync(t *testing.T, r *gitRemote, transport string) *gitSync {
	t.Helper()
	s := &gitSync{remote: r}
	var url string
	switch transport {
	case "http":
		srv := newGitHTTPServer(t, r)
		url = "http://" + srv.addr + "/shop.git"
		s.down, s.up = srv.stop, srv.start
	case "file":
		url = "file://" + r.bare
		moved := r.bare + ".away"
		rename := func(from, to string) func() {
			return func() {
				if err := os.Rename(from, to); err != nil {
					t.Fatal(err)
				}
			}
		}
		s.down, s.up = rename(r.bare, moved), rename(moved, r.bare)
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	env := testenv.Start(t, testenv.Options{})
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	src, err := git.New(git.Config{Name: "shop", URL: url, Ref: "main", Interval: time.Hour, WorkDir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	spec := reconcile.SourceSpec{Kind: "git", URL: url, Ref: "main", Interval: "1h", Namespace: "default", Prune: true}
	rec, err := reconcile.New(reconcile.Config{RESTConfig: env.RESTConfig, Logger: log,
		Sources: []reconcile.SourceConfig{{Name: "shop", Spec: spec, Fetcher: src}}})
	if err != nil {
		t.Fatal(err)
	}
	runReconciler(t, rec)
	hooks := httptest.NewServer(reconcile.WebhookHandler(reconcile.WebhookConfig{Logger: log,
		Sources: map[string]reconcile.WebhookSource{"shop": {Trigger: src.Trigger, Secret: []byte(gitE2ESecret), Branch: "main"}}}))
	t.Cleanup(hooks.Close)
	s.hook = hooks.URL + reconcile.WebhookPath + "shop"
	s.kube, s.dyn = env.Clientset, dynamic.NewForConfigOrDie(env.RESTConfig)
	return s
}

// webhook posts a GitHub push event for hash, signed, and requires 202.
func (s *gitSync) webhook(t *testing.T, hash string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": hash,
		"repository": map[string]any{"full_name": "example/shop"}})
	m := hmac.New(sha256.New, []byte(gitE2ESecret))
	m.Write(body)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.hook, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply struct {
		Source    string `json:"source"`
		Triggered bool   `json:"triggered"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil || resp.StatusCode != http.StatusAccepted || !reply.Triggered || reply.Source != "shop" {
		t.Fatalf("webhook: %s %+v (%v)", resp.Status, reply, err)
	}
}

func (s *gitSync) source(t *testing.T) reconcile.Source {
	t.Helper()
	var src reconcile.Source
	u, err := s.dyn.Resource(reconcile.SourceGVR).Get(t.Context(), "shop", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return src
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &src); err != nil {
		t.Fatal(err)
	}
	return src
}

// waitApplied waits until hash is the last applied revision and the
// source is Ready, and returns the Source.
func (s *gitSync) waitApplied(t *testing.T, hash string) reconcile.Source {
	t.Helper()
	var src reconcile.Source
	eventually(t, "revision "+hash[:7]+" applied", func() string {
		src = s.source(t)
		if src.Status.LastAppliedRevision != "main@sha1:"+hash {
			return "last applied " + src.Status.LastAppliedRevision + "; " + conditionMessage(src)
		}
		if !meta.IsStatusConditionTrue(src.Status.Conditions, reconcile.ConditionReady) {
			return "not ready: " + conditionMessage(src)
		}
		return ""
	})
	return src
}

// waitNotReady waits for Ready=False with reason and a message holding
// want.
func (s *gitSync) waitNotReady(t *testing.T, reason, want string) reconcile.Source {
	t.Helper()
	var src reconcile.Source
	eventually(t, "Ready=False "+reason, func() string {
		src = s.source(t)
		c := meta.FindStatusCondition(src.Status.Conditions, reconcile.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason || !strings.Contains(c.Message, want) {
			return "Ready condition: " + conditionMessage(src)
		}
		return ""
	})
	return src
}

// uids returns the UIDs of the objects the test manages; a missing
// object has none.
func (s *gitSync) uids(t *testing.T) map[string]types.UID {
	t.Helper()
	ctx := t.Context()
	out := map[string]types.UID{}
	keep := func(key string, m metav1.Object, err error) {
		if apierrors.IsNotFound(err) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		out[key] = m.GetUID()
	}
	ns, err := s.kube.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	keep("ns/shop", ns, err)
	d, err := s.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	keep("deploy/web", d, err)
	for _, name := range []string{"cfg", "rewritten"} {
		var cm *corev1.ConfigMap
		cm, err = s.kube.CoreV1().ConfigMaps("shop").Get(ctx, name, metav1.GetOptions{})
		keep("cm/"+name, cm, err)
	}
	return out
}

// sameUIDs fails unless got has exactly the keys of want, with the same
// UIDs, apart from the keys in changed (which may come and go).
func sameUIDs(t *testing.T, want, got map[string]types.UID, changed ...string) {
	t.Helper()
	for k, uid := range want {
		if slices.Contains(changed, k) {
			continue
		}
		if got[k] != uid {
			t.Errorf("%s: uid %q, want %q (deleted or recreated)", k, got[k], uid)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && !slices.Contains(changed, k) {
			t.Errorf("%s appeared", k)
		}
	}
}

func TestGitSync_webhook(t *testing.T) {
	for _, transport := range []string{"http", "file"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			testGitSyncWebhook(t, transport)
		})
	}
}

func testGitSyncWebhook(t *testing.T, transport string) {
	r := newGitRemote(t)
	r.write(map[string]string{"ns.yaml": gitNSYAML})
	base := r.commit("namespace")
	r.push()
	s := startGitSync(t, r, transport)
	s.waitApplied(t, base)
	ctx := t.Context()

	// step runs one phase; a failed phase ends the test, as the next
	// builds on it.
	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}
	var latencies []time.Duration
	// pushAndWait pushes, posts the webhook and waits for hash to be
	// applied, measuring from the end of the push.
	pushAndWait := func(t *testing.T, hash string, push func()) reconcile.Source {
		t.Helper()
		push()
		pushed := time.Now()
		s.webhook(t, hash)
		src := s.waitApplied(t, hash)
		d := time.Since(pushed)
		latencies = append(latencies, d)
		t.Logf("%s: push → applied in %v (webhook, poll interval 1h)", transport, d.Round(time.Millisecond))
		return src
	}

	var before map[string]types.UID
	step("push adds objects", func(t *testing.T) {
		if src := s.source(t); len(src.Status.Inventory) != 1 {
			t.Fatalf("inventory before the push: %+v", src.Status.Inventory)
		}
		r.write(map[string]string{"app/deploy.yaml": gitDeployYAML, "app/cm.yaml": gitCMYAML})
		msg := "add the web app\n\nA Deployment and its ConfigMap."
		hash := r.commit(msg)
		src := pushAndWait(t, hash, r.push)
		c := src.Status.LastAppliedCommit
		if c == nil || c.Hash != hash || c.Message != msg+"\n" || c.Author != gitE2EAuthor || c.Time.IsZero() {
			t.Errorf("lastAppliedCommit = %+v", c)
		}
		if h := src.Status.History[0]; h.Created != 2 || h.Unchanged != 1 || h.Revision != "main@sha1:"+hash {
			t.Errorf("sync record %+v", h)
		}
		d, err := s.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Labels[reconcile.LabelSource] != "shop" || d.Annotations[reconcile.AnnotationPath] != "app/deploy.yaml" ||
			d.Annotations[reconcile.AnnotationRevision] != "main@sha1:"+hash {
			t.Errorf("managed metadata: labels %v annotations %v", d.Labels, d.Annotations)
		}
		before = s.uids(t)
		if len(before) != 3 {
			t.Fatalf("objects: %v", before)
		}
	})

	step("push changes one object and removes another", func(t *testing.T) {
		r.write(map[string]string{"app/deploy.yaml": strings.Replace(gitDeployYAML, "replicas: 2", "replicas: 4", 1)})
		if err := os.Remove(filepath.Join(r.work, "app", "cm.yaml")); err != nil {
			t.Fatal(err)
		}
		hash := r.commit("scale web to 4, drop its ConfigMap")
		src := pushAndWait(t, hash, r.push)
		if h := src.Status.History[0]; h.Configured != 1 || h.Pruned != 1 || h.Unchanged != 1 || h.Created != 0 {
			t.Errorf("sync record %+v", h)
		}
		d, err := s.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || *d.Spec.Replicas != 4 {
			t.Fatalf("deployment: %v replicas %v", err, d.Spec.Replicas)
		}
		after := s.uids(t)
		sameUIDs(t, before, after, "cm/cfg")
		if _, ok := after["cm/cfg"]; ok {
			t.Error("configmap cfg not pruned")
		}
		before = after
	})

	step("git down keeps everything, git back is ready", func(t *testing.T) {
		good := s.source(t).Status.LastAppliedRevision
		s.down()
		s.webhook(t, "0000000000000000000000000000000000000000")
		src := s.waitNotReady(t, "FetchFailed", "")
		if src.Status.LastAppliedRevision != good {
			t.Errorf("last applied revision moved to %s", src.Status.LastAppliedRevision)
		}
		sameUIDs(t, before, s.uids(t))
		s.up()
		hash := strings.TrimPrefix(good, "main@sha1:")
		s.webhook(t, hash)
		s.waitApplied(t, hash)
		sameUIDs(t, before, s.uids(t))
	})

	var rewritten string
	step("force-push rewrites history", func(t *testing.T) {
		// Back to the first commit, then another tree: the remote's main
		// is no ancestor of the new one.
		r.run(r.work, "reset", "-q", "--hard", base)
		r.write(map[string]string{"config/rewritten.yaml": gitOtherCMYAML})
		rewritten = r.commit("rewrite history")
		if out, err := r.runErr(r.work, "push", "-q", "origin", "main"); err == nil {
			t.Fatalf("a plain push of rewritten history succeeded: %s", out)
		}
		src := pushAndWait(t, rewritten, func() { r.run(r.work, "push", "-q", "--force", "origin", "main") })
		if c := src.Status.LastAppliedCommit; c == nil || c.Hash != rewritten || c.Message != "rewrite history\n" {
			t.Errorf("lastAppliedCommit = %+v", c)
		}
		if h := src.Status.History[0]; h.Created != 1 || h.Pruned != 1 || h.Unchanged != 1 {
			t.Errorf("sync record %+v", h)
		}
		after := s.uids(t)
		sameUIDs(t, before, after, "deploy/web", "cm/rewritten")
		if _, ok := after["deploy/web"]; ok {
			t.Error("deployment of the old history not pruned")
		}
		if _, ok := after["cm/rewritten"]; !ok {
			t.Error("configmap of the new history not applied")
		}
		before = after
	})

	step("empty tree is refused", func(t *testing.T) {
		r.run(r.work, "rm", "-r", "-q", ".")
		hash := r.commit("delete everything")
		if out := r.run(r.work, "ls-tree", "HEAD"); out != "" {
			t.Fatalf("tree not empty: %s", out)
		}
		r.push()
		s.webhook(t, hash)
		src := s.waitNotReady(t, "SyncFailed", reconcile.ErrEmptySnapshot.Error())
		if src.Status.LastAttemptedRevision != "main@sha1:"+hash {
			t.Errorf("last attempted revision %s, want the empty tree's", src.Status.LastAttemptedRevision)
		}
		if src.Status.LastAppliedRevision != "main@sha1:"+rewritten || src.Status.LastAppliedCommit.Hash != rewritten {
			t.Errorf("last applied revision moved to %s", src.Status.LastAppliedRevision)
		}
		if len(src.Status.Inventory) != 2 {
			t.Errorf("inventory: %+v", src.Status.Inventory)
		}
		sameUIDs(t, before, s.uids(t))
	})

	t.Logf("%s: push → applied latencies %v", transport, latencies)
}
