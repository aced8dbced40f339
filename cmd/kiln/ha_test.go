package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kiln.dev/kiln/components/controllers"
	"kiln.dev/kiln/components/testenv"
)

// haTakeoverLimit is issue 9's promise: a server's death moves the
// controllers, the scheduler and the reconciler to another within 15 s.
const haTakeoverLimit = 15 * time.Second

// haServer is one `kiln server` on the shared datastore.
type haServer struct {
	name    string
	proc    *kilnProc
	logs    *haLog
	cs      kubernetes.Interface
	killed  bool
	kubecfg string
}

// haLog keeps a process's output for a failure message as well as the
// test log.
type haLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *haLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *haLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startHAServer runs `kiln server` named name on cluster with token and
// the extra args, without waiting for it.
func startHAServer(t *testing.T, bin string, cluster *testenv.EtcdCluster, name, token string, args ...string) *haServer {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), name)
	addr := kilnFreeAddr(t)
	s := &haServer{name: name, logs: &haLog{}, kubecfg: filepath.Join(dataDir, "admin.kubeconfig")}
	s.proc = &kilnProc{dataDir: dataDir, addr: addr, exited: make(chan struct{})}
	s.proc.cmd = exec.Command(bin, append([]string{"server", "--data-dir", dataDir, "--api-listen", addr,
		"--dashboard-listen", kilnFreeAddr(t), "--disable", "kubelet,proxy", "--node-name", name,
		"--datastore-endpoint", strings.Join(cluster.Endpoints, ","), "--datastore-cafile", cluster.CAFile,
		"--datastore-certfile", cluster.CertFile, "--datastore-keyfile", cluster.KeyFile,
		"--token", token}, args...)...)
	out := io.MultiWriter(t.Output(), s.logs)
	s.proc.cmd.Stdout, s.proc.cmd.Stderr = out, out
	if err := s.proc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.proc.waitErr = s.proc.cmd.Wait()
		close(s.proc.exited)
	}()
	t.Cleanup(func() {
		if !s.killed {
			s.proc.stop(t)
		}
	})
	return s
}

