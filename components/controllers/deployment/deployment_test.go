package deployment_test

// Tests of the Deployment controller against a real etcd and API server
// (testenv), with the real ReplicaSet controller making the pods and
// testenv's stand-in scheduler and kubelet running them, and the real
// kubectl judging `rollout status`.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"kiln.dev/kiln/components/controllers/deployment"
	"kiln.dev/kiln/components/controllers/replicaset"
	"kiln.dev/kiln/components/testenv"
)

const (
	ns = "default"
	// waitLimit bounds every wait.
	waitLimit = 30 * time.Second
	// brokenImage never becomes Ready under the stand-in kubelet.
	brokenImage = "nginx:broken"
)

// eventually polls cond until it holds, failing the test after waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startEnv runs a control plane, the stand-in kubelet (pods of
// brokenImage never get Ready), and the ReplicaSet and Deployment
// controllers on one informer factory, all stopped at cleanup.
func startEnv(t *testing.T) *testenv.Env {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	testenv.StandInKubelet(t, env, testenv.StandInOptions{
		Ready: func(p *corev1.Pod) bool {
			for _, c := range p.Spec.Containers {
				if c.Image == brokenImage {
					return false
				}
			}
			return true
		},
	})
	log := testLogger(t)
	f := informers.NewSharedInformerFactory(env.Clientset, 0)
	rsc, err := replicaset.New(replicaset.Config{Client: env.Clientset, Informers: f, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := deployment.New(deployment.Config{Client: env.Clientset, Informers: f, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	f.Start(ctx.Done())
	errs := make(chan error, 2)
	go func() { errs <- rsc.Run(ctx) }()
	go func() { errs <- dc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			select {
			case err := <-errs:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitLimit):
				t.Errorf("Run did not return within %v of cancel", waitLimit)
			}
		}
		f.Shutdown()
	})
	return env
}

func newDeployment(name string, replicas int32, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}},
			},
		},
	}
}

func rollingUpdate(surge, unavailable int32) appsv1.DeploymentStrategy {
	return appsv1.DeploymentStrategy{
		Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxSurge: new(intstr.FromInt32(surge)), MaxUnavailable: new(intstr.FromInt32(unavailable)),
		},
	}
}

