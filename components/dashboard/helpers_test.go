package dashboard_test

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/components/dashboard"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
)

// Values the fixture plants. secretCanary must never appear on any
// surface of the dashboard.
const (
	secretCanary   = "canary-6f1d2e9b-never-shown"
	fixtureNS      = "shop"
	fixtureSource  = "shop"
	fixtureHash    = "0123456789abcdef0123456789abcdef01234567"
	fixtureRev     = "main@sha1:" + fixtureHash
	hostileAnnot   = `"><img src=x onerror=alert(1)>`
	hostileCommit  = "<script>alert(3)</script> add the shop"
	hostileFile    = `apps/"><img src=x onerror=alert(2)>.yaml`
	schedulingMsg  = "0/1 nodes are available: 1 Insufficient memory."
	crashMessage   = "back-off 40s restarting failed container=api pod=api-5f6-k8"
	readinessMsg   = "Readiness probe failed: HTTP probe failed with statuscode: 503"
	imageMissing   = `failed to pull and unpack image "registry.example/shop/migrate:9": not found`
	repoWithSecret = "https://deploy:tok3n-in-url@git.example.com/shop.git"
)

// stack is a control plane and a dashboard served over HTTP.
type stack struct {
	env  *testenv.Env
	kube kubernetes.Interface
	dyn  dynamic.Interface
	dash *dashboard.Dashboard
	url  string
}

// startStack starts a control plane and a dashboard on it; mod tunes the
// dashboard's config.
func startStack(t testing.TB, mod func(*dashboard.Config)) *stack {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	return startDashboard(t, env, mod)
}

func startDashboard(t testing.TB, env *testenv.Env, mod func(*dashboard.Config)) *stack {
	t.Helper()
	s := &stack{env: env, kube: env.Clientset, dyn: dynamic.NewForConfigOrDie(env.RESTConfig)}
	cfg := dashboard.Config{Client: s.kube, Dynamic: s.dyn,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if mod != nil {
		mod(&cfg)
	}
	d, err := dashboard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.dash = d
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(func() {
		cancel()
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("dashboard: %v", err)
		}
	})
	s.url = srv.URL
	select {
	case <-d.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("dashboard not ready in 30s")
	}
	return s
}

// get fetches path and returns the status and body.
func (s *stack) get(t testing.TB, path string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// eventually polls fn until it returns "" or 20 s pass; fn says what it
// still waits for.
func eventually(t testing.TB, what string, fn func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		if last = fn(); last == "" {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s: not within 20s: %s", what, last)
}

// fixture is the cluster the handler and browser tests look at: one
// Source "shop" that manages a namespace, three Deployments, a Job, a
// Service, a ConfigMap and a Secret, with a pod stuck in each way the
// "why not ready" chain explains.
type fixture struct {
	inventory []reconcile.InventoryEntry
	source    *unstructured.Unstructured
}

func managedMeta(name, file string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: fixtureNS,
		Labels:      map[string]string{reconcile.LabelSource: fixtureSource, "app": name},
		Annotations: map[string]string{reconcile.AnnotationPath: file, reconcile.AnnotationRevision: fixtureRev}}
}

// must(call())(t) fails t on call's error and returns its value.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func (f *fixture) add(group, kind, name string, uid types.UID) {
	ns := fixtureNS
	if kind == "Namespace" {
		ns = ""
	}
	f.inventory = append(f.inventory, reconcile.InventoryEntry{Group: group, Version: "v1", Kind: kind, Namespace: ns, Name: name, UID: string(uid)})
}

