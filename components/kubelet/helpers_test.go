package kubelet_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/kubelet/simulated"
	"kiln.dev/kiln/components/testenv"
)

// Timings of the tests: back-off and probe periods are short so that a
// crash loop or a probe failure shows within a second or two.
const (
	waitLimit   = 30 * time.Second
	backoffBase = 200 * time.Millisecond
	ns          = "default"
)

// eventually polls cond until it holds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// cluster is a control plane whose API server reaches kubelets for
// pods/log, as `kiln server` wires it.
type cluster struct {
	*testenv.Env
	ca *pki.CA
}

// startCluster starts etcd and the API server with a kubelet client that
// sends the admin token and trusts the cluster CA.
func startCluster(t testing.TB) *cluster {
	t.Helper()
	return startClusterWith(t, testenv.Options{})
}

// startClusterWith is startCluster with more of the API server's options.
func startClusterWith(t testing.TB, opts testenv.Options) *cluster {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.EnsureCA(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := pki.EnsureToken(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	opts.DataDir, opts.KubeletClient = dir, kubeletClient(ca, token)
	env := testenv.Start(t, opts)
	return &cluster{Env: env, ca: ca}
}

// kubeletClient is the API server's client of kubelets.
func kubeletClient(ca *pki.CA, token string) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &http.Client{Transport: &bearer{token: token, next: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}}}
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// simNode starts a kubelet on a simulated runtime whose sandboxes all
// get 127.0.0.1, so that probes reach servers the test runs, and waits
// for its Node to be Ready.
func simNode(t testing.TB, c *cluster, name string) *node {
	t.Helper()
	n := startKubelet(t, c, name, simulated.New(simulated.Config{SandboxIP: "127.0.0.1"}), "", nil)
	eventually(t, "node "+name+" ready", func() bool {
		nd, err := c.Clientset.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
		return err == nil && nodeReady(nd)
	})
	return n
}

// node is a running kubelet with its simulated runtime.
type node struct {
	name string
	k    *kubelet.Kubelet
	rt   *simulated.Runtime
	dir  string
	stop func()
}

// startKubelet runs a kubelet for node name on rt until the test ends
// (or stop). tweak adjusts its Config.
func startKubelet(t testing.TB, c *cluster, name string, rt *simulated.Runtime, dir string, tweak func(*kubelet.Config)) *node {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cert, err := c.ca.EnsureServing(filepath.Join(dir, "tls"), "kubelet", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := kubelet.Config{
		Client:         c.Clientset,
		NodeName:       name,
		Runtime:        rt,
		RootDir:        dir,
		NodeIP:         "127.0.0.1",
		ServerAddr:     "127.0.0.1:0",
		TLS:            &cert,
		BackoffBase:    backoffBase,
		BackoffMax:     10 * backoffBase,
		LeaseDuration:  400 * time.Millisecond,
		StatusPeriod:   200 * time.Millisecond,
		RelistPeriod:   50 * time.Millisecond,
		ResyncPeriod:   5 * time.Second,
		NoHostPressure: true,
		Logger:         testLogger(t).With("test", t.Name()),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	k, err := kubelet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("kubelet Run: %v", err)
				}
			case <-time.After(waitLimit):
				t.Errorf("kubelet Run did not return within %v", waitLimit)
			}
		})
	}
	t.Cleanup(stop)
	n := &node{name: name, k: k, rt: rt, dir: dir, stop: stop}
	eventually(t, "node "+name+" registered", func() bool {
		_, err := c.Clientset.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
		return err == nil
	})
	return n
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// newPod is a pod bound to node, with one container "app" unless the
// caller adds its own.
func newPod(name, node string, annotations map[string]string, containers ...corev1.Container) *corev1.Pod {
	if len(containers) == 0 {
		containers = []corev1.Container{{Name: "app", Image: "example.com/app:v1"}}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations, Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: containers},
	}
}

func (c *cluster) createPod(t testing.TB, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if pod.Namespace == "" {
		pod.Namespace = ns
	}
	out, err := c.Clientset.CoreV1().Pods(pod.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitPod polls a pod until cond holds and returns it.
func (c *cluster) waitPod(t testing.TB, namespace, name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	deadline := time.Now().Add(waitLimit)
	for {
		p, err := c.Clientset.CoreV1().Pods(namespace).Get(t.Context(), name, metav1.GetOptions{})
		if err == nil {
			last = p
			if cond(p) {
				return p
			}
		} else if !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for pod %s/%s: %s; last status: %s", namespace, name, what, describe(last))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits until the pod object is deleted.
func (c *cluster) waitGone(t testing.TB, namespace, name string) {
	t.Helper()
	eventually(t, "pod "+name+" deleted", func() bool {
		_, err := c.Clientset.CoreV1().Pods(namespace).Get(t.Context(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

func describe(p *corev1.Pod) string {
	if p == nil {
		return "<none>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s ip=%s", p.Status.Phase, p.Status.PodIP)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
	}
	for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, " [%s restarts=%d ready=%v %s]", cs.Name, cs.RestartCount, cs.Ready, state(cs.State))
	}
	return b.String()
}

func state(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated(%d %s)", s.Terminated.ExitCode, s.Terminated.Reason)
	case s.Waiting != nil:
		return fmt.Sprintf("waiting(%s: %s)", s.Waiting.Reason, s.Waiting.Message)
	}
	return "none"
}

func podReady(p *corev1.Pod) bool {
	return condition(p, corev1.PodReady) == corev1.ConditionTrue
}

func condition(p *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, l := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range l {
			if l[i].Name == name {
				return &l[i]
			}
		}
	}
	return nil
}

// events lists the reasons of the Events about a pod, in order.
func (c *cluster) events(t testing.TB, pod *corev1.Pod) []string {
	t.Helper()
	l, err := c.Clientset.CoreV1().Events(pod.Namespace).List(t.Context(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(pod.UID)).String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range l.Items {
		out = append(out, e.Reason)
	}
	return out
}

func hasAll(have []string, want ...string) bool {
	set := map[string]bool{}
	for _, h := range have {
		set[h] = true
	}
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}