func create(t *testing.T, cs kubernetes.Interface, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	out, err := cs.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// update changes the Deployment as a user would: read, mutate, write,
// again on a conflict with the controller.
func update(t *testing.T, cs kubernetes.Interface, name string, mutate func(*appsv1.Deployment)) *appsv1.Deployment {
	t.Helper()
	var out *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(d)
		out, err = cs.AppsV1().Deployments(ns).Update(t.Context(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func setImage(image string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = image }
}

func get(t *testing.T, cs kubernetes.Interface, name string) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func condition(d *appsv1.Deployment, ct appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == ct {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

// rolledOut is kubectl's rollout status test (KUBE-API-CONTRACT §7) plus
// the controller's own verdict, Progressing=NewReplicaSetAvailable.
func rolledOut(d *appsv1.Deployment) bool {
	st, n := d.Status, *d.Spec.Replicas
	c := condition(d, appsv1.DeploymentProgressing)
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == n && st.Replicas == n &&
		st.AvailableReplicas >= n && c != nil && c.Reason == deployment.ReasonNewReplicaSetAvailable
}

func waitRolledOut(t *testing.T, cs kubernetes.Interface, name string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	eventually(t, "deployment "+name+" rolled out", func() bool {
		d = get(t, cs, name)
		return rolledOut(d)
	})
	return d
}

// replicaSets lists the ReplicaSets d controls, by name.
func replicaSets(t *testing.T, cs kubernetes.Interface, d *appsv1.Deployment) map[string]*appsv1.ReplicaSet {
	t.Helper()
	list, err := cs.AppsV1().ReplicaSets(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*appsv1.ReplicaSet{}
	for i := range list.Items {
		rs := &list.Items[i]
		if ref := metav1.GetControllerOf(rs); ref != nil && ref.UID == d.UID {
			out[rs.Name] = rs
		}
	}
	return out
}

// currentRS is the ReplicaSet whose revision is the Deployment's.
func currentRS(t *testing.T, cs kubernetes.Interface, d *appsv1.Deployment) *appsv1.ReplicaSet {
	t.Helper()
	for _, rs := range replicaSets(t, cs, d) {
		if rs.Annotations[deployment.AnnotationRevision] == d.Annotations[deployment.AnnotationRevision] {
			return rs
		}
	}
	t.Fatalf("no ReplicaSet of revision %q", d.Annotations[deployment.AnnotationRevision])
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// rolloutStatus runs the real `kubectl rollout status` against env, with
// a HOME of its own so that no discovery cache is shared.
func rolloutStatus(t *testing.T, env *testenv.Env, name string) (string, error) {
	t.Helper()
	kubectl := testenv.Kubectl(t)
	cmd := exec.CommandContext(t.Context(), kubectl, "--kubeconfig", env.Kubeconfig, "-n", ns,
		"rollout", "status", "deployment/"+name, "--timeout=60s")
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// podWatch follows the pods of a namespace from a list onward and hands
// each state, after every event, to observe.
type podWatch struct {
	mu      sync.Mutex
	pods    map[string]*corev1.Pod
	closed  bool // the watch ended before stop
	events  int
	stopped chan struct{}
	w       watch.Interface
}

func watchPods(t *testing.T, cs kubernetes.Interface, observe func(pods map[string]*corev1.Pod)) *podWatch {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Pods(ns).Watch(t.Context(), metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	pw := &podWatch{pods: map[string]*corev1.Pod{}, stopped: make(chan struct{}), w: w}
	for i := range list.Items {
		pw.pods[list.Items[i].Name] = &list.Items[i]
	}
	observe(pw.pods)
	go func() {
		defer close(pw.stopped)
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			pw.mu.Lock()
			pw.events++
			if ev.Type == watch.Deleted {
				delete(pw.pods, pod.Name)
			} else {
				pw.pods[pod.Name] = pod
			}
			observe(pw.pods)
			pw.mu.Unlock()
		}
		pw.mu.Lock()
		pw.closed = true
		pw.mu.Unlock()
	}()
	t.Cleanup(w.Stop)
	return pw
}

// stop ends the watch and reports whether it had ended on its own.
func (pw *podWatch) stop(t *testing.T) {
	t.Helper()
	pw.mu.Lock()
	closedEarly := pw.closed
	pw.mu.Unlock()
	pw.w.Stop()
	<-pw.stopped
	if closedEarly {
		t.Fatal("the pod watch ended before the test stopped it: events were missed")
	}
}

func TestController_Run_createRollsOut(t *testing.T) {
	t.Parallel()
	env := startEnv(t)
	cs := env.Clientset
	d := create(t, cs, newDeployment("web", 3, "nginx:1"))

	d = waitRolledOut(t, cs, "web")
	rss := replicaSets(t, cs, d)
	if len(rss) != 1 {
		t.Fatalf("ReplicaSets %v, want one", rss)
	}
	for _, rs := range rss {
		hash := rs.Labels[deployment.LabelPodTemplateHash]
		if hash == "" || rs.Name != "web-"+hash {
			t.Errorf("ReplicaSet %s with labels %v: want web-<pod-template-hash>", rs.Name, rs.Labels)
		}
		if rs.Spec.Selector.MatchLabels[deployment.LabelPodTemplateHash] != hash || rs.Spec.Template.Labels[deployment.LabelPodTemplateHash] != hash {
			t.Errorf("hash %q missing from selector %v or template labels %v", hash, rs.Spec.Selector, rs.Spec.Template.Labels)
		}
		want := map[string]string{deployment.AnnotationRevision: "1", deployment.AnnotationDesiredReplicas: "3", deployment.AnnotationMaxReplicas: "4"}
		for k, v := range want {
			if rs.Annotations[k] != v {
				t.Errorf("ReplicaSet annotation %s = %q, want %q", k, rs.Annotations[k], v)
			}
		}
		if *rs.Spec.Replicas != 3 || !metav1.IsControlledBy(rs, d) {
			t.Errorf("ReplicaSet replicas %d, owners %v", *rs.Spec.Replicas, rs.OwnerReferences)
		}
	}
	if got := d.Annotations[deployment.AnnotationRevision]; got != "1" {
		t.Errorf("Deployment revision %q, want 1", got)
	}

	pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for i := range pods.Items {
		if podReady(&pods.Items[i]) {
			ready++
		}
	}
	if len(pods.Items) != 3 || ready != 3 {
		t.Errorf("%d pods, %d ready; want 3 ready", len(pods.Items), ready)
	}

	st := d.Status
	if st.ObservedGeneration != d.Generation || st.Replicas != 3 || st.UpdatedReplicas != 3 || st.ReadyReplicas != 3 ||
		st.AvailableReplicas != 3 || st.UnavailableReplicas != 0 {
		t.Errorf("status %+v", st)
	}
	if c := condition(d, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionTrue || c.Reason != deployment.ReasonMinimumReplicasAvailable {
		t.Errorf("Available condition %+v", c)
	}
	if c := condition(d, appsv1.DeploymentProgressing); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("Progressing condition %+v", c)
	}

	out, err := rolloutStatus(t, env, "web")
	if err != nil {
		t.Fatalf("kubectl rollout status: %v\n%s", err, out)
	}
	if !strings.Contains(out, `deployment "web" successfully rolled out`) {
		t.Errorf("kubectl rollout status said %q", out)
	}
}

func TestController_Run_rollingUpdateMaxSurgeOne(t *testing.T) {
	t.Parallel()
	env := startEnv(t)
	cs := env.Clientset
	const replicas = 3
	d := newDeployment("web", replicas, "nginx:1")
	d.Spec.Strategy = rollingUpdate(1, 0)
	create(t, cs, d)
	d = waitRolledOut(t, cs, "web")
	oldRS := currentRS(t, cs, d)

	// Pods are counted as kube's ReplicaSets count them: a pod whose
	// deletion has started is no longer a replica (nor Ready).
	var mu sync.Mutex
	minReady, maxPods, newSeen := 1<<30, 0, 0
	pw := watchPods(t, cs, func(pods map[string]*corev1.Pod) {
		ready, live := 0, 0
		for _, p := range pods {
			if p.DeletionTimestamp != nil {
				continue
			}
			live++
			if podReady(p) {
				ready++
			}
			if p.Labels[deployment.LabelPodTemplateHash] != oldRS.Labels[deployment.LabelPodTemplateHash] {
				newSeen++
			}
		}
		mu.Lock()
		defer mu.Unlock()
		minReady, maxPods = min(minReady, ready), max(maxPods, live)
	})

	d = update(t, cs, "web", setImage("nginx:2"))
	d = waitRolledOut(t, cs, "web")
	newRS := currentRS(t, cs, d)
	eventually(t, "old ReplicaSet drained", func() bool {
		rs, err := cs.AppsV1().ReplicaSets(ns).Get(t.Context(), oldRS.Name, metav1.GetOptions{})
		return err == nil && *rs.Spec.Replicas == 0 && rs.Status.Replicas == 0
	})
	pw.stop(t)

	if newRS.Name == oldRS.Name || newRS.Annotations[deployment.AnnotationRevision] != "2" || *newRS.Spec.Replicas != replicas {
		t.Errorf("new ReplicaSet %s revision %q replicas %d; want a new one, revision 2, %d replicas",
			newRS.Name, newRS.Annotations[deployment.AnnotationRevision], *newRS.Spec.Replicas, replicas)
	}
	if got := d.Annotations[deployment.AnnotationRevision]; got != "2" {
		t.Errorf("Deployment revision %q, want 2", got)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d pod events: min ready %d, max pods %d", pw.events, minReady, maxPods)
	if newSeen == 0 {
		t.Fatal("the watch never saw a new pod")
	}
	if minReady < replicas {
		t.Errorf("ready pods fell to %d during the rollout; maxUnavailable 0 allows none below %d", minReady, replicas)
	}
	if maxPods > replicas+1 {
		t.Errorf("%d pods ran at once; maxSurge 1 allows %d", maxPods, replicas+1)
	}
	if out, err := rolloutStatus(t, env, "web"); err != nil {
		t.Errorf("kubectl rollout status: %v\n%s", err, out)
	}
}

func TestController_Run_recreateStopsOldPodsFirst(t *testing.T) {
	t.Parallel()
	env := startEnv(t)
	cs := env.Clientset
	d := newDeployment("web", 2, "nginx:1")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	create(t, cs, d)
	d = waitRolledOut(t, cs, "web")
	oldHash := currentRS(t, cs, d).Labels[deployment.LabelPodTemplateHash]

	// Old pods count until they are gone from the API, terminating or not.
	var mu sync.Mutex
	var overlap []string
	newSeen := false
	pw := watchPods(t, cs, func(pods map[string]*corev1.Pod) {
		var olds, news []string
		for name, p := range pods {
			if p.Labels[deployment.LabelPodTemplateHash] == oldHash {
				olds = append(olds, name)
			} else {
				news = append(news, name)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		newSeen = newSeen || len(news) > 0
		if len(olds) > 0 && len(news) > 0 && overlap == nil {
			overlap = append(olds, news...)
		}
	})

	update(t, cs, "web", setImage("nginx:2"))
	d = waitRolledOut(t, cs, "web")
	pw.stop(t)

	if got := d.Annotations[deployment.AnnotationRevision]; got != "2" {
		t.Errorf("Deployment revision %q, want 2", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !newSeen {
		t.Fatal("the watch never saw a new pod")
	}
	if overlap != nil {
		t.Errorf("old and new pods existed together: %v", overlap)
	}
}

func TestController_Run_rollbackReusesReplicaSet(t *testing.T) {
	t.Parallel()
	env := startEnv(t)
	cs := env.Clientset
	create(t, cs, newDeployment("web", 3, "nginx:1"))
	d := waitRolledOut(t, cs, "web")
	rev1 := currentRS(t, cs, d)

	update(t, cs, "web", setImage("nginx:2"))
	d = waitRolledOut(t, cs, "web")
	rev2 := currentRS(t, cs, d)
	if rev2.Name == rev1.Name || rev2.Annotations[deployment.AnnotationRevision] != "2" {
		t.Fatalf("second rollout: ReplicaSet %s revision %q", rev2.Name, rev2.Annotations[deployment.AnnotationRevision])
	}

	// A git revert: the earlier template, applied again.
	update(t, cs, "web", func(d *appsv1.Deployment) {
		d.Spec.Template = *rev1.Spec.Template.DeepCopy()
		delete(d.Spec.Template.Labels, deployment.LabelPodTemplateHash)
	})
	d = waitRolledOut(t, cs, "web")
	rss := replicaSets(t, cs, d)
	if len(rss) != 2 {
		t.Errorf("ReplicaSets %v, want the two of before", keys(rss))
	}
	back := rss[rev1.Name]
	if back == nil {
		t.Fatalf("ReplicaSet %s is gone", rev1.Name)
	}
	if *back.Spec.Replicas != 3 || back.Annotations[deployment.AnnotationRevision] != "3" || back.Annotations[deployment.AnnotationRevisionHistory] != "1" {
		t.Errorf("rolled-back ReplicaSet: replicas %d annotations %v; want 3 replicas, revision 3, history 1", *back.Spec.Replicas, back.Annotations)
	}
	if got := d.Annotations[deployment.AnnotationRevision]; got != "3" {
		t.Errorf("Deployment revision %q, want 3", got)
	}
	eventually(t, "revision 2 drained", func() bool {
		rs, err := cs.AppsV1().ReplicaSets(ns).Get(t.Context(), rev2.Name, metav1.GetOptions{})
		return err == nil && *rs.Spec.Replicas == 0
	})
}

func keys(m map[string]*appsv1.ReplicaSet) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestController_Run_pausedHoldsRollout(t *testing.T) {
	t.Parallel()
	env := startEnv(t)
	cs := env.Clientset
	create(t, cs, newDeployment("web", 3, "nginx:1"))
	d := waitRolledOut(t, cs, "web")

	update(t, cs, "web", func(d *appsv1.Deployment) { d.Spec.Paused = true })
	d = update(t, cs, "web", setImage("nginx:2"))
	// Once the controller has observed the new template, a running
	// rollout would already have made its ReplicaSet.
	eventually(t, "paused template change observed", func() bool {
		d = get(t, cs, "web")
		c := condition(d, appsv1.DeploymentProgressing)
		return d.Status.ObservedGeneration >= d.Generation && c != nil && c.Reason == deployment.ReasonDeploymentPaused
	})
	if rss := replicaSets(t, cs, d); len(rss) != 1 {
		t.Fatalf("paused: ReplicaSets %v, want still one", keys(rss))
	}
	// Scaling still works while paused.
	update(t, cs, "web", func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32(4)) })
	eventually(t, "paused deployment scaled to 4", func() bool {
		d = get(t, cs, "web")
		return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == 4
	})
	if rss := replicaSets(t, cs, d); len(rss) != 1 {
		t.Fatalf("paused: ReplicaSets %v, want still one", keys(rss))
	}

	update(t, cs, "web", func(d *appsv1.Deployment) { d.Spec.Paused = false })
	d = waitRolledOut(t, cs, "web")
	if rss := replicaSets(t, cs, d); len(rss) != 2 {
		t.Errorf("resumed: ReplicaSets %v, want two", keys(rss))
	}
	if rs := currentRS(t, cs, d); rs.Spec.Template.Spec.Containers[0].Image != "nginx:2" || *rs.Spec.Replicas != 4 ||
		d.Annotations[deployment.AnnotationRevision] != "2" {
		t.Errorf("resumed: ReplicaSet %s image %s replicas %d, revision %q", rs.Name, rs.Spec.Template.Spec.Containers[0].Image,
			*rs.Spec.Replicas, d.Annotations[deployment.AnnotationRevision])
	}
}

func TestController_Run_progressDeadlineExceeded(t *testing.T) {
	t.Parallel()
	env := startEnv(t)
	cs := env.Clientset
	d := newDeployment("web", 2, "nginx:1")
	d.Spec.ProgressDeadlineSeconds = new(int32(3))
	create(t, cs, d)
	waitRolledOut(t, cs, "web")

	update(t, cs, "web", setImage(brokenImage))
	eventually(t, "ProgressDeadlineExceeded", func() bool {
		d = get(t, cs, "web")
		c := condition(d, appsv1.DeploymentProgressing)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == deployment.ReasonProgressDeadlineExceeded
	})
	if d.Status.AvailableReplicas != 2 {
		t.Errorf("available %d while stuck; the old pods should still serve", d.Status.AvailableReplicas)
	}
	out, err := rolloutStatus(t, env, "web")
	if err == nil {
		t.Fatalf("kubectl rollout status succeeded on a stuck rollout:\n%s", out)
	}
	if !strings.Contains(out, "exceeded its progress deadline") {
		t.Errorf("kubectl rollout status said %q", out)
	}
}

func TestController_Run_revisionHistoryLimit(t *testing.T) {
	t.Parallel()
	env := startEnv(t)
	cs := env.Clientset
	d := newDeployment("web", 2, "nginx:1")
	d.Spec.RevisionHistoryLimit = new(int32(1))
	create(t, cs, d)
	d = waitRolledOut(t, cs, "web")
	first := currentRS(t, cs, d)
	for _, image := range []string{"nginx:2", "nginx:3"} {
		update(t, cs, "web", setImage(image))
		d = waitRolledOut(t, cs, "web")
	}
	// The current ReplicaSet plus one of history; revision 1 is pruned.
	eventually(t, "history pruned to one old ReplicaSet", func() bool {
		rss := replicaSets(t, cs, d)
		return len(rss) == 2 && rss[first.Name] == nil
	})
	if got := d.Annotations[deployment.AnnotationRevision]; got != "3" {
		t.Errorf("Deployment revision %q, want 3", got)
	}
}

func TestNew_validates(t *testing.T) {
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	f := informers.NewSharedInformerFactory(cs, 0)
	for _, tc := range []struct {
		name string
		cfg  deployment.Config
		want string
	}{
		{"no client", deployment.Config{Informers: f}, "Client"},
		{"no informers", deployment.Config{Client: cs}, "Informers"},
		{"negative workers", deployment.Config{Client: cs, Informers: f, Workers: -1}, "Workers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := deployment.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestController_Run_twice(t *testing.T) {
	// No server: the informers are never started, so Run waits for the
	// caches until ctx is done.
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := deployment.New(deployment.Config{Client: cs, Informers: informers.NewSharedInformerFactory(cs, 0), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	runs := make(chan error, 2)
	for range 2 {
		go func() { runs <- c.Run(ctx) }()
	}
	// Whichever call came second returns at once.
	select {
	case err := <-runs:
		if !errors.Is(err, deployment.ErrRunTwice) {
			t.Errorf("second Run: %v, want ErrRunTwice", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("neither Run call returned")
	}
	cancel()
	if err := <-runs; err != nil {
		t.Errorf("first Run after cancel: %v, want nil", err)
	}
}
