package controllers_test

// End to end on hollow nodes: the manager runs the ReplicaSet,
// Deployment and node lifecycle controllers and the scheduler, as kiln
// server wires them, against a real API server and etcd, with real
// kubelets on the simulated runtime (testenv/hollow) running the Pods,
// and the real kubectl reading the result.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/controllers"
	"kiln.dev/kiln/components/controllers/deployment"
	"kiln.dev/kiln/components/controllers/nodelifecycle"
	"kiln.dev/kiln/components/controllers/replicaset"
	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/scheduler"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/components/testenv/hollow"
)

const (
	e2eNS = "default"
	// e2eWait bounds every wait of the end-to-end tests.
	e2eWait = 60 * time.Second
	// e2eGrace is the node lifecycle grace period: the hollow kubelets
	// renew their Lease every 250 ms.
	e2eGrace = 2 * time.Second
	// e2eToleration is how long the Pods tolerate an unreachable Node.
	e2eToleration = 2
)

// waitFor polls cond until it holds and returns when it first did.
func waitFor(t *testing.T, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", e2eWait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Now()
}

// startManager runs a controller manager with the controllers the test
// needs and the scheduler, each client with the rate limits kiln server
// gives it, until the test ends.
func startManager(t *testing.T, env *testenv.Env) {
	t.Helper()
	// kiln server's adminRESTConfig: QPS 200, burst 400.
	rc := rest.CopyConfig(env.RESTConfig)
	rc.QPS, rc.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	src := rest.CopyConfig(env.RESTConfig)
	src.QPS, src.Burst = 5000, 10000
	scs, err := kubernetes.NewForConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := controllers.New(controllers.Config{
		Client: cs,
		Logger: log,
		Controllers: map[string]controllers.Builder{
			"replicaset": func(s controllers.Shared) (controllers.Runnable, error) {
				return replicaset.New(replicaset.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
			},
			"deployment": func(s controllers.Shared) (controllers.Runnable, error) {
				return deployment.New(deployment.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
			},
			"nodelifecycle": func(s controllers.Shared) (controllers.Runnable, error) {
				return nodelifecycle.New(nodelifecycle.Config{Client: s.Client, Informers: s.Informers, Events: s.Events,
					GracePeriod: e2eGrace, MonitorPeriod: 200 * time.Millisecond, Logger: s.Logger})
			},
			"scheduler": func(s controllers.Shared) (controllers.Runnable, error) {
				return scheduler.New(scheduler.Config{Client: scs, Informers: s.Informers, Logger: s.Logger})
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(e2eWait):
			t.Errorf("manager did not return within %v", e2eWait)
		}
	})
	select {
	case <-m.Leading():
	case err := <-done:
		t.Fatalf("manager stopped: %v", err)
	case <-time.After(e2eWait):
		t.Fatal("manager never led")
	}
}

// kubectl runs the real kubectl against env, with a HOME of its own so
// that no discovery cache is shared, and returns its combined output.
func kubectl(t *testing.T, env *testenv.Env, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), testenv.Kubectl(t), append([]string{"--kubeconfig", env.Kubeconfig, "-n", e2eNS}, args...)...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// describeShows runs kubectl describe until its output matches every
// pattern (Events are written asynchronously) and returns the output.
func describeShows(t *testing.T, env *testenv.Env, what string, patterns ...string) string {
	t.Helper()
	var out string
	var missing []string
	deadline := time.Now().Add(e2eWait)
	for {
		var err error
		out, err = kubectl(t, env, "describe", what)
		if err != nil {
			t.Fatalf("kubectl describe %s: %v\n%s", what, err, out)
		}
		missing = missing[:0]
		for _, p := range patterns {
			if !regexp.MustCompile(p).MatchString(out) {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl describe %s lacks %q:\n%s", what, missing, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func webDeployment(replicas int32) *appsv1.Deployment {
	tol := int64(e2eToleration)
	sel := map[string]string{"app": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e2eNS},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "web", Image: "registry.k8s.io/pause:3.10"}},
					// Leave an unreachable Node after 2 s, not the
					// API's default 300 s.
					Tolerations: []corev1.Toleration{
						{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &tol},
						{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &tol},
					},
				},
			},
		},
	}
}

