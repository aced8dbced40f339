package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/testenv"
)

// nodeReplicas is how many pods of the demo image the node test runs.
const nodeReplicas = 5

// TestNode_kill9_containersKeepRunning is the node's restart promise with
// the real binary: `kiln server` runs a Deployment of 5 demo pods in its
// own containerd; kill -9 of kiln takes its containerd with it but not
// the containers (they keep serving); a new `kiln server` on the same
// data dir adopts them: the same pods, the same containers (same IDs,
// restartCount 0, the same processes: their request counters go on), and
// their logs are still relayed.
func TestNode_kill9_containersKeepRunning(t *testing.T) {
	demoRequireHost(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 3)
	_, _ = rand.Read(id)
	tmp := t.TempDir()
	nodeName := "node-" + hex.EncodeToString(id)
	nodeIP := demoNodeIP()
	dataDir := filepath.Join(tmp, "data")
	bin := testenv.Binary(t)

	// make images
	build := exec.CommandContext(t.Context(), "go", "run", "./components/internal/imagebuild/build-demo-web",
		"-o", filepath.Join(dataDir, "images", "demo-web.tar"))
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the demo image: %v\n%s", err, out)
	}
	// Registered first, so it runs last: whatever could not be stopped
	// or removed before.
	t.Cleanup((&demo{t: t, dataDir: dataDir, nodeName: nodeName}).cleanupHost)

	// The same ports for both runs: the Node's kubelet endpoint stays.
	apiAddr, dashAddr := kilnFreeAddr(t), kilnFreeAddr(t)
	kl, err := net.Listen("tcp", net.JoinHostPort(nodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	kubeletPort := strconv.Itoa(kl.Addr().(*net.TCPAddr).Port)
	kl.Close()
	start := func(run int) *demo {
		t.Helper()
		d := &demo{t: t, bin: bin, dataDir: dataDir, nodeName: nodeName, nodeIP: nodeIP,
			logPath: filepath.Join(tmp, fmt.Sprintf("kiln-%d.log", run)), exited: make(chan struct{})}
		// The kubeconfig is written once the API serves; the first run's
		// must not count for the second.
		if err := os.Remove(filepath.Join(dataDir, "admin.kubeconfig")); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		logf, err := os.Create(d.logPath)
		if err != nil {
			t.Fatal(err)
		}
		d.cmd = exec.Command(bin, "server", "--data-dir", dataDir, "--api-listen", apiAddr,
			"--dashboard-listen", dashAddr, "--kubelet-port", kubeletPort,
			"--node-name", nodeName, "--node-ip", nodeIP, "--disable", "proxy")
		d.cmd.Stdout, d.cmd.Stderr = logf, logf
		if err := d.cmd.Start(); err != nil {
			logf.Close()
			t.Fatal(err)
		}
		go func() {
			d.waitErr = d.cmd.Wait()
			logf.Close()
			close(d.exited)
		}()
		t.Cleanup(func() {
			if t.Failed() {
				d.logTail()
			}
		})
		d.waitReady(filepath.Join(dataDir, "admin.kubeconfig"))
		return d
	}

	d := start(1)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			nodeDrain(t, d)
			nodeStop(t, d)
		}
	})
	ctx := t.Context()
	nodeWaitReady(d, time.Time{})

	deploy := demoWebDeployment("web", "node-test", nodeReplicas)
	if _, err := d.cs.AppsV1().Deployments(metav1.NamespaceDefault).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := nodeWaitPods(d)
	counts := map[string]int{}
	for _, p := range before {
		counts[p.Name] = nodeRequest(t, p, "/before-kill")
	}

	// kill -9: containerd dies with kiln (Pdeathsig), the containers
	// do not.
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	for _, p := range before {
		if n := nodeRequest(t, p, "/while-kiln-is-down"); n != counts[p.Name]+1 {
			t.Errorf("pod %s answered request %d while kiln was down, want %d: its container restarted", p.Name, n, counts[p.Name]+1)
		}
		counts[p.Name]++
	}

	restarted := time.Now()
	d = start(2)
	nodeWaitReady(d, restarted)
	// Adopted: the same pods with the same containers, still Ready, and
	// nothing new. The kubelet has synced every pod once its Lease is
	// renewed and its relist ran; what it would restart would show then.
	after := nodeWaitPods(d)
	d.eventually("a settled node (same containers for 3s after the kubelet's restart)", func() error {
		if time.Since(restarted) < 3*time.Second {
			return errors.New("settling")
		}
		return nodeSame(before, nodeWaitPods(d))
	})
	if err := nodeSame(before, after); err != nil {
		t.Error(err)
	}
	for _, p := range before {
		if n := nodeRequest(t, p, "/after-restart"); n != counts[p.Name]+1 {
			t.Errorf("pod %s answered request %d after the restart, want %d: its container restarted", p.Name, n, counts[p.Name]+1)
		}
	}
	// The log relay was taken up again: lines from before the kill and
	// after the restart are in the same log.
	logs, err := d.cs.CoreV1().Pods(metav1.NamespaceDefault).GetLogs(before[0].Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("pods/log through the restarted kubelet: %v", err)
	}
	for _, want := range []string{"GET /before-kill", "GET /while-kiln-is-down", "GET /after-restart"} {
		if !regexp.MustCompile(regexp.QuoteMeta(want) + ` from`).Match(logs) {
			t.Errorf("log of %s has no %q line:\n%s", before[0].Name, want, logs)
		}
	}

	nodeDrain(t, d)
	nodeStop(t, d)
	stopped = true
}

