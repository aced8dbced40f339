package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/kubelet/simulated"
)

// The issue-10 experience, end to end: `kiln server` with a hosted
// source, the real git CLI over HTTPS with the kiln CA and the admin
// token, and kubectl. The kubelet is disabled in the binary; a simulated
// kubelet (a hollow node: no containers, named as such) runs in the test
// process and joins the binary's API like an agent would, so Deployments
// roll out.

// pushEnv is a running kiln server with a hosted source "app".
type pushEnv struct {
	p          *kilnProc
	repoURL    string
	token      string
	caFile     string
	kubeconfig string
	home       string
	gitBin     string
	kube       kubernetes.Interface
}

// Tokens of the static token file startPushServer gives kiln: a
// read-only user and one that may only push.
const (
	pushViewerToken = "viewer-0123456789"
	pushPusherToken = "pusher-0123456789"
)

// startPushServer starts kiln; rollback is the source's policy, backoff
// the hollow kubelet's crash back-off.
func startPushServer(t *testing.T, rollback string, backoff time.Duration) *pushEnv {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	kilnRequire(t, "git on PATH", err == nil)
	_, err = exec.LookPath("kubectl")
	kilnRequire(t, "kubectl on PATH", err == nil)
	bin := kilnBuild(t, t.TempDir())
	dataDir := filepath.Join(t.TempDir(), "data")
	addr := kilnFreeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "kiln.yaml")
	tokenFile := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte("# CI tokens\n"+pushViewerToken+",ci-viewer,u1,kiln:viewers\n"+pushPusherToken+`,ci-pusher,u2,"kiln:pushers"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgYAML := fmt.Sprintf("dataDir: %s\napiListen: %s\ndashboardListen: %s\ndisable: [kubelet, proxy]\npushWait: 60s\ntokenAuthFile: %s\nsources:\n- name: app\n  kind: hosted\n  rollback: %s\n",
		dataDir, addr, kilnFreeAddr(t), tokenFile, rollback)
	if err := os.WriteFile(cfgFile, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &kilnProc{dataDir: dataDir, addr: addr, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "server", "--config", cfgFile)
	p.cmd.Stdout, p.cmd.Stderr = t.Output(), t.Output()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	p.waitReady(t)

	e := &pushEnv{p: p, repoURL: "https://" + addr + "/git/app.git", caFile: filepath.Join(dataDir, "tls", "ca.crt"),
		kubeconfig: filepath.Join(dataDir, "admin.kubeconfig"), home: t.TempDir(), gitBin: gitBin}
	tok, err := os.ReadFile(filepath.Join(dataDir, "tls", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	e.token = strings.TrimSpace(string(tok))
	caPEM, err := os.ReadFile(e.caFile)
	if err != nil {
		t.Fatal(err)
	}
	e.kube = kubernetes.NewForConfigOrDie(&rest.Config{Host: "https://" + addr, BearerToken: e.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, QPS: 200, Burst: 400})
	e.startHollowNode(t, "hollow-0", backoff)
	// The hosted repository is served once the reconciler runs.
	kilnEventually(t, "git server", func() bool {
		_, err := e.git(t, "", "ls-remote", e.repoURL)
		return err == nil
	})
	return e
}

// startHollowNode runs a kubelet on the simulated runtime for node name
// against the server, and waits for its Node to be Ready.
func (e *pushEnv) startHollowNode(t *testing.T, name string, backoff time.Duration) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.EnsureCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.EnsureServing(filepath.Join(dir, "tls"), "kubelet", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := kubelet.New(kubelet.Config{Client: e.kube, NodeName: name, RootDir: dir, NodeIP: "127.0.0.1",
		Runtime: simulated.New(simulated.Config{SandboxIP: "127.0.0.1"}), ServerAddr: "127.0.0.1:0", TLS: &cert,
		NoHostPressure: true, BackoffBase: backoff, BackoffMax: 5 * backoff,
		StatusPeriod: 200 * time.Millisecond, RelistPeriod: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hollow kubelet: %v", err)
		}
	})
	kilnEventually(t, "node "+name+" Ready", func() bool {
		n, err := e.kube.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})
}

// git runs the real git CLI trusting the kiln CA and sending the admin
// token, unless args override http.extraHeader.
func (e *pushEnv) git(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	base := []string{"-c", "http.sslCAInfo=" + e.caFile, "-c", "http.extraHeader=Authorization: Bearer " + e.token}
	cmd := exec.CommandContext(ctx, e.gitBin, append(base, args...)...)
	cmd.Dir = dir
	// GIT_SSL_CAINFO, which some environments set, would win over
	// http.sslCAInfo.
	cmd.Env = append(os.Environ(), "GIT_SSL_CAINFO="+e.caFile, "HOME="+e.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *pushEnv) mustGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := e.git(t, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func (e *pushEnv) clone(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "work")
	e.mustGit(t, "", "clone", "-q", e.repoURL, dir)
	return dir
}

func (e *pushEnv) commit(t *testing.T, dir, msg string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.mustGit(t, dir, "add", "-A")
	e.mustGit(t, dir, "commit", "-q", "-m", msg)
	return e.mustGit(t, dir, "rev-parse", "HEAD")
}

func (e *pushEnv) remoteMain(t *testing.T) string {
	t.Helper()
	h, _, _ := strings.Cut(e.mustGit(t, "", "ls-remote", e.repoURL, "refs/heads/main"), "\t")
	return h
}

func (e *pushEnv) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kilnKubectl(t, e.kubeconfig, e.home, args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// pushWebDeployment is Deployment web; extra goes into the pod
// template's metadata. A pod must stay Ready a second to count as
// available, and a rollout that makes no progress for 3s is Degraded.
func pushWebDeployment(replicas int, image string, extra string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: %d
  minReadySeconds: 1
  progressDeadlineSeconds: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}%s
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: %s
`, replicas, extra, image)
}

