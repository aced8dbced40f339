package containerd_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/internal/imagebuild"
	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/kubelet/containerd"
	"kiln.dev/kiln/components/kubelet/runtime"
	"kiln.dev/kiln/components/testenv"
)

// The end-to-end tests run the real kubelet on this runtime against a real
// API server (testenv), as `kiln server` does: real containerd, runc, CNI
// and kubectl. Each node has its own data dir, containerd namespace,
// bridge and pod CIDR, and leaves nothing running behind.

// e2eWait bounds each wait of the end-to-end tests.
const e2eWait = 60 * time.Second

// e2eNode is an API server with one kubelet on a containerd runtime.
type e2eNode struct {
	env        *testenv.Env
	rt         *containerd.Runtime
	name       string
	root       string
	cidr       string
	kubeconfig string
}

// e2eOptions tune the kubelet of an e2eNode.
type e2eOptions struct {
	// tweak adjusts the kubelet's Config before New.
	tweak func(*kubelet.Config)
	// logLevel of the runtime's and kubelet's logs (default Info).
	logLevel slog.Level
	// asNode gives the kubelet a node's credentials (system:node:NAME,
	// as kiln agent has) instead of the admin's, so that the node
	// authorizer decides its requests.
	asNode bool
}

// startE2ENode starts the API server, the runtime and the kubelet, gives
// the Node a pod CIDR (what the nodeipam controller does in kiln server)
// and waits for the Node to be Ready. At cleanup every pod is deleted,
// the kubelet stops, whatever is left in the runtime is removed, and the
// runtime stops.
func startE2ENode(t testing.TB, o e2eOptions) *e2eNode {
	t.Helper()
	containerd.RequireHost(t)
	dir := t.TempDir()
	ca, err := pki.EnsureCA(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := pki.EnsureToken(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	env := testenv.Start(t, testenv.Options{DataDir: dir, KubeletClient: e2eKubeletClient(ca.CertPEM, token)})

	suffix := containerd.NewTestID()[:6]
	n := &e2eNode{
		env:        env,
		name:       "e2e-" + suffix,
		root:       filepath.Join(dir, "node"),
		cidr:       fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256)),
		kubeconfig: env.Kubeconfig,
	}
	archive := containerd.DemoArchive(t)
	if err := os.MkdirAll(filepath.Join(n.root, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.root, "images", "demo-web.tar"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	bridge := "ke" + suffix
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", bridge).Run()
		containerd.RemoveCgroups(n.name)
		containerd.CleanupHost(t, n.root)
	})

	level := o.logLevel
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
	rt, err := containerd.New(containerd.Config{RootDir: n.root, Namespace: n.name, BridgeName: bridge, NodeIP: "127.0.0.1", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	n.rt = rt
	cert, err := ca.EnsureServing(filepath.Join(dir, "tls"), "kubelet", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	kcfg := kubelet.Config{
		Client:     env.Clientset,
		NodeName:   n.name,
		Runtime:    rt,
		RootDir:    n.root,
		NodeIP:     "127.0.0.1",
		ServerAddr: "127.0.0.1:0",
		TLS:        &cert,
		Logger:     logger,
	}
	if o.asNode {
		certPEM, keyPEM, err := ca.IssueClient("system:node:"+n.name, []string{"system:nodes"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		rc := rest.CopyConfig(env.RESTConfig)
		rc.BearerToken = ""
		rc.CertData, rc.KeyData = certPEM, keyPEM
		if kcfg.Client, err = kubernetes.NewForConfig(rc); err != nil {
			t.Fatal(err)
		}
	}
	if o.tweak != nil {
		o.tweak(&kcfg)
	}
	k, err := kubelet.New(kcfg)
	if err != nil {
		t.Fatal(err)
	}

	// Both outlive the test's context: the cleanup below still needs them.
	rtCtx, stopRT := context.WithCancel(context.WithoutCancel(t.Context()))
	kCtx, stopK := context.WithCancel(context.WithoutCancel(t.Context()))
	rtErr, kErr := make(chan error, 1), make(chan error, 1)
	go func() { rtErr <- rt.Run(rtCtx) }()
	select {
	case <-rt.Ready():
	case err := <-rtErr:
		stopRT()
		t.Fatalf("runtime stopped before ready: %v", err)
	case <-time.After(e2eWait):
		stopRT()
		t.Fatal("runtime not ready in time")
	}
	go func() { kErr <- k.Run(kCtx) }()
	t.Cleanup(func() {
		// 1. Pods go through the kubelet, as a user deletes them.
		n.deleteAllPods(t)
		// 2. The kubelet stops.
		stopK()
		if err := waitErr(kErr, 30*time.Second); err != nil {
			t.Errorf("kubelet: %v", err)
		}
		// 3. What a failed test left in the runtime goes, then the
		// runtime stops.
		n.removeAll(t)
		if err := rt.RemoveMasquerade(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		stopRT()
		if err := waitErr(rtErr, 30*time.Second); err != nil {
			t.Errorf("runtime: %v", err)
		}
	})

	nodes := env.Clientset.CoreV1().Nodes()
	n.eventually(t, "node registered", func() error {
		_, err := nodes.Get(t.Context(), n.name, metav1.GetOptions{})
		return err
	})
	patch := fmt.Sprintf(`{"spec":{"podCIDR":%q,"podCIDRs":[%q]}}`, n.cidr, n.cidr)
	if _, err := nodes.Patch(t.Context(), n.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(t, "node Ready", func() error {
		node, err := nodes.Get(t.Context(), n.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("node Ready=%s: %s", c.Status, c.Message)
			}
		}
		return errors.New("node has no Ready condition")
	})
	return n
}

// e2eKubeletClient is the API server's client of kubelets, as kiln server
// builds it (cmd/kiln newKubeletClient).
func e2eKubeletClient(caPEM []byte, token string) *http.Client {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return &http.Client{Transport: bearer{token: token, next: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}}}
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func waitErr(c <-chan error, within time.Duration) error {
	select {
	case err := <-c:
		return err
	case <-time.After(within):
		return fmt.Errorf("did not stop within %s", within)
	}
}

// deleteAllPods deletes every pod at once and waits until they are gone
// (the kubelet has stopped their containers).
func (n *e2eNode) deleteAllPods(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), e2eWait)
	defer cancel()
	pods := n.env.Clientset.CoreV1().Pods(metav1.NamespaceAll)
	zero := int64(0)
	l, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, p := range l.Items {
		err := n.env.Clientset.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("cleanup: delete pod %s: %v", p.Name, err)
		}
	}
	// Gone from the API is not enough: the kubelet then removes their
	// containers and sandboxes.
	for {
		var left []string
		l, err := pods.List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, p := range l.Items {
				left = append(left, "pod "+p.Name)
			}
		}
		cs, cerr := n.rt.ListContainers(ctx, runtime.ContainerFilter{})
		for _, c := range cs {
			left = append(left, "container "+c.Name)
		}
		sbs, serr := n.rt.ListPodSandboxes(ctx, runtime.SandboxFilter{})
		for _, sb := range sbs {
			left = append(left, "sandbox "+sb.Name)
		}
		err = errors.Join(err, cerr, serr)
		if err == nil && len(left) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("cleanup: the kubelet did not remove every pod: %v left (%v)", left, err)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// removeAll removes every container and sandbox left in the runtime.
func (n *e2eNode) removeAll(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), e2eWait)
	defer cancel()
	cs, err := n.rt.ListContainers(ctx, runtime.ContainerFilter{})
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, c := range cs {
		t.Logf("cleanup: container %s (%s) was left", c.ID, c.Name)
		_ = n.rt.StopContainer(ctx, c.ID, time.Second)
		if err := n.rt.RemoveContainer(ctx, c.ID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	sbs, err := n.rt.ListPodSandboxes(ctx, runtime.SandboxFilter{})
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, sb := range sbs {
		t.Logf("cleanup: sandbox %s (%s) was left", sb.ID, sb.Name)
		_ = n.rt.StopPodSandbox(ctx, sb.ID)
		if err := n.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

// eventually polls fn every 50ms until it returns nil, failing after
// e2eWait with its last error.
func (n *e2eNode) eventually(t testing.TB, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, e2eWait, err)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: test ended: %v", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kubectl runs the real kubectl against the node's API server.
func (n *e2eNode) kubectl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Kubectl(t), append([]string{"--kubeconfig", n.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// podHistory records every version of every pod a watch delivers, so that
// tests can assert on states that do not last (ErrImagePull, each
// back-off of a crash loop).
type podHistory struct {
	mu      sync.Mutex
	byName  map[string][]*corev1.Pod
	at      map[*corev1.Pod]time.Time // when the watch delivered each
	changed chan struct{}             // closed and replaced at every event
}

// watchPods records the pods of namespace from now until the test ends.
func (n *e2eNode) watchPods(t testing.TB, namespace string) *podHistory {
	t.Helper()
	h := &podHistory{byName: map[string][]*corev1.Pod{}, at: map[*corev1.Pod]time.Time{}, changed: make(chan struct{})}
	w, err := n.env.Clientset.CoreV1().Pods(namespace).Watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { w.Stop(); <-done })
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				pod = pod.DeepCopy()
				pod.Annotations = map[string]string{"test/deleted": "true"}
			}
			h.mu.Lock()
			h.at[pod] = time.Now()
			h.byName[pod.Name] = append(h.byName[pod.Name], pod)
			close(h.changed)
			h.changed = make(chan struct{})
			h.mu.Unlock()
		}
	}()
	return h
}

// all returns every recorded version of a pod, oldest first.
func (h *podHistory) all(name string) []*corev1.Pod {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*corev1.Pod(nil), h.byName[name]...)
}

// wait returns the first recorded version of pod name that satisfies
// cond, waiting for it up to within; it fails with the pod's last state.
func (h *podHistory) wait(t testing.TB, name, what string, within time.Duration, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	seen := 0
	for {
		h.mu.Lock()
		versions := h.byName[name]
		changed := h.changed
		h.mu.Unlock()
		for ; seen < len(versions); seen++ {
			if cond(versions[seen]) {
				return versions[seen]
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			last := "never seen"
			if len(versions) > 0 {
				last = describePod(versions[len(versions)-1])
			}
			t.Fatalf("pod %s: %s: not within %s; last: %s", name, what, within, last)
		case <-t.Context().Done():
			t.Fatalf("pod %s: %s: test ended", name, what)
		}
	}
}

func describePod(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s ip=%s", p.Status.Phase, p.Status.PodIP)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
	}
	for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, " [%s ready=%v restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
		switch s := cs.State; {
		case s.Running != nil:
			b.WriteString(" running")
		case s.Waiting != nil:
			fmt.Fprintf(&b, " waiting %s: %s", s.Waiting.Reason, s.Waiting.Message)
		case s.Terminated != nil:
			fmt.Fprintf(&b, " terminated %s exit %d", s.Terminated.Reason, s.Terminated.ExitCode)
		}
		b.WriteString("]")
	}
	return b.String()
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
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

// demoContainer is a container of the demo image.
func demoContainer(name string, args ...string) corev1.Container {
	c := corev1.Container{Name: name, Image: imagebuild.DemoWebRef, ImagePullPolicy: corev1.PullIfNotPresent}
	if len(args) > 0 {
		c.Command = append([]string{"/demo-web"}, args...)
	}
	return c
}

func (n *e2eNode) newPod(name string, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			NodeName:                      n.name,
			Containers:                    containers,
			TerminationGracePeriodSeconds: new(int64(30)),
		},
	}
}

// backoffRE finds the delay in a CrashLoopBackOff message.
var backoffRE = regexp.MustCompile(`back-off (\S+) restarting failed container`)

// TestKubelet_E2E is the issue's checklist for a node, on real containers:
// the pods are created at once and checked one by one.
func TestKubelet_E2E(t *testing.T) {
	n := startE2ENode(t, e2eOptions{tweak: func(c *kubelet.Config) {
		// A crash loop shows three back-offs in seconds, and an exit is
		// noticed well within the shortest.
		c.BackoffBase = 500 * time.Millisecond
		c.BackoffMax = 8 * time.Second
		c.RelistPeriod = 100 * time.Millisecond
	}})
	ctx := t.Context()
	cs := n.env.Clientset
	ns := metav1.NamespaceDefault

	// A registry that has no such image: the pull fails with its answer.
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	missingRef := strings.TrimPrefix(reg.URL, "http://") + "/kiln/missing:1.0"

	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "app-config"},
		Data:       map[string]string{"greeting": "hi from a configmap", "app.conf": "mode=e2e\n"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "app-secret"},
		Data:       map[string][]byte{"password": []byte("s3cret-e2e")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	hist := n.watchPods(t, ns)
	var pods []*corev1.Pod

	// web: the demo server, Ready once its readiness probe answers.
	web := demoContainer("web")
	web.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	web.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
		PeriodSeconds: 1,
	}
	pods = append(pods, n.newPod("web", web))

	// crash: exits 1 at once, for ever.
	pods = append(pods, n.newPod("crash", demoContainer("crash", "exit", "1")))

	// liveness: serves, but its liveness probe checks a port nothing
	// listens on.
	live := demoContainer("live")
	live.LivenessProbe = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/demo-web", "check", "-url", "http://127.0.0.1:8081/"}}},
		PeriodSeconds:    1,
		FailureThreshold: 1,
	}
	pods = append(pods, n.newPod("liveness", live))

	// unready: serves, but its readiness probe never succeeds.
	unready := demoContainer("unready")
	unready.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8081)}},
		PeriodSeconds: 1,
	}
	pods = append(pods, n.newPod("unready", unready))

	// config: an init container fills an emptyDir; one container prints
	// its environment (from the ConfigMap and the Secret), the other the
	// mounted ConfigMap and the init container's file.
	initC := demoContainer("init", "write", "/work/msg", "written by init\n")
	initC.VolumeMounts = []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}
	envC := demoContainer("env", "env")
	envC.Env = []corev1.EnvVar{
		{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}, Key: "greeting"}}},
		{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "app-secret"}, Key: "password"}}},
	}
	catC := demoContainer("cat", "cat", "/config/app.conf", "/work/msg")
	catC.VolumeMounts = []corev1.VolumeMount{{Name: "config", MountPath: "/config", ReadOnly: true}, {Name: "work", MountPath: "/work"}}
	config := n.newPod("config", envC, catC)
	config.Spec.InitContainers = []corev1.Container{initC}
	config.Spec.RestartPolicy = corev1.RestartPolicyNever
	config.Spec.Volumes = []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}},
		{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	pods = append(pods, config)

	// oom: allocates 256 MiB under a 64 MiB limit.
	oomC := demoContainer("oom", "alloc", "256")
	oomC.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
	oom := n.newPod("oom", oomC)
	oom.Spec.RestartPolicy = corev1.RestartPolicyNever
	pods = append(pods, oom)

	// missing: an image no registry has.
	missing := corev1.Container{Name: "app", Image: missingRef, ImagePullPolicy: corev1.PullIfNotPresent}
	pods = append(pods, n.newPod("missing", missing))

	for _, p := range pods {
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
	}

	t.Run("RunningReadyAndServing", func(t *testing.T) {
		p := hist.wait(t, "web", "Running and Ready", e2eWait, func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodRunning && podReady(p) && p.Status.PodIP != ""
		})
		if p.Status.HostIP != "127.0.0.1" {
			t.Errorf("hostIP %q, want the node's 127.0.0.1", p.Status.HostIP)
		}
		st := containerStatus(p, "web")
		if st == nil || !strings.HasPrefix(st.ContainerID, "containerd://") || st.ImageID == "" || !st.Ready {
			t.Errorf("container status %+v: want a ready containerd:// container with an imageID", st)
		}
		body, err := httpGetBody("http://" + p.Status.PodIP + ":8080/")
		if err != nil {
			t.Fatalf("pod IP does not answer from the host: %v", err)
		}
		if !strings.Contains(body, "hello from web") {
			t.Errorf("GET / = %q, want the greeting from the pod's hostname", body)
		}
	})

	t.Run("KubectlLogs", func(t *testing.T) {
		p := hist.wait(t, "web", "Ready", e2eWait, podReady)
		if _, err := httpGetBody("http://" + p.Status.PodIP + ":8080/from-logs-test"); err != nil {
			t.Fatal(err)
		}
		n.eventually(t, "request in kubectl logs", func() error {
			out, err := n.kubectl(t, "logs", "web")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if !strings.Contains(out, "listening on") || !strings.Contains(out, "GET /from-logs-test from") {
				return fmt.Errorf("kubectl logs web = %q", out)
			}
			return nil
		})
		// The last line: the readiness probe's requests are logged too.
		out, err := n.kubectl(t, "logs", "web", "--tail=1", "--timestamps")
		if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, " GET /") {
			t.Errorf("kubectl logs --tail=1 --timestamps = %q, %v", out, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, strings.Fields(out + " x")[0]); err != nil {
			t.Errorf("kubectl logs --timestamps: no timestamp in %q", out)
		}
	})

	t.Run("KubectlExec", func(t *testing.T) {
		hist.wait(t, "web", "Running", e2eWait, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		// kubectl exec over its default WebSocket, through the API
		// server's proxy to the kubelet: output, exit codes, stdin to EOF
		// and stderr on its own stream.
		out, err := n.kubectl(t, "exec", "web", "--", "/demo-web", "id")
		if err != nil || !strings.HasPrefix(out, "uid=0 gid=0 ") {
			t.Errorf("kubectl exec web -- /demo-web id = %q, %v", out, err)
		}
		run := func(stdin string, args ...string) (string, string, int) {
			t.Helper()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, testenv.Kubectl(t), append([]string{"--kubeconfig", n.kubeconfig}, args...)...)
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			cmd.Stdin = strings.NewReader(stdin)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatalf("kubectl %v: %v", args, err)
			}
			return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
		}
		if o, e, code := run("line one\nline two\n", "exec", "-i", "web", "--", "/demo-web", "cat"); o != "line one\nline two\n" || code != 0 {
			t.Errorf("kubectl exec -i web -- cat: stdout %q, stderr %q, exit %d; want stdin echoed and 0", o, e, code)
		}
		if o, e, code := run("", "exec", "web", "--", "/demo-web", "exit", "3"); code != 3 || !strings.Contains(e, "command terminated with exit code 3") {
			t.Errorf("kubectl exec web -- exit 3: stdout %q, stderr %q, exit %d; want exit code 3", o, e, code)
		}
		if o, e, code := run("", "exec", "web", "--", "/demo-web", "cat", "/no/such/file"); code != 1 || o != "" || !strings.Contains(e, "no such file") {
			t.Errorf("kubectl exec web -- cat /no/such/file: stdout %q, stderr %q, exit %d; want the error on stderr and 1", o, e, code)
		}
		if o, e, code := run("", "exec", "web", "-c", "nope", "--", "/demo-web", "id"); code == 0 || !strings.Contains(e, "container nope is not valid for pod web") {
			t.Errorf("kubectl exec -c nope: stdout %q, stderr %q, exit %d; want the container refused", o, e, code)
		}

		// With a terminal (client-go's WebSocket executor, as kubectl
		// exec -t uses it): one output stream, with the terminal's CRLF.
		u := n.env.Clientset.CoreV1().RESTClient().Post().Resource("pods").Namespace(metav1.NamespaceDefault).Name("web").SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: "web", Command: []string{"/demo-web", "id"}, Stdout: true, TTY: true}, scheme.ParameterCodec).URL()
		ex, err := remotecommand.NewWebSocketExecutor(n.env.RESTConfig, "GET", u.String())
		if err != nil {
			t.Fatal(err)
		}
		var tty strings.Builder
		sctx, scancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer scancel()
		if err := ex.StreamWithContext(sctx, remotecommand.StreamOptions{Stdout: &tty, Tty: true}); err != nil {
			t.Fatalf("exec with a TTY: %v", err)
		}
		if got := tty.String(); !strings.HasPrefix(got, "uid=0") || !strings.HasSuffix(got, "\r\n") {
			t.Errorf("exec with a TTY printed %q, want the id line ending in CRLF", got)
		}
	})

	t.Run("KubectlPortForward", func(t *testing.T) {
		// A server on the pod's loopback only: kubectl port-forward
		// reaches it inside the pod's network namespace, over SPDY
		// through the API server and the kubelet.
		lo := n.newPod("loopback", demoContainer("lo", "serve", "-addr", "127.0.0.1:9090"))
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, lo, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		hist.wait(t, "loopback", "Running", e2eWait, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		pctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		cmd := exec.CommandContext(pctx, testenv.Kubectl(t), "--kubeconfig", n.kubeconfig, "port-forward", "pod/loopback", ":9090")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		// "Forwarding from 127.0.0.1:PORT -> 9090"
		lines := bufio.NewScanner(stdout)
		var local string
		for local == "" && lines.Scan() {
			if f := strings.Fields(lines.Text()); len(f) == 5 && f[0] == "Forwarding" && strings.HasPrefix(f[2], "127.0.0.1:") {
				local = f[2]
			}
		}
		if local == "" {
			t.Fatalf("kubectl port-forward printed no local address; stderr:\n%s", stderr.String())
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		// Several connections, one after another, each a new stream pair.
		for i := range 3 {
			body, err := httpGetBody("http://" + local + "/")
			if err != nil || !strings.Contains(body, "hello from loopback") {
				t.Fatalf("request %d through %s: %q, %v; kubectl stderr:\n%s", i, local, body, err, stderr.String())
			}
		}
		// A port nothing listens on: the connection ends and kubectl
		// reports the error the kubelet sent.
		cmd2 := exec.CommandContext(pctx, testenv.Kubectl(t), "--kubeconfig", n.kubeconfig, "port-forward", "pod/loopback", ":9999")
		cmd2.Env = cmd.Env
		out2, _ := cmd2.StdoutPipe()
		var stderr2 strings.Builder
		cmd2.Stderr = &stderr2
		if err := cmd2.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd2.Wait(); close(exited) }()
		defer func() { _ = cmd2.Process.Kill(); <-exited }()
		sc2 := bufio.NewScanner(out2)
		var local2 string
		for local2 == "" && sc2.Scan() {
			if f := strings.Fields(sc2.Text()); len(f) == 5 && f[0] == "Forwarding" && strings.HasPrefix(f[2], "127.0.0.1:") {
				local2 = f[2]
			}
		}
		go func() { _, _ = io.Copy(io.Discard, out2) }()
		if _, err := httpGetBody("http://" + local2 + "/"); err == nil {
			t.Error("a request to a closed port of the pod succeeded")
		}
		// kubectl ends the forward on the kubelet's error; bounded, so
		// that a kubectl that keeps going fails the test, not hangs it.
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Error("kubectl port-forward did not end after the kubelet's error")
			_ = cmd2.Process.Kill()
			<-exited
		}
		if !strings.Contains(stderr2.String(), "error forwarding port 9999") {
			t.Errorf("kubectl port-forward to a closed port: stderr %q, want the kubelet's error", stderr2.String())
		}
	})

	t.Run("ImagePullSecret", func(t *testing.T) {
		// An image only a private registry has, pulled with the
		// credentials of the pod's imagePullSecrets.
		ref, user, password := containerd.PrivateRegistryWithDemo(t)
		host, _, _ := strings.Cut(ref, "/")
		cfg := fmt.Sprintf(`{"auths":{"http://%s/v2/":{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
		if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred"},
			Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(cfg)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c := corev1.Container{Name: "app", Image: ref, ImagePullPolicy: corev1.PullAlways, Command: []string{"/demo-web", "serve"}}
		p := n.newPod("private", c)
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		hist.wait(t, "private", "Running with the private image", e2eWait, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	})

	t.Run("FSGroupReadsOwnerOnlySecret", func(t *testing.T) {
		// A Secret mounted owner-only (0400) is readable by a container
		// running as another user when the pod's fsGroup is among its
		// groups: the kubelet gives the files to that group.
		c := demoContainer("reader", "cat", "/secret/password")
		c.VolumeMounts = []corev1.VolumeMount{{Name: "s", MountPath: "/secret"}}
		p := n.newPod("fsgroup", c)
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(1000)), RunAsGroup: new(int64(1000)), FSGroup: new(int64(2000))}
		p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "app-secret", DefaultMode: new(int32(0o400))}}}}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got := hist.wait(t, "fsgroup", "finished", e2eWait, func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		})
		out, _ := n.kubectl(t, "logs", "fsgroup")
		if got.Status.Phase != corev1.PodSucceeded || !strings.Contains(out, "s3cret-e2e") {
			t.Errorf("pod %s; log %q: want the secret read as uid 1000 through fsGroup 2000", got.Status.Phase, out)
		}
	})

	t.Run("CrashLoopBackOffGrows", func(t *testing.T) {
		hist.wait(t, "crash", "restarted 3 times and backing off", e2eWait, func(p *corev1.Pod) bool {
			st := containerStatus(p, "crash")
			return st != nil && st.RestartCount >= 3 && st.State.Waiting != nil && st.State.Waiting.Reason == "CrashLoopBackOff"
		})
		// The delays the status announced, in the order it did: each
		// longer than the one before.
		var delays []time.Duration
		var last *corev1.Pod
		for _, p := range hist.all("crash") {
			last = p
			st := containerStatus(p, "crash")
			if st == nil || st.State.Waiting == nil || st.State.Waiting.Reason != "CrashLoopBackOff" {
				continue
			}
			m := backoffRE.FindStringSubmatch(st.State.Waiting.Message)
			if m == nil {
				t.Fatalf("CrashLoopBackOff message %q does not say the delay", st.State.Waiting.Message)
			}
			d, err := time.ParseDuration(m[1])
			if err != nil {
				t.Fatal(err)
			}
			if len(delays) == 0 || delays[len(delays)-1] != d {
				delays = append(delays, d)
			}
		}
		t.Logf("back-off delays announced: %v", delays)
		if len(delays) < 2 {
			t.Fatalf("back-off delays %v: want at least two, growing", delays)
		}
		for i := 1; i < len(delays); i++ {
			if delays[i] <= delays[i-1] {
				t.Fatalf("back-off delays %v do not grow", delays)
			}
		}
		st := containerStatus(last, "crash")
		lt := st.LastTerminationState.Terminated
		if lt == nil || lt.ExitCode != 1 || lt.Reason != "Error" {
			t.Errorf("lastState %+v, want terminated with exit code 1, reason Error", st.LastTerminationState)
		}
		if last.Status.Phase != corev1.PodRunning || podReady(last) {
			t.Errorf("crash-looping pod: phase %s ready %v, want Running and not Ready", last.Status.Phase, podReady(last))
		}
		out, err := n.kubectl(t, "logs", "crash", "--previous")
		if err != nil || !strings.Contains(out, "exiting with 1") || !strings.Contains(out, "this line goes to stderr") {
			t.Errorf("kubectl logs --previous crash = %q, %v", out, err)
		}
	})

	t.Run("LivenessProbeRestarts", func(t *testing.T) {
		p := hist.wait(t, "liveness", "restarted by its liveness probe", e2eWait, func(p *corev1.Pod) bool {
			st := containerStatus(p, "live")
			return st != nil && st.RestartCount >= 1 && st.LastTerminationState.Terminated != nil
		})
		// Stopped with SIGTERM, which the server handles: exit 0.
		if lt := containerStatus(p, "live").LastTerminationState.Terminated; lt.ExitCode != 0 {
			t.Errorf("lastState %+v, want a clean exit after SIGTERM", lt)
		}
		n.eventually(t, "Unhealthy event", func() error {
			evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=liveness"})
			if err != nil {
				return err
			}
			var reasons []string
			for _, e := range evs.Items {
				if e.Reason == "Unhealthy" && strings.HasPrefix(e.Message, "Liveness probe failed") {
					return nil
				}
				reasons = append(reasons, e.Reason+": "+e.Message)
			}
			return fmt.Errorf("no Unhealthy liveness event among %q", reasons)
		})
		out, err := n.kubectl(t, "logs", "liveness", "--previous")
		if err != nil || !strings.Contains(out, "shutting down") {
			t.Errorf("kubectl logs --previous liveness = %q, %v: want the SIGTERM handler's line", out, err)
		}
	})

	t.Run("ReadinessProbeGatesReady", func(t *testing.T) {
		p := hist.wait(t, "unready", "Running", e2eWait, func(p *corev1.Pod) bool {
			st := containerStatus(p, "unready")
			return p.Status.Phase == corev1.PodRunning && st != nil && st.State.Running != nil
		})
		// The server answers on 8080, yet the pod is not Ready: its probe
		// (on 8081) decides, and keeps failing.
		if _, err := httpGetBody("http://" + p.Status.PodIP + ":8080/healthz"); err != nil {
			t.Fatalf("unready pod does not serve: %v", err)
		}
		n.eventually(t, "Unhealthy readiness event", func() error {
			evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=unready"})
			if err != nil {
				return err
			}
			for _, e := range evs.Items {
				if e.Reason == "Unhealthy" && strings.HasPrefix(e.Message, "Readiness probe failed") {
					return nil
				}
			}
			return errors.New("no Unhealthy readiness event yet")
		})
		for _, v := range hist.all("unready") {
			if podReady(v) {
				t.Fatalf("pod became Ready with a failing readiness probe: %s", describePod(v))
			}
		}
		cur, err := cs.CoreV1().Pods(ns).Get(ctx, "unready", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st := containerStatus(cur, "unready"); podReady(cur) || st == nil || st.Ready || st.RestartCount != 0 {
			t.Errorf("unready pod: %s; want Running, not Ready, never restarted", describePod(cur))
		}
	})

	t.Run("InitContainerEnvAndVolumes", func(t *testing.T) {
		p := hist.wait(t, "config", "Succeeded", e2eWait, func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		})
		if p.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("config pod: %s", describePod(p))
		}
		init := containerStatus(p, "init")
		if init == nil || init.State.Terminated == nil || init.State.Terminated.ExitCode != 0 {
			t.Fatalf("init container: %+v", init)
		}
		for _, name := range []string{"env", "cat"} {
			st := containerStatus(p, name)
			if st == nil || st.State.Terminated == nil {
				t.Fatalf("container %s: %+v", name, st)
			}
			if st.State.Terminated.StartedAt.Before(&init.State.Terminated.FinishedAt) {
				t.Errorf("container %s started at %s, before the init container finished at %s", name, st.State.Terminated.StartedAt, init.State.Terminated.FinishedAt)
			}
		}
		out, err := n.kubectl(t, "logs", "config", "-c", "env")
		if err != nil || !strings.Contains(out, "GREETING=hi from a configmap\n") || !strings.Contains(out, "PASSWORD=s3cret-e2e\n") {
			t.Errorf("env of the container = %q, %v: want GREETING from the ConfigMap and PASSWORD from the Secret", out, err)
		}
		// The file written by the init container proves it ran first.
		out, err = n.kubectl(t, "logs", "config", "-c", "cat")
		if err != nil || out != "mode=e2e\nwritten by init\n" {
			t.Errorf("files seen by the container = %q, %v: want the ConfigMap's app.conf and the init container's file", out, err)
		}
		out, err = n.kubectl(t, "logs", "config", "-c", "init")
		if err != nil || out != "" {
			t.Errorf("kubectl logs -c init = %q, %v: want it empty", out, err)
		}
	})

	t.Run("MemoryLimitOOMKilled", func(t *testing.T) {
		p := hist.wait(t, "oom", "terminated", e2eWait, func(p *corev1.Pod) bool {
			st := containerStatus(p, "oom")
			return st != nil && st.State.Terminated != nil
		})
		term := containerStatus(p, "oom").State.Terminated
		if term.Reason != "OOMKilled" || term.ExitCode != 137 {
			t.Errorf("terminated %+v, want OOMKilled with exit code 137", term)
		}
		hist.wait(t, "oom", "Failed", e2eWait, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	})

	t.Run("MissingImage", func(t *testing.T) {
		p := hist.wait(t, "missing", "ErrImagePull", e2eWait, func(p *corev1.Pod) bool {
			st := containerStatus(p, "app")
			return st != nil && st.State.Waiting != nil && st.State.Waiting.Reason == "ErrImagePull"
		})
		msg := containerStatus(p, "app").State.Waiting.Message
		if !strings.Contains(msg, missingRef) || !strings.Contains(msg, "no such image") {
			t.Errorf("ErrImagePull message %q: want the image and that the registry has no such image", msg)
		}
		p = hist.wait(t, "missing", "ImagePullBackOff", e2eWait, func(p *corev1.Pod) bool {
			st := containerStatus(p, "app")
			return st != nil && st.State.Waiting != nil && st.State.Waiting.Reason == "ImagePullBackOff"
		})
		if msg := containerStatus(p, "app").State.Waiting.Message; !strings.Contains(msg, missingRef) {
			t.Errorf("ImagePullBackOff message %q does not name the image", msg)
		}
		// While it backs off, which is most of the time, the status still
		// says why, as the kubelet's has since 1.30: `Back-off pulling
		// image "x": ErrImagePull: <the pull's error>`.
		t.Run("BackOffSaysWhy", func(t *testing.T) {
			if msg := containerStatus(p, "app").State.Waiting.Message; !strings.Contains(msg, "ErrImagePull") || !strings.Contains(msg, "no such image") {
				t.Errorf("ImagePullBackOff message %q does not say why the pull failed", msg)
			}
		})
		if p.Status.Phase != corev1.PodPending {
			t.Errorf("phase %s, want Pending", p.Status.Phase)
		}
		out, err := n.kubectl(t, "get", "pod", "missing")
		if err != nil || !strings.Contains(out, "ImagePullBackOff") && !strings.Contains(out, "ErrImagePull") {
			t.Errorf("kubectl get pod missing = %q, %v", out, err)
		}
	})

	// Last: it deletes the web pod.
	t.Run("GracefulDeleteFollowedLogs", func(t *testing.T) {
		p := hist.wait(t, "web", "Ready", e2eWait, podReady)
		lines, wait := n.followLogs(t, "web")
		if _, err := httpGetBody("http://" + p.Status.PodIP + ":8080/while-following"); err != nil {
			t.Fatal(err)
		}
		lines.waitFor(t, "GET /while-following from")

		start := time.Now()
		if err := cs.CoreV1().Pods(ns).Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: new(int64(30))}); err != nil {
			t.Fatal(err)
		}
		lines.waitFor(t, "shutting down")
		if err := wait(); err != nil {
			t.Errorf("kubectl logs -f did not end cleanly when the container exited: %v", err)
		}
		hist.wait(t, "web", "deleted", e2eWait, func(p *corev1.Pod) bool { return p.Annotations["test/deleted"] == "true" })
		// SIGTERM, not the SIGKILL at the end of the 30 s grace period,
		// ended it.
		if took := time.Since(start); took > 15*time.Second {
			t.Errorf("deleting took %s: the container did not stop on SIGTERM", took)
		}
	})
}