// nodeWaitReady waits for the Node to be Ready with a kubelet that
// renewed its Lease after since.
func nodeWaitReady(d *demo, since time.Time) {
	d.t.Helper()
	d.eventually("node Ready", func() error {
		ctx := d.t.Context()
		n, err := d.cs.CoreV1().Nodes().Get(ctx, d.nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status != corev1.ConditionTrue {
					return fmt.Errorf("node Ready=%s: %s", c.Status, c.Message)
				}
				ready = true
			}
		}
		if !ready || n.Spec.PodCIDR == "" {
			return fmt.Errorf("node not Ready or without a pod CIDR (%q)", n.Spec.PodCIDR)
		}
		l, err := d.cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, d.nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if l.Spec.RenewTime == nil || l.Spec.RenewTime.Time.Before(since) {
			return errors.New("lease not renewed by the new kubelet yet")
		}
		return nil
	})
}

// nodeWaitPods waits for the Deployment's 5 pods to be Running and Ready
// and returns them.
func nodeWaitPods(d *demo) []corev1.Pod {
	d.t.Helper()
	var ready []corev1.Pod
	d.eventually(fmt.Sprintf("%d Ready pods", nodeReplicas), func() error {
		l, err := d.cs.CoreV1().Pods(metav1.NamespaceDefault).List(d.t.Context(), metav1.ListOptions{LabelSelector: "app=node-test"})
		if err != nil {
			return err
		}
		ready = ready[:0]
		for _, p := range l.Items {
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || p.DeletionTimestamp != nil {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready = append(ready, p)
				}
			}
		}
		if len(l.Items) != nodeReplicas || len(ready) != nodeReplicas {
			return fmt.Errorf("%d pods, %d Ready: %s", len(l.Items), len(ready), podSummary(l.Items))
		}
		return nil
	})
	return ready
}