func plantFixture(t testing.TB, s *stack) *fixture {
	t.Helper()
	ctx := t.Context()
	cs := s.kube
	f := &fixture{}
	ns := must(cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fixtureNS,
		Labels: map[string]string{reconcile.LabelSource: fixtureSource}}}, metav1.CreateOptions{}))(t)
	f.add("", "Namespace", ns.Name, ns.UID)

	node := must(cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}, metav1.CreateOptions{}))(t)
	node.Status = corev1.NodeStatus{
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now()}},
		Allocatable:     corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("110")},
		Capacity:        corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("110")},
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.11"}},
		NodeInfo:        corev1.NodeSystemInfo{KubeletVersion: "v1.37.2-kiln"},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
	}
	must(cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}))(t)

	// web: a Deployment whose pod cannot be scheduled.
	web := f.deployment(t, s, "web", "apps/web.yaml", 1, 0)
	webRS := f.replicaSet(t, s, web, "web-7d9")
	f.pod(t, s, webRS, "web-7d9-x2", "", corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("8Gi")}, corev1.PodStatus{
		Phase: corev1.PodPending,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
			Message: schedulingMsg, LastTransitionTime: metav1.Now()}},
	})
	// api: a crash-looping container, exit code 1.
	api := f.deployment(t, s, "api", hostileFile, 1, 0)
	apiRS := f.replicaSet(t, s, api, "api-5f6")
	f.pod(t, s, apiRS, "api-5f6-k8", "node-1", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")}, corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()},
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Now()}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "main", Image: "registry.example/shop/api:1", RestartCount: 4,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: crashMessage}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}},
	})
	// cache: running, its readiness probe failing.
	cache := f.deployment(t, s, "cache", "apps/cache.yaml", 1, 0)
	cacheRS := f.replicaSet(t, s, cache, "cache-66b")
	cachePod := f.pod(t, s, cacheRS, "cache-66b-q1", "node-1", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("1Gi")}, corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()},
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Now()}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "main", Image: "registry.example/shop/cache:1",
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}},
	})
	must(cs.CoreV1().Events(fixtureNS).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "cache-66b-q1.unhealthy", Namespace: fixtureNS},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: fixtureNS, Name: cachePod.Name, UID: cachePod.UID, FieldPath: "spec.containers{main}"},
		Reason:         "Unhealthy", Message: readinessMsg, Type: corev1.EventTypeWarning, Count: 7,
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Source: corev1.EventSource{Component: "kubelet", Host: "node-1"},
	}, metav1.CreateOptions{}))(t)
	// migrate: a Job whose image does not exist.
	job := must(cs.BatchV1().Jobs(fixtureNS).Create(ctx, &batchv1.Job{ObjectMeta: managedMeta("migrate", "apps/migrate.yaml"),
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"job": "migrate"}},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "migrate", Image: "registry.example/shop/migrate:9"}}}}}}, metav1.CreateOptions{}))(t)
	f.add("batch", "Job", job.Name, job.UID)
	jobRef := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID, Controller: ptr.To(true)}
	f.podOwned(t, s, jobRef, "migrate-zz9", "node-1", "registry.example/shop/migrate:9", nil, corev1.PodStatus{
		Phase:      corev1.PodPending,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "migrate", Image: "registry.example/shop/migrate:9",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: imageMissing}}}},
	})

	svc := must(cs.CoreV1().Services(fixtureNS).Create(ctx, &corev1.Service{ObjectMeta: managedMeta("web", "apps/web.yaml"),
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}))(t)
	f.add("", "Service", svc.Name, svc.UID)
	cmMeta := managedMeta("settings", "apps/settings.yaml")
	cmMeta.Annotations["note"] = hostileAnnot
	cm := must(cs.CoreV1().ConfigMaps(fixtureNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: cmMeta,
		Data: map[string]string{"greeting": "<b>hello</b>"}}, metav1.CreateOptions{}))(t)
	f.add("", "ConfigMap", cm.Name, cm.UID)
	secMeta := managedMeta("creds", "apps/creds.yaml")
	secMeta.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = `{"stringData":{"password":"` + secretCanary + `"}}`
	secMeta.Annotations[reconcile.AnnotationLastApplied] = `{"data":{"password":"` + base64.StdEncoding.EncodeToString([]byte(secretCanary)) + `"}}`
	sec := must(cs.CoreV1().Secrets(fixtureNS).Create(ctx, &corev1.Secret{ObjectMeta: secMeta,
		Data: map[string][]byte{"password": []byte(secretCanary)}, StringData: map[string]string{"token": secretCanary}}, metav1.CreateOptions{}))(t)
	f.add("", "Secret", sec.Name, sec.UID)

	now := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	src := &reconcile.Source{
		TypeMeta:   metav1.TypeMeta{APIVersion: reconcile.SourceGVK.GroupVersion().String(), Kind: reconcile.SourceGVK.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: fixtureSource},
		Spec:       reconcile.SourceSpec{Kind: "git", URL: repoWithSecret, Ref: "main", Interval: "1m", Namespace: fixtureNS, Prune: true},
		Status: reconcile.SourceStatus{
			LastAppliedRevision: fixtureRev, LastAttemptedRevision: fixtureRev,
			LastAppliedCommit: &reconcile.Commit{Hash: fixtureHash, Message: hostileCommit + "\n\nlonger body", Author: "Ada Lovelace <ada@example.com>", Time: now},
			Conditions: []metav1.Condition{
				{Type: reconcile.ConditionReady, Status: metav1.ConditionTrue, Reason: "Succeeded", Message: "applied " + fixtureRev, LastTransitionTime: now},
				{Type: reconcile.ConditionHealthy, Status: metav1.ConditionFalse, Reason: "Progressing", Message: "web: 0 of 1 replicas available", LastTransitionTime: now},
			},
			Inventory: f.inventory,
			History: []reconcile.SyncRecord{
				{Revision: fixtureRev, Start: now, DurationMS: 420, Created: 9, Configured: 0, Unchanged: 0},
				{Revision: "main@sha1:fedcba9876543210fedcba9876543210fedcba98", Start: metav1.NewTime(now.Add(-time.Minute)), DurationMS: 35,
					Error: `apps/web.yaml: Deployment web: spec.replicas: Invalid value: -1: must be greater than or equal to 0`, File: hostileFile},
			},
		},
	}
	f.source = createSource(t, s, src)
	return f
}