// ready waits for the server and gives it a client.
func (s *haServer) ready(t *testing.T) {
	t.Helper()
	s.proc.waitReady(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubecfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	cfg.Timeout = 10 * time.Second
	if s.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
}

// identity is how the server names itself in the Leases (leaderIdentity).
func (s *haServer) identity() string {
	return s.name + "_" + strconv.Itoa(s.proc.cmd.Process.Pid)
}

// kill ends the server as a power loss would: SIGKILL, no Lease released.
func (s *haServer) kill(t *testing.T) {
	t.Helper()
	s.killed = true
	if err := s.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.proc.exited
}

// leaseHolder returns the holder of kube-system/name, "" when none.
func leaseHolder(ctx context.Context, cs kubernetes.Interface, name string) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	l, err := cs.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// haGit is a bare repository served by file:// and a work clone to push
// commits from.
type haGit struct {
	t          *testing.T
	bin        string
	home, work string
	bare       string
}

func newHAGit(t *testing.T) *haGit {
	t.Helper()
	bin, err := exec.LookPath("git")
	kilnRequire(t, "git on PATH", err == nil)
	root := t.TempDir()
	g := &haGit{t: t, bin: bin, home: t.TempDir(), bare: filepath.Join(root, "repo.git"), work: filepath.Join(root, "work")}
	g.run("", "init", "-q", "--bare", "-b", "main", g.bare)
	g.run("", "init", "-q", "-b", "main", g.work)
	g.run(g.work, "remote", "add", "origin", g.bare)
	return g
}

func (g *haGit) run(dir string, args ...string) string {
	g.t.Helper()
	cmd := exec.Command(g.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+g.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// push commits a ConfigMap named name in namespace ha.
func (g *haGit) push(name string) {
	g.t.Helper()
	doc := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: ha}\ndata: {k: v}\n"
	if err := os.WriteFile(filepath.Join(g.work, name+".yaml"), []byte(doc), 0o644); err != nil {
		g.t.Fatal(err)
	}
	g.run(g.work, "add", "-A")
	g.run(g.work, "commit", "-q", "-m", "add "+name)
	g.run(g.work, "push", "-q", "origin", "HEAD")
}

// haEventually polls ok until it holds or limit passes.
func haEventually(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// haConfigMapExists reports whether namespace/name exists through cs.
func haConfigMapExists(ctx context.Context, cs kubernetes.Interface, namespace, name string) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	return err == nil
}

// Two servers on a three-member etcd cluster: killing the leader moves
// the controllers, the scheduler and the GitOps reconciler to the other
// within 15 s, a commit pushed meanwhile is applied, kubectl against the
// survivor sees everything, one etcd member lost changes nothing visible,
// and no acknowledged write is lost.
func TestHA_serverLoss(t *testing.T) {
	_, err := exec.LookPath("kubectl")
	kilnRequire(t, "kubectl on PATH", err == nil)
	repo := newHAGit(t)
	if err := os.WriteFile(filepath.Join(repo.work, "ns.yaml"), []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: ha}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo.push("from-git-1")
	bin := kilnBuild(t, t.TempDir())
	cluster := testenv.StartEtcdCluster(t, 3)
	token := haToken(t)
	ctx := t.Context()

	// A git source, polled every second (TestHA_hostedPushToEitherServer
	// has the hosted kind).
	cfgFile := filepath.Join(t.TempDir(), "kiln.yaml")
	cfgYAML := fmt.Sprintf("sources:\n- name: ha\n  kind: git\n  url: file://%s\n  ref: main\n  interval: 1s\n  namespace: ha\n", repo.bare)
	if err := os.WriteFile(cfgFile, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	s1 := startHAServer(t, bin, cluster, "s1", token, "--config", cfgFile)
	s1.ready(t)
	// The first server takes both Leases before the second exists, so
	// that one server is the leader of everything.
	haEventually(t, "s1 holds both Leases", 30*time.Second, func() bool {
		return leaseHolder(ctx, s1.cs, controllers.DefaultLeaseName) == s1.identity() && leaseHolder(ctx, s1.cs, reconcilerLease) == s1.identity()
	})
	s2 := startHAServer(t, bin, cluster, "s2", token, "--config", cfgFile)
	s2.ready(t)
	servers := []*haServer{s1, s2}

	// Both serve with the one CA from the datastore.
	ca1, err1 := os.ReadFile(filepath.Join(s1.proc.dataDir, "tls", "ca.crt"))
	ca2, err2 := os.ReadFile(filepath.Join(s2.proc.dataDir, "tls", "ca.crt"))
	if err1 != nil || err2 != nil || !bytes.Equal(ca1, ca2) {
		t.Fatalf("the servers' CAs differ (%v, %v)", err1, err2)
	}

	// Writes go through both servers throughout.
	if _, err := s1.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ha-writes"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writer := testenv.StartAckWriter(t, "ha-writes", 20, s1.cs, s2.cs)

	// kubectl against either server sees what was written through the
	// other.
	home := t.TempDir()
	if _, err := kilnKubectl(t, s1.kubecfg, home, "create", "configmap", "before-kill", "-n", "ha-writes", "--from-literal=k=v"); err != nil {
		t.Fatal(err)
	}
	if out, err := kilnKubectl(t, s2.kubecfg, home, "get", "configmap", "before-kill", "-n", "ha-writes", "-o", "name"); err != nil || strings.TrimSpace(out) != "configmap/before-kill" {
		t.Fatalf("kubectl via s2 does not see what s1 wrote: %q, %v", out, err)
	}
	// A service account token one server issued authenticates on the
	// other: both derive the signing key from the one CA. The namespace's
	// default ServiceAccount comes from the controllers.
	haEventually(t, "the default ServiceAccount of ha-writes", 30*time.Second, func() bool {
		_, err := s2.cs.CoreV1().ServiceAccounts("ha-writes").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	saToken, err := kilnKubectl(t, s1.kubecfg, home, "create", "token", "default", "-n", "ha-writes")
	if err != nil {
		t.Fatal(err)
	}
	if who, err := kilnKubectl(t, s2.kubecfg, home, "--token", strings.TrimSpace(saToken), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); err != nil || who != "system:serviceaccount:ha-writes:default" {
		t.Fatalf("a token from s1 on s2: %q, %v", who, err)
	}
	haEventually(t, "first commit applied", 60*time.Second, func() bool { return haConfigMapExists(ctx, s2.cs, "ha", "from-git-1") })

	// The leader still holds both Leases: the other has not been able to
	// take them.
	var leader, survivor *haServer
	haEventually(t, "one server holds both Leases", 30*time.Second, func() bool {
		cm, rec := leaseHolder(ctx, s2.cs, controllers.DefaultLeaseName), leaseHolder(ctx, s2.cs, reconcilerLease)
		for i, s := range servers {
			if cm == s.identity() && rec == s.identity() {
				leader, survivor = s, servers[1-i]
				return true
			}
		}
		return false
	})
	t.Logf("leader %s, survivor %s", leader.identity(), survivor.identity())

	// Kill it, then at once ask for controller work and push a commit.
	leader.kill(t)
	killed := time.Now()
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "after-kill", Namespace: "ha-writes"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "after-kill"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "after-kill"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "kiln.local/none:1"}}},
			},
		},
	}
	haEventually(t, "Deployment created through the survivor", 10*time.Second, func() bool {
		_, err := survivor.cs.AppsV1().Deployments("ha-writes").Create(ctx, deploy, metav1.CreateOptions{})
		return err == nil || apierrors.IsAlreadyExists(err)
	})
	repo.push("from-git-2")

	var tLease, tRec, tPods, tCommit time.Duration
	haEventually(t, "takeover", 60*time.Second, func() bool {
		since := time.Since(killed)
		if tLease == 0 && leaseHolder(ctx, survivor.cs, controllers.DefaultLeaseName) == survivor.identity() {
			tLease = since
		}
		if tRec == 0 && leaseHolder(ctx, survivor.cs, reconcilerLease) == survivor.identity() {
			tRec = since
		}
		if tPods == 0 {
			lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			pods, err := survivor.cs.CoreV1().Pods("ha-writes").List(lctx, metav1.ListOptions{LabelSelector: "app=after-kill"})
			cancel()
			if err == nil && len(pods.Items) == 2 {
				tPods = since
			}
		}
		if tCommit == 0 && haConfigMapExists(ctx, survivor.cs, "ha", "from-git-2") {
			tCommit = since
		}
		return tLease > 0 && tRec > 0 && tPods > 0 && tCommit > 0
	})
	t.Logf("after the leader's death: controller Lease %.1fs, reconciler Lease %.1fs, Deployment's pods %.1fs, pushed commit applied %.1fs",
		tLease.Seconds(), tRec.Seconds(), tPods.Seconds(), tCommit.Seconds())
	fmt.Printf("HA takeover: controllers %.1f s, reconciler %.1f s, pods created %.1f s, commit applied %.1f s (limit %v)\n",
		tLease.Seconds(), tRec.Seconds(), tPods.Seconds(), tCommit.Seconds(), haTakeoverLimit)
	for what, d := range map[string]time.Duration{"controller Lease": tLease, "reconciler Lease": tRec, "the Deployment's pods": tPods} {
		if d > haTakeoverLimit {
			t.Errorf("%s moved %.1fs after the leader died, want ≤ %v", what, d.Seconds(), haTakeoverLimit)
		}
	}

	// kubectl against the survivor sees everything.
	for _, obj := range [][]string{
		{"configmap", "before-kill", "-n", "ha-writes"},
		{"configmap", "from-git-1", "-n", "ha"},
		{"configmap", "from-git-2", "-n", "ha"},
		{"deployment", "after-kill", "-n", "ha-writes"},
		{"replicasets", "-n", "ha-writes", "-l", "app=after-kill"},
	} {
		out, err := kilnKubectl(t, survivor.kubecfg, home, append([]string{"get", "-o", "name"}, obj...)...)
		if err != nil || strings.TrimSpace(out) == "" {
			t.Errorf("kubectl get %v via the survivor: %q, %v", obj, out, err)
		}
	}

	// The etcd leader lost: reads, writes and watches (the controllers
	// act on a new Deployment) through the survivor go on.
	var member int
	haEventually(t, "an etcd leader", 10*time.Second, func() bool { member = cluster.Leader(); return member >= 0 })
	cluster.Stop(member)
	t.Logf("stopped etcd member %d, the Raft leader", member)
	before, _, _ := writer.Counts()
	if _, err := kilnKubectl(t, survivor.kubecfg, home, "create", "configmap", "member-down", "-n", "ha-writes", "--from-literal=k=v"); err != nil {
		t.Errorf("kubectl create with an etcd member down: %v", err)
	}
	if out, err := kilnKubectl(t, survivor.kubecfg, home, "get", "configmap", "member-down", "before-kill", "-n", "ha-writes", "-o", "name"); err != nil ||
		len(kilnLines(out)) != 2 {
		t.Errorf("kubectl get with an etcd member down: %q, %v", out, err)
	}
	if _, err := kilnKubectl(t, survivor.kubecfg, home, "create", "deployment", "member-down", "-n", "ha-writes", "--image=kiln.local/none:1", "--replicas=1"); err != nil {
		t.Errorf("kubectl create deployment with an etcd member down: %v", err)
	}
	haEventually(t, "the controllers act with an etcd member down", 30*time.Second, func() bool {
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		pods, err := survivor.cs.CoreV1().Pods("ha-writes").List(lctx, metav1.ListOptions{LabelSelector: "app=member-down"})
		return err == nil && len(pods.Items) == 1
	})
	// The writer keeps being acknowledged with the member down.
	haEventually(t, "acknowledged writes with an etcd member down", 30*time.Second, func() bool {
		now, _, _ := writer.Counts()
		return now >= before+20
	})
	cluster.Start(member)

	acked, failed, last := writer.Counts()
	t.Logf("ack writer before verify: %d acknowledged, %d failed (last: %v)", acked, failed, last)
	writer.Verify(t, survivor.cs)
	if t.Failed() {
		t.Logf("survivor log tail:\n%s", haTail(survivor.logs.String(), 40))
	}
}