// nodeSame reports how the pods after differ from before: other pods,
// other containers, restarts.
func nodeSame(before, after []corev1.Pod) error {
	was := map[string]corev1.Pod{}
	for _, p := range before {
		was[p.Name] = p
	}
	if len(after) != len(before) {
		return fmt.Errorf("%d pods after the restart, %d before", len(after), len(before))
	}
	for _, p := range after {
		b, ok := was[p.Name]
		if !ok || b.UID != p.UID {
			return fmt.Errorf("pod %s is new after the restart (before: %v)", p.Name, podNames(before))
		}
		if len(p.Status.ContainerStatuses) != 1 || len(b.Status.ContainerStatuses) != 1 {
			return fmt.Errorf("pod %s: want one container status", p.Name)
		}
		cb, ca := b.Status.ContainerStatuses[0], p.Status.ContainerStatuses[0]
		if ca.ContainerID != cb.ContainerID || ca.RestartCount != 0 || ca.State.Running == nil || !ca.Ready {
			return fmt.Errorf("pod %s: container %s restarts=%d running=%v ready=%v after the restart, want %s running, ready, never restarted",
				p.Name, ca.ContainerID, ca.RestartCount, ca.State.Running != nil, ca.Ready, cb.ContainerID)
		}
		if p.Status.PodIP != b.Status.PodIP {
			return fmt.Errorf("pod %s: IP %s after the restart, %s before", p.Name, p.Status.PodIP, b.Status.PodIP)
		}
	}
	return nil
}

var nodeRequestRE = regexp.MustCompile(`\(request (\d+)\)`)

// nodeRequest GETs path from a pod and returns the request number its
// server answers: a counter in the process, so it shows a restart.
func nodeRequest(t *testing.T, p corev1.Pod, path string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(p.Status.PodIP, "8080")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := nodeHTTP.Do(req)
	if err != nil {
		t.Fatalf("pod %s: %v", p.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pod %s: GET %s: %s, %v", p.Name, path, resp.Status, err)
	}
	body := string(b)
	m := nodeRequestRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("pod %s answered %q", p.Name, body)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// nodeHTTP opens a connection per request: an idle one kept across the
// kill would not say whether a new one can be made.
var nodeHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

// nodeDrain deletes the Deployment and every pod and waits until the
// kubelet has removed them from the node (their directories under
// DATA_DIR/pods go last): kiln's shutdown leaves containers running.
func nodeDrain(t *testing.T, d *demo) {
	select {
	case <-d.exited:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), demoWait)
	defer cancel()
	_ = d.cs.AppsV1().Deployments(metav1.NamespaceDefault).Delete(ctx, "web", metav1.DeleteOptions{})
	zero := int64(0)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		l, err := d.cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, p := range l.Items {
				if p.DeletionTimestamp == nil {
					_ = d.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
				}
			}
		}
		dirs, _ := os.ReadDir(filepath.Join(d.dataDir, "pods"))
		if err == nil && len(l.Items) == 0 && len(dirs) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("cleanup: pods not removed within %v (%d pod dirs left)", demoWait, len(dirs))
			return
		case <-tick.C:
		}
	}
}

// nodeStop sends SIGTERM and wants exit status 0 in time.
func nodeStop(t *testing.T, d *demo) {
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal kiln: %v", err)
	}
	select {
	case <-d.exited:
		if d.waitErr != nil {
			t.Errorf("kiln server after SIGTERM: %v, want exit status 0", d.waitErr)
		}
	case <-time.After(kilnStopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
		t.Errorf("kiln server did not exit within %v of SIGTERM", kilnStopTimeout)
	}
}

// TestNewKubeletClient: the API server's client of kubelets sends the
// admin token to a kubelet whose certificate the kiln CA signed, and
// refuses a server the CA did not sign (it would otherwise hand the token
// to whoever answers at a Node's address).
func TestNewKubeletClient(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.EnsureCA(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.EnsureServing(filepath.Join(dir, "tls"), "kubelet", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	kubelet := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		_, _ = io.WriteString(w, "log line\n")
	}))
	kubelet.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	kubelet.StartTLS()
	defer kubelet.Close()
	c := newKubeletClient(ca.CertPEM, "admin-token")

	resp, err := c.Get(kubelet.URL + "/containerLogs/default/web/web")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got != "Bearer admin-token" || string(body) != "log line\n" {
		t.Fatalf("kubelet saw Authorization %q and answered %q", got, body)
	}

	got = ""
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
	}))
	defer other.Close()
	if resp, err := c.Get(other.URL + "/containerLogs/default/web/web"); err == nil {
		resp.Body.Close()
		t.Fatal("a server the kiln CA did not sign was trusted")
	}
	if got != "" {
		t.Fatalf("the token reached a server the kiln CA did not sign: %q", got)
	}
}