// webPods lists the Deployment's Pods: live (not terminating) and
// terminating.
func webPods(t *testing.T, cs kubernetes.Interface) (live, terminating []corev1.Pod) {
	t.Helper()
	l, err := cs.CoreV1().Pods(e2eNS).List(t.Context(), metav1.ListOptions{LabelSelector: labels.Set{"app": "web"}.String()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Items {
		if p.DeletionTimestamp != nil {
			terminating = append(terminating, p)
		} else {
			live = append(live, p)
		}
	}
	return live, terminating
}

func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// available waits until the Deployment has rolled out n replicas, all
// available, as kubectl rollout status judges it.
func available(t *testing.T, cs kubernetes.Interface, n int32) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	waitFor(t, fmt.Sprintf("web with %d available replicas", n), func() bool {
		var err error
		if d, err = cs.AppsV1().Deployments(e2eNS).Get(t.Context(), "web", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		s := d.Status
		return s.ObservedGeneration == d.Generation && s.UpdatedReplicas == n && s.AvailableReplicas == n && s.Replicas == n
	})
	return d
}

func nodeOf(t *testing.T, cs kubernetes.Interface, name string) *corev1.Node {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func hasTaint(n *corev1.Node, key string, effect corev1.TaintEffect) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(ta corev1.Taint) bool { return ta.Key == key && ta.Effect == effect })
}

// TestManager_Run_deploymentSurvivesNodeLoss: a Deployment of 6 replicas
// on 3 hollow nodes rolls out (kubectl rollout status), with the Events
// kubectl describe shows in Kubernetes; one node's kubelet dies, the node
// goes Unknown and tainted, its Pods are evicted after their 2 s
// toleration and replaced on the other nodes; the kubelet comes back, the
// node is Ready and untainted again and new Pods go there.
func TestManager_Run_deploymentSurvivesNodeLoss(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	testenv.Kubectl(t)
	cs := env.Clientset
	nodes := hollow.Start(t, env, hollow.Options{Nodes: 3, Kubelet: func(c *kubelet.Config) {
		c.LeaseDuration = time.Second // renewed every 250 ms
		c.StatusPeriod = 500 * time.Millisecond
		c.RelistPeriod = 100 * time.Millisecond
	}})
	startManager(t, env)

	// 1. Roll out 6 replicas; the real kubectl waits for it.
	if _, err := cs.AppsV1().Deployments(e2eNS).Create(t.Context(), webDeployment(6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := kubectl(t, env, "rollout", "status", "deployment/web", "--timeout=60s")
	if err != nil || !strings.Contains(out, `deployment "web" successfully rolled out`) {
		t.Fatalf("kubectl rollout status: %v\n%s", err, out)
	}
	available(t, cs, 6)
	live, _ := webPods(t, cs)
	perNode := map[string][]string{}
	for _, p := range live {
		if !podIsReady(&p) || p.Status.PodIP == "" {
			t.Errorf("pod %s on %s: ready %v, IP %q", p.Name, p.Spec.NodeName, podIsReady(&p), p.Status.PodIP)
		}
		perNode[p.Spec.NodeName] = append(perNode[p.Spec.NodeName], p.Name)
	}
	t.Logf("pods per node: %v", perNode)

	// 2. The Events, as kubectl describe shows them in Kubernetes.
	rsList, err := cs.AppsV1().ReplicaSets(e2eNS).List(t.Context(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(rsList.Items) != 1 {
		t.Fatalf("replicasets: %v, %d", err, len(rsList.Items))
	}
	rsName := rsList.Items[0].Name
	out = describeShows(t, env, "deployment/web",
		`Normal\s+ScalingReplicaSet\s+.*deployment-controller\s+Scaled up replica set `+regexp.QuoteMeta(rsName)+` from 0 to 6`)
	t.Logf("kubectl describe deployment/web:\n%s", out)
	var created []string
	for _, p := range live {
		created = append(created, `Normal\s+SuccessfulCreate\s+.*replicaset-controller\s+Created pod: `+regexp.QuoteMeta(p.Name))
	}
	out = describeShows(t, env, "rs/"+rsName, created...)
	t.Logf("kubectl describe rs/%s:\n%s", rsName, out)

	// 3. The kubelet of the node with the most Pods dies.
	var victim *hollow.Node
	for _, n := range nodes {
		if victim == nil || len(perNode[n.Name]) > len(perNode[victim.Name]) {
			victim = n
		}
	}
	lost := perNode[victim.Name]
	victim.Stop()
	stopped := time.Now()
	tainted := waitFor(t, victim.Name+" Unknown and tainted unreachable", func() bool {
		n := nodeOf(t, cs, victim.Name)
		return readyStatus(n) == corev1.ConditionUnknown &&
			hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) && hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule)
	})
	t.Logf("%s Unknown and tainted %v after its kubelet stopped", victim.Name, tainted.Sub(stopped).Round(time.Millisecond))
	if d := tainted.Sub(stopped); d < e2eGrace-250*time.Millisecond {
		t.Errorf("%s tainted %v after its kubelet stopped, before the %v grace period", victim.Name, d, e2eGrace)
	}

	// Its Pods are evicted once their toleration ran out, and replaced
	// on the other nodes.
	evicted := waitFor(t, "the lost pods evicted", func() bool {
		_, terminating := webPods(t, cs)
		n := 0
		for _, p := range terminating {
			if slices.Contains(lost, p.Name) {
				n++
			}
		}
		return n == len(lost)
	})
	t.Logf("pods evicted %v after the taint", evicted.Sub(tainted).Round(time.Millisecond))
	// The taint's timeAdded is stored to the second and rounded up, so
	// eviction comes 2-3 s after it; polling sees the taint late by up
	// to a poll and a write.
	if d := evicted.Sub(tainted); d < e2eToleration*time.Second-500*time.Millisecond {
		t.Errorf("pods evicted %v after the taint, before their %ds toleration", d, e2eToleration)
	}
	available(t, cs, 6)
	live, _ = webPods(t, cs)
	for _, p := range live {
		if p.Spec.NodeName == victim.Name || !podIsReady(&p) {
			t.Errorf("pod %s on %s ready %v after the node loss, want ready on another node", p.Name, p.Spec.NodeName, podIsReady(&p))
		}
	}
	describeShows(t, env, "node/"+victim.Name,
		`Normal\s+NodeNotReady\s+.*node-controller\s+Node `+victim.Name+` status is now: NodeNotReady`)
	out = describeShows(t, env, "pod/"+lost[0],
		`Warning\s+NodeNotReady\s+.*node-controller\s+Node is not ready`,
		`Normal\s+TaintManagerEviction\s+.*taint-eviction-controller\s+Marking for deletion Pod `+e2eNS+`/`+lost[0])
	t.Logf("kubectl describe pod/%s:\n%s", lost[0], out)

	// 4. The kubelet comes back: Ready, untainted, it finishes the
	// evicted Pods, and new Pods go there.
	victim.Restart()
	waitFor(t, victim.Name+" Ready and untainted", func() bool {
		n := nodeOf(t, cs, victim.Name)
		return readyStatus(n) == corev1.ConditionTrue && len(n.Spec.Taints) == 0
	})
	waitFor(t, "the evicted pods gone", func() bool { _, terminating := webPods(t, cs); return len(terminating) == 0 })
	if _, err := cs.AppsV1().Deployments(e2eNS).Patch(t.Context(), "web", types.MergePatchType,
		[]byte(`{"spec":{"replicas":9}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	available(t, cs, 9)
	live, _ = webPods(t, cs)
	back := 0
	for _, p := range live {
		if p.Spec.NodeName == victim.Name {
			back++
		}
	}
	if back == 0 {
		t.Errorf("no pod on %s after it came back: %v", victim.Name, live)
	}
	t.Logf("%d of 3 new pods on %s after it came back", back, victim.Name)
	describeShows(t, env, "deployment/web",
		`Normal\s+ScalingReplicaSet\s+.*deployment-controller\s+Scaled up replica set `+regexp.QuoteMeta(rsName)+` from 6 to 9`)
}
