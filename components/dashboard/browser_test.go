package dashboard_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/git"
)

// chromiumPath is Debian's chromium (package chromium).
const chromiumPath = "/usr/bin/chromium"

// The repository the browser test syncs: hostile strings in an
// annotation, a file name and the commit message, and a Secret whose
// value must never reach the browser.
var browserRepo = map[string]string{
	"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
	"apps/web.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.example/shop/web:1", resources: {requests: {memory: 8Gi}}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80}]
`,
	"apps/api.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: "registry.example/shop/api:1", resources: {requests: {cpu: 250m, memory: 256Mi}}}]
`,
	"apps/settings.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  annotations: {note: '` + hostileAnnot + `'}
data: {greeting: "<b>hello</b>", version: "1"}
`,
	hostileFile:       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: oddly-named, namespace: shop}\ndata: {a: b}\n",
	"apps/creds.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: shop}\nstringData: {password: " + secretCanary + "}\n",
}

// gitRepo is a bare repository and a clone that commits and pushes to it
// with the git CLI, isolated from the machine's configuration.
type gitRepo struct {
	t          *testing.T
	bin, home  string
	bare, work string
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	bin, err := exec.LookPath("git")
	testenv.Require(t, "git on PATH", err == nil)
	r := &gitRepo{t: t, bin: bin, home: t.TempDir()}
	root := t.TempDir()
	r.bare, r.work = filepath.Join(root, "shop.git"), filepath.Join(root, "work")
	r.run("", "init", "-q", "--bare", "-b", "main", r.bare)
	r.run("", "init", "-q", "-b", "main", r.work)
	r.run(r.work, "remote", "add", "origin", r.bare)
	return r
}

func (r *gitRepo) run(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command(r.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+r.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Kiln CI", "GIT_COMMITTER_EMAIL=ci@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commitAndPush writes files, commits them with msg, pushes, and
// returns the commit's hash.
func (r *gitRepo) commitAndPush(files map[string]string, msg string) string {
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
	r.run(r.work, "add", "-A")
	r.run(r.work, "commit", "-q", "-m", msg)
	r.run(r.work, "push", "-q", "origin", "main")
	return r.run(r.work, "rev-parse", "HEAD")
}

// startSync runs a real reconciler over a go-git source of repo (file://,
// polled hourly: only trigger makes it fetch).
func startSync(t *testing.T, env *testenv.Env, repo *gitRepo) (trigger func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	url := "file://" + repo.bare
	src, err := git.New(git.Config{Name: fixtureSource, URL: url, Ref: "main", Interval: time.Hour, WorkDir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	spec := reconcile.SourceSpec{Kind: "git", URL: url, Ref: "main", Interval: "1h", Namespace: fixtureNS, Prune: true}
	rec, err := reconcile.New(reconcile.Config{RESTConfig: env.RESTConfig, Logger: log,
		Sources: []reconcile.SourceConfig{{Name: fixtureSource, Spec: spec, Fetcher: src}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reconciler: %v", err)
		}
	})
	return src.Trigger
}

// appliedRevision is the Source's last applied revision.
func appliedRevision(t *testing.T, s *stack) string {
	t.Helper()
	u, err := s.dyn.Resource(reconcile.SourceGVR).Get(t.Context(), fixtureSource, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	var src reconcile.Source
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &src); err != nil {
		t.Fatal(err)
	}
	return src.Status.LastAppliedRevision
}

// stuckPods plays the controllers, scheduler and kubelet, which other
// engineers are writing: a ReplicaSet and a pod for each Deployment the
// repo created, web's unschedulable, api's crash-looping.
func stuckPods(t *testing.T, s *stack) {
	t.Helper()
	ctx := t.Context()
	node := must(s.kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}, metav1.CreateOptions{}))(t)
	node.Status = corev1.NodeStatus{
		Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now()}},
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")},
		Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.11"}},
	}
	must(s.kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}))(t)
	for _, x := range []struct {
		deploy, rs, pod, node string
		status                corev1.PodStatus
	}{
		{"web", "web-7d9", "web-7d9-x2", "", corev1.PodStatus{Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: schedulingMsg, LastTransitionTime: metav1.Now()}}}},
		{"api", "api-5f6", "api-5f6-k8", "node-1", corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()},
				{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Now()}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "api", Image: "registry.example/shop/api:1", RestartCount: 4,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: crashMessage}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}}},
	} {
		d := must(s.kube.AppsV1().Deployments(fixtureNS).Get(ctx, x.deploy, metav1.GetOptions{}))(t)
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, UnavailableReplicas: 1}
		must(s.kube.AppsV1().Deployments(fixtureNS).UpdateStatus(ctx, d, metav1.UpdateOptions{}))(t)
		rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: x.rs, Namespace: fixtureNS, Labels: d.Spec.Template.Labels,
			Annotations:     map[string]string{"deployment.kubernetes.io/revision": "1"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true)}}},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](1), Selector: d.Spec.Selector, Template: d.Spec.Template}}
		rs = must(s.kube.AppsV1().ReplicaSets(fixtureNS).Create(ctx, rs, metav1.CreateOptions{}))(t)
		c := d.Spec.Template.Spec.Containers[0]
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: x.pod, Namespace: fixtureNS, Labels: d.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{NodeName: x.node, Containers: []corev1.Container{c}}}
		p = must(s.kube.CoreV1().Pods(fixtureNS).Create(ctx, p, metav1.CreateOptions{}))(t)
		p.Status = x.status
		must(s.kube.CoreV1().Pods(fixtureNS).UpdateStatus(ctx, p, metav1.UpdateOptions{}))(t)
	}
}

// artifactDir is where screenshots go: $KILN_ARTIFACTS/<test> when set
// (CI keeps it), else the test's artifact directory (kept with
// `go test -artifacts`).
func artifactDir(t *testing.T) string {
	t.Helper()
	if base := os.Getenv("KILN_ARTIFACTS"); base != "" {
		dir := filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.ArtifactDir()
}

// browser is one headless Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	_, err := os.Stat(chromiumPath)
	testenv.Require(t, "chromium at "+chromiumPath+" (Debian package chromium)", err == nil)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("force-color-profile", "srgb"), chromedp.Flag("hide-scrollbars", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(t.Context()), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Start the browser with no deadline: a deadline on the first run
	// would end the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// watchDialogs fails the test on any JavaScript dialog (an XSS payload
// firing), closing it so the page does not hang.
func watchDialogs(t *testing.T, ctx context.Context) func() []string {
	t.Helper()
	var mu sync.Mutex
	var fired []string
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			mu.Lock()
			fired = append(fired, ev.Message)
			mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), fired...)
	}
}

// mainText is the text of the page's <main>, as a person reads it.
func mainText(ctx context.Context) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("main") ? document.getElementById("main").innerText : ""`))
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitText polls the page's main text until it holds every want, for up
// to limit; it returns how long that took.
func waitText(t *testing.T, ctx context.Context, limit time.Duration, want ...string) time.Duration {
	t.Helper()
	start := time.Now()
	var text string
	for time.Since(start) < limit {
		var err error
		if text, err = mainText(ctx); err != nil {
			t.Fatal(err)
		}
		missing := ""
		for _, w := range want {
			if !strings.Contains(text, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("page does not show %q within %v; it shows:\n%s", want, limit, text)
	return 0
}

func TestBrowser_liveOverviewAndRootCauses(t *testing.T) {
	ctx := browser(t)
	fired := watchDialogs(t, ctx)
	dir := artifactDir(t)
	t.Logf("screenshots in %s", dir)

	env := testenv.Start(t, testenv.Options{})
	repo := newGitRepo(t)
	first := repo.commitAndPush(browserRepo, hostileCommit)
	trigger := startSync(t, env, repo)
	s := startDashboard(t, env, nil)
	eventually(t, "first commit applied", func() string {
		if rev := appliedRevision(t, s); rev != "main@sha1:"+first {
			return "applied " + rev
		}
		return ""
	})
	stuckPods(t, s)

	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/")); err != nil {
		t.Fatal(err)
	}
	// The overview: the revision, and both root causes.
	waitText(t, ctx, 10*time.Second, "main@"+first[:12], "<script>alert(3)</script> add the shop",
		"Insufficient memory", "CrashLoopBackOff", "exit code 1", "logs unavailable", "250m / 2")
	screenshot(t, ctx, dir, "overview")

	// A new commit: the page shows it without a reload.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.kilnMarker = 42`)); err != nil {
		t.Fatal(err)
	}
	next := map[string]string{"apps/settings.yaml": strings.Replace(browserRepo["apps/settings.yaml"], `version: "1"`, `version: "2"`, 1)}
	pushed := time.Now()
	second := repo.commitAndPush(next, "settings: version 2")
	trigger()
	var applied time.Time
	eventually(t, "second commit applied", func() string {
		if rev := appliedRevision(t, s); rev != "main@sha1:"+second {
			return "applied " + rev
		}
		applied = time.Now()
		return ""
	})
	waitText(t, ctx, 10*time.Second, "main@"+second[:12], "settings: version 2")
	shown := time.Now()
	t.Logf("new revision on the page %v after the Source's status said so (%v after the push)", shown.Sub(applied).Round(time.Millisecond), shown.Sub(pushed).Round(time.Millisecond))
	if d := shown.Sub(applied); d > 2*time.Second {
		t.Errorf("the page took %v to show the new revision, want <= 2s", d)
	}
	if marker, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.kilnMarker || 0`)); err != nil || marker != 42 {
		t.Errorf("the page was reloaded (marker %d, %v)", marker, err)
	}
	live, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("live").textContent`))
	if err != nil || live != "live" {
		t.Errorf("live indicator %q (%v)", live, err)
	}
	screenshot(t, ctx, dir, "overview-updated")

	// Every page, with hostile strings shown as text.
	pages := []struct {
		name, path string
		want       []string
	}{
		{"objects", "/objects?source=shop", []string{"settings", "oddly-named", hostileFile}},
		{"pods", "/pods", []string{"web-7d9-x2", "api-5f6-k8", "CrashLoopBackOff"}},
		{"nodes", "/nodes", []string{"node-1", "10.0.0.11", "250m / 2"}},
		{"events", "/events", nil},
		{"source", "/sources/shop", []string{"Sync history", "settings: version 2", "main@" + first[:12]}},
		{"object-deployment", "/object?group=apps&version=v1&kind=Deployment&namespace=shop&name=api", []string{"CrashLoopBackOff", "exit code 1", "kind: Deployment"}},
		{"object-pod", "/object?version=v1&kind=Pod&namespace=shop&name=web-7d9-x2", []string{"Insufficient memory", "Deployment web", "ReplicaSet web-7d9"}},
		{"object-configmap", "/object?version=v1&kind=ConfigMap&namespace=shop&name=settings", []string{hostileAnnot, "<b>hello</b>"}},
		{"object-secret", "/object?version=v1&kind=Secret&namespace=shop&name=creds", []string{"password: <hidden>"}},
	}
	for _, p := range pages {
		if err := chromedp.Do(ctx, chromedp.Navigate(s.url+p.path)); err != nil {
			t.Fatal(err)
		}
		waitText(t, ctx, 5*time.Second, p.want...)
		html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(html, secretCanary) {
			t.Errorf("%s shows the Secret's value", p.name)
		}
		// A payload that became markup would be an element here.
		if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main img, main script").length`)); err != nil || n != 0 {
			t.Errorf("%s: %d injected elements (%v)", p.name, n, err)
		}
		screenshot(t, ctx, dir, p.name)
	}
	if f := fired(); len(f) > 0 {
		t.Errorf("JavaScript dialogs fired: %q", f)
	}

	t.Run("without JavaScript", func(t *testing.T) {
		tab, cancel := chromedp.NewContext(ctx)
		defer cancel()
		if _, err := chromedp.Call(tab, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(tab, chromedp.Navigate(s.url+"/")); err != nil {
			t.Fatal(err)
		}
		html, err := chromedp.Run(tab, chromedp.OuterHTML(chromedp.CSS("body")))
		if err != nil {
			t.Fatal(err)
		}
		pageContains(t, "overview without JavaScript", html, "main@"+second[:12], "Insufficient memory", "CrashLoopBackOff", `id="live" class="live" hidden=""`)
		screenshot(t, tab, dir, "overview-no-javascript")
		// A filter is a plain GET form.
		if err := chromedp.Do(tab, chromedp.Navigate(s.url+"/pods?namespace=shop&node=node-1")); err != nil {
			t.Fatal(err)
		}
		html, err = chromedp.Run(tab, chromedp.OuterHTML(chromedp.CSS("main")))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(html, "api-5f6-k8") || strings.Contains(html, "web-7d9-x2") {
			t.Errorf("filtered pods page without JavaScript:\n%s", html)
		}
	})
	fmt.Fprintln(t.Output(), "screenshots:", dir)
}