func wantOutput(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// git clone, commit, push: the push output lists what was applied and
// the rollout reaching healthy, and kubectl agrees; an invalid commit is
// refused and changes nothing; of two concurrent pushes one is told to
// fetch first; pushes without a valid token are refused.
func TestServer_push(t *testing.T) {
	e := startPushServer(t, "none", 200*time.Millisecond)
	work := e.clone(t)
	first := e.commit(t, work, "web", map[string]string{
		"web.yaml":    pushWebDeployment(3, "example.com/web:v1", ""),
		"config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config}\ndata: {greeting: hello}\n",
	})
	out, err := e.git(t, work, "push", "origin", "HEAD:main")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	t.Logf("git push:\n%s", out)
	wantOutput(t, "push", out,
		"remote: kiln: create Deployment default/web (web.yaml)",
		"remote: kiln: create ConfigMap default/web-config (config.yaml)",
		"remote: kiln: applied main@"+first[:7],
		"remote: kiln: Deployment default/web: healthy",
		"remote: kiln: deployed main@"+first[:7])
	if got := e.kubectl(t, "get", "deployment", "web", "-o", "jsonpath={.status.availableReplicas}"); got != "3" {
		t.Errorf("kubectl: web has %q available replicas, want 3", got)
	}
	if got := e.kubectl(t, "get", "sources.gitops.kiln.dev", "app", "-o", "jsonpath={.status.lastAppliedRevision}"); got != "main@sha1:"+first {
		t.Errorf("kubectl: Source app lastAppliedRevision %q, want main@sha1:%s", got, first)
	}

	// An invalid manifest: refused, naming the file and the field.
	rv := e.kubectl(t, "get", "deployment", "web", "-o", "jsonpath={.metadata.resourceVersion}")
	e.commit(t, work, "typo", map[string]string{"web.yaml": strings.Replace(pushWebDeployment(2, "example.com/web:v2", ""), "  replicas: 2", "  replicas: 2\n  replica: 3", 1)})
	out, err = e.git(t, work, "push", "origin", "HEAD:main")
	if err == nil {
		t.Fatalf("push of an invalid manifest succeeded:\n%s", out)
	}
	wantOutput(t, "invalid push", out, "remote: kiln: error: web.yaml:", "Deployment default/web: spec.replica: unknown field",
		"[remote rejected] HEAD -> main (kiln refused the commit)")
	if got := e.remoteMain(t); got != first {
		t.Errorf("ls-remote: main = %s after the refused push, want %s", got, first)
	}
	if got := e.kubectl(t, "get", "deployment", "web", "-o", "jsonpath={.metadata.resourceVersion}"); got != rv {
		t.Errorf("web changed (resourceVersion %s -> %s) after a refused push", rv, got)
	}
	e.mustGit(t, work, "reset", "-q", "--hard", first)

	// Two pushes from the same commit at once.
	other := e.clone(t)
	ca := e.commit(t, work, "scale to 2", map[string]string{"web.yaml": pushWebDeployment(2, "example.com/web:v1", "")})
	cb := e.commit(t, other, "greeting", map[string]string{"config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config}\ndata: {greeting: hi}\n"})
	outs := make([]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, dir := range []string{work, other} {
		wg.Go(func() { outs[i], errs[i] = e.git(t, dir, "push", "origin", "HEAD:main") })
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("concurrent pushes: want exactly one to succeed:\n%v\n%s\n%v\n%s", errs[0], outs[0], errs[1], outs[1])
	}
	won := 0
	if errs[1] == nil {
		won = 1
	}
	wantOutput(t, "losing push", outs[1-won], "fetch first")
	if got, want := e.remoteMain(t), []string{ca, cb}[won]; got != want {
		t.Errorf("main = %s after the concurrent pushes, want the winner %s", got, want)
	}

	// Without a valid token nothing is pushed.
	e.mustGit(t, other, "fetch", "-q")
	e.mustGit(t, other, "reset", "-q", "--hard", "origin/main")
	e.commit(t, other, "anonymous", map[string]string{"config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config}\ndata: {greeting: anon}\n"})
	before := e.remoteMain(t)
	for _, header := range []string{"", "Authorization: Bearer not-a-token"} {
		out, err := e.git(t, other, "-c", "http.extraHeader=", "-c", "http.extraHeader="+header, "push", "origin", "HEAD:main")
		if err == nil {
			t.Errorf("push with header %q succeeded:\n%s", header, out)
		}
	}
	if got := e.remoteMain(t); got != before {
		t.Errorf("main moved to %s by an unauthenticated push", got)
	}

	// Tokens of the token file, as git's credential helpers send them: the
	// password of basic authentication. A read-only token clones but
	// cannot push; a pusher's token pushes but cannot use the API.
	withToken := func(user, token string) string {
		return strings.Replace(e.repoURL, "https://", "https://"+user+":"+token+"@", 1)
	}
	noHeader := []string{"-c", "http.extraHeader="}
	viewerClone := filepath.Join(t.TempDir(), "viewer")
	e.mustGit(t, "", append(noHeader, "clone", "-q", withToken("ci", pushViewerToken), viewerClone)...)
	e.commit(t, viewerClone, "viewer", map[string]string{"config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config}\ndata: {greeting: viewer}\n"})
	out, err = e.git(t, viewerClone, append(noHeader, "push", "origin", "HEAD:main")...)
	if err == nil {
		t.Errorf("push with a read-only token succeeded:\n%s", out)
	}
	if got := e.remoteMain(t); got != before {
		t.Errorf("main moved to %s by a read-only token", got)
	}
	e.mustGit(t, other, "remote", "set-url", "origin", withToken("ci", pushPusherToken))
	out, err = e.git(t, other, append(noHeader, "push", "origin", "HEAD:main")...)
	if err != nil {
		t.Fatalf("push with the pusher's token: %v\n%s", err, out)
	}
	wantOutput(t, "pusher's push", out, "remote: kiln: change ConfigMap default/web-config (config.yaml)", "remote: kiln: deployed main@")
	if out, err := kilnKubectl(t, e.kubeconfig, e.home, "--token", pushPusherToken, "get", "pods"); err == nil || !strings.Contains(out+err.Error(), "Forbidden") {
		t.Errorf("kubectl with the pusher's token: %v\n%s; want Forbidden", err, out)
	}
}

// With rollback: auto, a Deployment whose pods crash is rolled back when
// it passes its progress deadline: the push says so and fails, the
// Source's status says which revision is live and why, the previous pods
// keep serving, and the branch still names the pushed commit.
func TestServer_push_rollbackAuto(t *testing.T) {
	// A crash-looping pod is briefly Ready after each restart, which
	// counts as progress; a back-off longer than the deadline lets the
	// deadline pass before the second restart.
	e := startPushServer(t, "auto", 30*time.Second)
	work := e.clone(t)
	good := e.commit(t, work, "v1", map[string]string{"web.yaml": pushWebDeployment(3, "example.com/web:v1", "")})
	if out, err := e.git(t, work, "push", "origin", "HEAD:main"); err != nil {
		t.Fatalf("push v1: %v\n%s", err, out)
	}
	pods := func() string {
		return e.kubectl(t, "get", "pods", "-l", "app=web", "--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].metadata.name}")
	}
	before := pods()
	bad := e.commit(t, work, "v2", map[string]string{"web.yaml": pushWebDeployment(3, "example.com/web:v2",
		"\n      annotations: {"+simulated.AnnotationExitCode+": \"1\"}")})
	out, err := e.git(t, work, "push", "origin", "HEAD:main")
	if err == nil {
		t.Fatalf("push of a crashing Deployment succeeded:\n%s", out)
	}
	t.Logf("git push:\n%s", out)
	wantOutput(t, "crash push", out, "CrashLoopBackOff",
		"remote: kiln: rolled back: re-applied main@"+good[:7]+", the last healthy revision; the branch still names main@"+bad[:7],
		"(deploy failed; rolled back to main@"+good[:7]+")")
	if got := e.kubectl(t, "get", "sources.gitops.kiln.dev", "app", "-o", "jsonpath={.status.lastAppliedRevision}"); got != "main@sha1:"+good {
		t.Errorf("kubectl: lastAppliedRevision %q, want main@sha1:%s", got, good)
	}
	if got := e.kubectl(t, "get", "sources.gitops.kiln.dev", "app", "-o", `jsonpath={.status.conditions[?(@.type=="RolledBack")].message}`); !strings.Contains(got, bad) {
		t.Errorf("kubectl: RolledBack condition %q does not name %s", got, bad)
	}
	if got := e.remoteMain(t); got != bad {
		t.Errorf("ls-remote: main = %s, want the pushed %s", got, bad)
	}
	kilnEventually(t, "v1 pods only", func() bool {
		return e.kubectl(t, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.status.replicas} {.status.availableReplicas}") == "example.com/web:v1 3 3"
	})
	if after := pods(); after != before {
		t.Errorf("running pods %q after the rollback, want the v1 pods %q serving throughout", after, before)
	}
}