// A second server given another token refuses to start, saying why,
// before it serves anything.
func TestHA_wrongToken(t *testing.T) {
	bin := kilnBuild(t, t.TempDir())
	cluster := testenv.StartEtcdCluster(t, 1)
	s1 := startHAServer(t, bin, cluster, "s1", haToken(t))
	s1.ready(t)
	s2 := startHAServer(t, bin, cluster, "s2", haToken(t))
	s2.killed = true // it must exit by itself
	select {
	case <-s2.proc.exited:
	case <-time.After(30 * time.Second):
		_ = s2.proc.cmd.Process.Kill()
		<-s2.proc.exited
		t.Fatal("a server with the wrong token did not exit within 30s")
	}
	if s2.proc.waitErr == nil {
		t.Error("a server with the wrong token exited 0")
	}
	logs := s2.logs.String()
	if !strings.Contains(logs, "datastore bootstrap data cannot be decrypted with this token") {
		t.Errorf("the wrong token's error does not say so:\n%s", logs)
	}
	if _, err := os.Stat(filepath.Join(s2.proc.dataDir, "admin.kubeconfig")); err == nil {
		t.Error("the server with the wrong token wrote a kubeconfig")
	}
	if _, err := os.Stat(filepath.Join(s2.proc.dataDir, "tls", "ca.key")); err == nil {
		t.Error("the server with the wrong token made a CA of its own")
	}
}

// Two first servers starting at once on an empty datastore agree on one
// CA and one admin token: the loser of the race takes the winner's.
func TestHA_simultaneousFirstStart(t *testing.T) {
	bin := kilnBuild(t, t.TempDir())
	cluster := testenv.StartEtcdCluster(t, 1)
	token := haToken(t)
	s1 := startHAServer(t, bin, cluster, "s1", token)
	s2 := startHAServer(t, bin, cluster, "s2", token)
	s1.ready(t)
	s2.ready(t)
	for _, f := range []string{"ca.crt", "ca.key", "admin.token"} {
		b1, err1 := os.ReadFile(filepath.Join(s1.proc.dataDir, "tls", f))
		b2, err2 := os.ReadFile(filepath.Join(s2.proc.dataDir, "tls", f))
		if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) {
			t.Errorf("tls/%s differs between the servers (%v, %v)", f, err1, err2)
		}
	}
	// Each server's kubeconfig works against the other.
	cfg, err := clientcmd.BuildConfigFromFlags("https://"+s2.proc.addr, s1.kubecfg)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
		t.Errorf("s1's credentials against s2: %v", err)
	}
}

// haToken is a fresh join secret.
func haToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func haTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