// logLines collects the lines of a `kubectl logs -f`.
type logLines struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

func (l *logLines) waitFor(t testing.TB, text string) {
	t.Helper()
	deadline := time.After(e2eWait)
	for {
		l.mu.Lock()
		changed := l.changed
		for _, line := range l.lines {
			if strings.Contains(line, text) {
				l.mu.Unlock()
				return
			}
		}
		got := strings.Join(l.lines, "\n")
		l.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("kubectl logs -f: no line with %q in:\n%s", text, got)
		}
	}
}

// followLogs starts `kubectl logs -f pod`; wait waits for it to end.
func (n *e2eNode) followLogs(t testing.TB, pod string) (*logLines, func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), e2eWait)
	cmd := exec.CommandContext(ctx, testenv.Kubectl(t), "--kubeconfig", n.kubeconfig, "logs", "-f", pod)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	cmd.Stderr = t.Output()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &logLines{changed: make(chan struct{})}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	var once sync.Once
	var waitErr error
	wait := func() error {
		once.Do(func() {
			<-readDone
			waitErr = cmd.Wait()
			cancel()
		})
		return waitErr
	}
	t.Cleanup(func() { cancel(); _ = wait() })
	return l, wait
}

var e2eHTTP = &http.Client{Timeout: 5 * time.Second}

func httpGetBody(url string) (string, error) {
	resp, err := e2eHTTP.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}
