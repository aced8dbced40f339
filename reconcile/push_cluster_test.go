package reconcile_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/controllers"
	"kiln.dev/kiln/components/controllers/deployment"
	"kiln.dev/kiln/components/controllers/replicaset"
	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/kubelet/simulated"
	"kiln.dev/kiln/components/scheduler"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/hosted"
	"kiln.dev/kiln/sources/hosted/gitserver"
)

// The push tests run a whole cluster in the test process: the API server
// (testenv), the deployment and replicaset controllers, the scheduler and
// simulated kubelets (hollow nodes: no containers, named as such), the
// reconciler over a hosted source, and its git server on plain HTTP. The
// real git CLI pushes to it.

// pushViewerToken is a token of a user who is not allowed to push.
const pushViewerToken = "push-viewer-token-2b9e"

// pushWaitLimit bounds every wait of the push tests.
const pushWaitLimit = 60 * time.Second

var _ hosted.Deployer = (*reconcile.Reconciler)(nil)

// pushCluster is the running cluster and kiln's parts over it.
type pushCluster struct {
	env  *testenv.Env
	kube kubernetes.Interface
	dyn  dynamic.Interface
	// repoURL is the hosted repository's URL; token may push to it.
	repoURL string
	token   string
	dir     string // the repository on disk
	git     *pushGit
	// restartReconciler stops the reconciler and starts a new one, over
	// a new hosted source on the same repository, as a restarted kiln
	// (or another server taking over) would; the git server keeps the
	// old deployer, so pushes after it are stored but not deployed.
	// meanwhile runs while no reconciler runs.
	restartReconciler func(t testing.TB, meanwhile func()) *hosted.Source
}

type pushOptions struct {
	// nodes is how many simulated kubelets run (default 1).
	nodes int
	// pushWait is the handler's PushWait (default 60s).
	pushWait time.Duration
	// extraSources are synced beside the hosted source "app" (the
	// benchmark's directory source).
	extraSources []reconcile.SourceConfig
	// rollback is the hosted source's rollback policy.
	rollback string
	// backoff is the kubelets' crash back-off base (default 200ms).
	backoff time.Duration
}

func pushLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startPushCluster starts everything and returns once the nodes are Ready.
func startPushCluster(t testing.TB, opts pushOptions) *pushCluster {
	t.Helper()
	bin, err := exec.LookPath("git")
	testenv.Require(t, "git on PATH", err == nil)
	if opts.nodes == 0 {
		opts.nodes = 1
	}
	if opts.backoff == 0 {
		opts.backoff = 200 * time.Millisecond
	}
	env := testenv.Start(t, testenv.Options{ExtraTokens: map[string]apiserver.User{pushViewerToken: {Name: "viewer", UID: "viewer"}}})
	c := &pushCluster{env: env, kube: env.Clientset, dyn: dynamic.NewForConfigOrDie(env.RESTConfig), token: env.Token,
		git: &pushGit{bin: bin, home: t.TempDir()}}
	log := pushLogger(t)
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(what string, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", what, err)
			}
		})
	}

	cm, err := controllers.New(controllers.Config{Client: env.Clientset, Logger: log, Controllers: map[string]controllers.Builder{
		"replicaset": func(s controllers.Shared) (controllers.Runnable, error) {
			return replicaset.New(replicaset.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
		},
		"deployment": func(s controllers.Shared) (controllers.Runnable, error) {
			return deployment.New(deployment.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
		},
		"scheduler": func(s controllers.Shared) (controllers.Runnable, error) {
			return scheduler.New(scheduler.Config{Client: s.Client, Informers: s.Informers, Logger: s.Logger})
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	run("controller manager", cm.Run)

	ca, err := pki.EnsureCA(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range opts.nodes {
		dir := t.TempDir()
		cert, err := ca.EnsureServing(filepath.Join(dir, "tls"), "kubelet", []string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		k, err := kubelet.New(kubelet.Config{
			Client: env.Clientset, NodeName: fmt.Sprintf("sim-%d", i), RootDir: dir, NodeIP: "127.0.0.1",
			Runtime:    simulated.New(simulated.Config{SandboxIP: "127.0.0.1"}),
			ServerAddr: "127.0.0.1:0", TLS: &cert, NoHostPressure: true,
			// By default a crash is seen, and backed off, within a second.
			BackoffBase: opts.backoff, BackoffMax: 5 * opts.backoff,
			StatusPeriod: 200 * time.Millisecond, RelistPeriod: 50 * time.Millisecond,
			Logger: log,
		})
		if err != nil {
			t.Fatal(err)
		}
		run("kubelet", k.Run)
	}
	pushEventually(t, "nodes Ready", func() bool {
		nodes, err := c.kube.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
		if err != nil || len(nodes.Items) < opts.nodes {
			return false
		}
		for _, n := range nodes.Items {
			ready := false
			for _, cond := range n.Status.Conditions {
				ready = ready || cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue
			}
			if !ready {
				return false
			}
		}
		return true
	})

	c.dir = filepath.Join(t.TempDir(), "repos", "app.git")
	src, err := hosted.New(hosted.Config{Name: "app", Dir: c.dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rc := *env.RESTConfig
	rc.QPS, rc.Burst = 1000, 2000
	srcs := append([]reconcile.SourceConfig{{Name: "app", Spec: reconcile.SourceSpec{Kind: "hosted", Ref: "main", Namespace: "default", Prune: true, Rollback: opts.rollback}, Fetcher: src}},
		opts.extraSources...)
	rec, err := reconcile.New(reconcile.Config{RESTConfig: &rc, Sources: srcs, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	recCtx, stopRec := context.WithCancel(ctx)
	recDone := make(chan struct{})
	wg.Go(func() {
		defer close(recDone)
		if err := rec.Run(recCtx); err != nil && recCtx.Err() == nil {
			t.Errorf("reconciler: %v", err)
		}
	})
	c.restartReconciler = func(t testing.TB, meanwhile func()) *hosted.Source {
		stopRec()
		<-recDone
		meanwhile()
		src2, err := hosted.New(hosted.Config{Name: "app", Dir: c.dir, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		srcs[0].Fetcher = src2
		rec2, err := reconcile.New(reconcile.Config{RESTConfig: &rc, Sources: srcs[:1], Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		run("restarted reconciler", rec2.Run)
		return src2
	}
	h, err := hosted.NewHandler(hosted.HandlerConfig{Sources: []*hosted.Source{src}, Deployer: rec,
		Authorize: hosted.TokenAuthorizer(env.Clientset), PushWait: opts.pushWait, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(gitserver.PathPrefix, h)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	c.repoURL = hs.URL + "/git/app.git"
	return c
}

// pushGit runs the real git CLI with a clean configuration.
type pushGit struct {
	bin  string
	home string
}

func (g *pushGit) run(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), g.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+g.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (g *pushGit) must(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := g.run(t, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// clone clones the hosted repository with token into a new directory.
func (c *pushCluster) clone(t testing.TB, token string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "work")
	c.git.must(t, "", "-c", "http.extraHeader=Authorization: Bearer "+token, "clone", "-q", c.repoURL, dir)
	c.git.must(t, dir, "config", "http.extraHeader", "Authorization: Bearer "+token)
	return dir
}

// commit writes files (an empty content removes the file) and commits.
func (c *pushCluster) commit(t testing.TB, dir, msg string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if content == "" {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.git.must(t, dir, "add", "-A")
	c.git.must(t, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return c.git.must(t, dir, "rev-parse", "HEAD")
}

// push runs git push with args in dir and returns its output and error.
func (c *pushCluster) push(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	return c.git.run(t, dir, append([]string{"push"}, args...)...)
}

// remoteMain is main on the server, as git ls-remote shows it.
func (c *pushCluster) remoteMain(t testing.TB) string {
	t.Helper()
	out := c.git.must(t, "", "-c", "http.extraHeader=Authorization: Bearer "+c.token, "ls-remote", c.repoURL, "refs/heads/main")
	h, _, _ := strings.Cut(out, "\t")
	return h
}

// source reads the Source "app".
func (c *pushCluster) source(t testing.TB) reconcile.Source {
	t.Helper()
	u, err := c.dyn.Resource(reconcile.SourceGVR).Get(t.Context(), "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var src reconcile.Source
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &src); err != nil {
		t.Fatal(err)
	}
	return src
}

func pushEventually(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(pushWaitLimit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, pushWaitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pushDeployment is a Deployment of replicas simulated pods; annotations
// go on the pod template (the simulated runtime's knobs).
func pushDeployment(name string, replicas int, image string, annotations map[string]string) string {
	return pushDeploymentDeadline(name, replicas, image, annotations, 600)
}

// pushDeploymentDeadline is pushDeployment with progressDeadlineSeconds
// and minReadySeconds 1: a pod must stay Ready a second to count as
// available, as a crash-looping one never does.
func pushDeploymentDeadline(name string, replicas int, image string, annotations map[string]string, deadline int) string {
	minReady := 0
	if deadline < 600 {
		minReady = 1
	}
	var ann strings.Builder
	for k, v := range annotations {
		fmt.Fprintf(&ann, "\n        %s: %q", k, v)
	}
	annBlock := ""
	if ann.Len() > 0 {
		annBlock = "\n      annotations:" + ann.String()
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  progressDeadlineSeconds: %[5]d
  minReadySeconds: %[6]d
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}%[4]s
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: %[3]s
`, name, replicas, image, annBlock, deadline, minReady)
}

// readyPods lists the names of the Ready pods matching selector in
// "default", sorted.
func (c *pushCluster) readyPods(t testing.TB, selector string) []string {
	t.Helper()
	pods, err := c.kube.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods.Items {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
				names = append(names, p.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}