// createSource creates a Source and writes its status, as the reconciler
// does.
func createSource(t testing.TB, s *stack, src *reconcile.Source) *unstructured.Unstructured {
	t.Helper()
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(src)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	status := u.Object["status"]
	delete(u.Object, "status")
	created := must(s.dyn.Resource(reconcile.SourceGVR).Create(t.Context(), u, metav1.CreateOptions{}))(t)
	created.Object["status"] = status
	return must(s.dyn.Resource(reconcile.SourceGVR).UpdateStatus(t.Context(), created, metav1.UpdateOptions{}))(t)
}

// setSourceStatus rewrites the Source's status with fn.
func setSourceStatus(t testing.TB, s *stack, name string, fn func(*reconcile.SourceStatus)) {
	t.Helper()
	u := must(s.dyn.Resource(reconcile.SourceGVR).Get(t.Context(), name, metav1.GetOptions{}))(t)
	var src reconcile.Source
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &src); err != nil {
		t.Fatal(err)
	}
	fn(&src.Status)
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&src)
	if err != nil {
		t.Fatal(err)
	}
	must(s.dyn.Resource(reconcile.SourceGVR).UpdateStatus(t.Context(), &unstructured.Unstructured{Object: obj}, metav1.UpdateOptions{}))(t)
}

func (f *fixture) deployment(t testing.TB, s *stack, name, file string, replicas, available int32) *appsv1.Deployment {
	t.Helper()
	ctx := t.Context()
	d := must(s.kube.AppsV1().Deployments(fixtureNS).Create(ctx, &appsv1.Deployment{ObjectMeta: managedMeta(name, file),
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "registry.example/shop/" + name + ":1"}}}}}},
		metav1.CreateOptions{}))(t)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas,
		AvailableReplicas: available, ReadyReplicas: available, UnavailableReplicas: replicas - available}
	d = must(s.kube.AppsV1().Deployments(fixtureNS).UpdateStatus(ctx, d, metav1.UpdateOptions{}))(t)
	f.add("apps", "Deployment", d.Name, d.UID)
	return d
}

func (f *fixture) replicaSet(t testing.TB, s *stack, d *appsv1.Deployment, name string) *appsv1.ReplicaSet {
	t.Helper()
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: fixtureNS,
		Labels:          map[string]string{"app": d.Name},
		Annotations:     map[string]string{"deployment.kubernetes.io/revision": "1"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template}}
	return must(s.kube.AppsV1().ReplicaSets(fixtureNS).Create(t.Context(), rs, metav1.CreateOptions{}))(t)
}

func (f *fixture) pod(t testing.TB, s *stack, rs *appsv1.ReplicaSet, name, node string, req corev1.ResourceList, st corev1.PodStatus) *corev1.Pod {
	t.Helper()
	ref := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}
	return f.podOwned(t, s, ref, name, node, rs.Spec.Template.Spec.Containers[0].Image, req, st)
}

func (f *fixture) podOwned(t testing.TB, s *stack, owner metav1.OwnerReference, name, node, image string, req corev1.ResourceList, st corev1.PodStatus) *corev1.Pod {
	t.Helper()
	ctx := t.Context()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: fixtureNS, OwnerReferences: []metav1.OwnerReference{owner},
		Labels: map[string]string{"app": strings.SplitN(name, "-", 2)[0]}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "main", Image: image, Resources: corev1.ResourceRequirements{Requests: req}}}}}
	if owner.Kind == "Job" {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.Containers[0].Name = "migrate"
	}
	p = must(s.kube.CoreV1().Pods(fixtureNS).Create(ctx, p, metav1.CreateOptions{}))(t)
	p.Status = st
	return must(s.kube.CoreV1().Pods(fixtureNS).UpdateStatus(ctx, p, metav1.UpdateOptions{}))(t)
}

// pageContains fails unless body holds every want.
func pageContains(t testing.TB, what, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s: missing %q", what, w)
		}
	}
}

// gatherer is a registry with one metric, standing for the API server's.
func gatherer(t testing.TB) prometheus.Gatherer {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "kiln_test_other_total", Help: "A metric from another registry."})
	reg.MustRegister(c)
	c.Add(3)
	return reg
}
