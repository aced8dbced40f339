package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/components/dashboard"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
)

// The benchmark renders the overview of one Source that manages 1,000
// objects (a namespace, 100 Deployments, 100 Services and 799
// ConfigMaps) over 500 pods on 5 nodes; 10 Deployments crash-loop, so
// the "why not ready" chains are part of every render. It prints the
// p99 of 200 sequential GET / over HTTP and the process's RSS growth from
// before the dashboard started to after the renders.
const (
	benchNS          = "bench"
	benchDeployments = 100
	benchReplicas    = 5
	benchConfigMaps  = 799
	benchNodes       = 5
	benchCrashing    = 10
	benchRenders     = 200
	benchWarmup      = 20
	benchWorkers     = 16
)

func BenchmarkDashboardOverview(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	ctx := b.Context()
	s := &stack{env: env, kube: env.Clientset, dyn: dynamic.NewForConfigOrDie(env.RESTConfig)}
	inventory := plantBench(b, s)
	if len(inventory) != 1000 {
		b.Fatalf("inventory of %d", len(inventory))
	}

	runtime.GC()
	before := vmRSS(b)
	st := startDashboard(b, env, nil)
	// Every informer has the whole cluster once the counts are complete.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ov dashboard.Overview
		_, body := st.get(b, "/api/status")
		if err := json.Unmarshal([]byte(body), &ov); err != nil {
			b.Fatal(err)
		}
		if len(ov.Sources) == 1 && ov.Sources[0].Counts.Healthy == 1000-benchCrashing && ov.Sources[0].Counts.Progressing == benchCrashing &&
			len(ov.Nodes) == benchNodes && ov.Nodes[0].Pods == benchDeployments*benchReplicas/benchNodes {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("overview incomplete after 60s: %+v", ov.Sources)
		}
		time.Sleep(100 * time.Millisecond)
	}

	client := &http.Client{}
	render := func() (time.Duration, error) {
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.url+"/", nil)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || n == 0 {
			return 0, fmt.Errorf("GET /: %d, %d bytes, %v", resp.StatusCode, n, err)
		}
		return time.Since(start), nil
	}
	for range benchWarmup {
		if _, err := render(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	lat := make([]time.Duration, benchRenders)
	for i := range lat {
		d, err := render()
		if err != nil {
			b.Fatal(err)
		}
		lat[i] = d
	}
	b.StopTimer()
	after := vmRSS(b)

	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100-1]
	b.Logf("%d renders of / (1,000 managed objects, %d pods): p50 %v, p99 %v, max %v; RSS %d → %d KiB",
		benchRenders, benchDeployments*benchReplicas, p50, p99, lat[len(lat)-1], before, after)
	fmt.Printf("BENCH dashboard-overview %.2f ms\n", float64(p99)/float64(time.Millisecond))
	fmt.Printf("BENCH dashboard-rss-growth %.1f MiB\n", float64(after-before)/1024)
}

// vmRSS is the process's resident set in KiB.
func vmRSS(b *testing.B) int64 {
	b.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// plantBench creates the benchmark's cluster through the API and the
// Source that manages it, and returns the inventory.
func plantBench(b *testing.B, s *stack) []reconcile.InventoryEntry {
	b.Helper()
	ctx := b.Context()
	cs := s.kube
	managed := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: benchNS, Labels: map[string]string{reconcile.LabelSource: "bench", "app": name},
			Annotations: map[string]string{reconcile.AnnotationPath: "apps/" + name + ".yaml", reconcile.AnnotationRevision: fixtureRev}}
	}
	ns := must(cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNS,
		Labels: map[string]string{reconcile.LabelSource: "bench"}}}, metav1.CreateOptions{}))(b)
	inv := []reconcile.InventoryEntry{{Version: "v1", Kind: "Namespace", Name: ns.Name, UID: string(ns.UID)}}
	for i := range benchNodes {
		n := must(cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i)}}, metav1.CreateOptions{}))(b)
		n.Status = corev1.NodeStatus{
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16"), corev1.ResourceMemory: resource.MustParse("64Gi")},
		}
		must(cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}))(b)
	}

	entries := make([]reconcile.InventoryEntry, benchDeployments*2+benchConfigMaps)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(benchWorkers)
	for i := range benchConfigMaps {
		g.Go(func() error {
			cm, err := cs.CoreV1().ConfigMaps(benchNS).Create(gctx, &corev1.ConfigMap{ObjectMeta: managed(fmt.Sprintf("config-%03d", i)),
				Data: map[string]string{"key": strings.Repeat("v", 200)}}, metav1.CreateOptions{})
			if err == nil {
				entries[2*benchDeployments+i] = reconcile.InventoryEntry{Version: "v1", Kind: "ConfigMap", Namespace: benchNS, Name: cm.Name, UID: string(cm.UID)}
			}
			return err
		})
	}
	for i := range benchDeployments {
		g.Go(func() error {
			e, err := benchWorkload(gctx, s, managed(fmt.Sprintf("app-%03d", i)), i, i < benchCrashing)
			if err == nil {
				entries[2*i], entries[2*i+1] = e[0], e[1]
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	inv = append(inv, entries...)
	src := &reconcile.Source{
		TypeMeta:   metav1.TypeMeta{APIVersion: reconcile.SourceGVK.GroupVersion().String(), Kind: reconcile.SourceGVK.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec:       reconcile.SourceSpec{Kind: "git", URL: "https://git.example.com/bench.git", Ref: "main", Prune: true},
		Status: reconcile.SourceStatus{LastAppliedRevision: fixtureRev, LastAttemptedRevision: fixtureRev,
			LastAppliedCommit: &reconcile.Commit{Hash: fixtureHash, Message: "bench", Author: "Ada", Time: metav1.Now()},
			Conditions:        []metav1.Condition{{Type: reconcile.ConditionReady, Status: metav1.ConditionTrue, Reason: "Succeeded", LastTransitionTime: metav1.Now()}},
			Inventory:         inv,
			History:           []reconcile.SyncRecord{{Revision: fixtureRev, Start: metav1.Now(), DurationMS: 1500, Created: len(inv)}}},
	}
	createSource(b, s, src)
	return inv
}

// benchWorkload creates a Deployment with its ReplicaSet, pods and
// status, and a Service with a ready EndpointSlice; crashing makes the
// pods crash-loop.
func benchWorkload(ctx context.Context, s *stack, meta metav1.ObjectMeta, i int, crashing bool) ([2]reconcile.InventoryEntry, error) {
	cs := s.kube
	var out [2]reconcile.InventoryEntry
	sel := map[string]string{"app": meta.Name}
	d, err := cs.AppsV1().Deployments(benchNS).Create(ctx, &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](benchReplicas), Selector: &metav1.LabelSelector{MatchLabels: sel},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "main", Image: "registry.example/bench:1",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}}}}}}}},
		metav1.CreateOptions{})
	if err != nil {
		return out, err
	}
	available := int32(benchReplicas)
	if crashing {
		available = 0
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: benchReplicas, UpdatedReplicas: benchReplicas,
		ReadyReplicas: available, AvailableReplicas: available}
	if _, err := cs.AppsV1().Deployments(benchNS).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		return out, err
	}
	out[0] = reconcile.InventoryEntry{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: benchNS, Name: d.Name, UID: string(d.UID)}
	rs, err := cs.AppsV1().ReplicaSets(benchNS).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-5d8f", Namespace: benchNS,
		Labels: sel, Annotations: map[string]string{"deployment.kubernetes.io/revision": "1"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](benchReplicas), Selector: d.Spec.Selector, Template: d.Spec.Template}}, metav1.CreateOptions{})
	if err != nil {
		return out, err
	}
	now := metav1.Now()
	for r := range benchReplicas {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", rs.Name, r), Namespace: benchNS, Labels: sel,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", (i*benchReplicas+r)%benchNodes), Containers: d.Spec.Template.Spec.Containers}}
		if p, err = cs.CoreV1().Pods(benchNS).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return out, err
		}
		cst := corev1.ContainerStatus{Name: "main", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}
		ready := corev1.ConditionTrue
		if crashing {
			ready = corev1.ConditionFalse
			cst = corev1.ContainerStatus{Name: "main", RestartCount: 3,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.42.%d.%d", i/200, i%200+r), ContainerStatuses: []corev1.ContainerStatus{cst},
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: corev1.PodReady, Status: ready, LastTransitionTime: now}}}
		if _, err := cs.CoreV1().Pods(benchNS).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			return out, err
		}
	}
	svcMeta := meta
	svc, err := cs.CoreV1().Services(benchNS).Create(ctx, &corev1.Service{ObjectMeta: svcMeta,
		Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	if err != nil {
		return out, err
	}
	out[1] = reconcile.InventoryEntry{Version: "v1", Kind: "Service", Namespace: benchNS, Name: svc.Name, UID: string(svc.UID)}
	_, err = cs.DiscoveryV1().EndpointSlices(benchNS).Create(ctx, &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: svc.Name + "-abc", Namespace: benchNS,
		Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}}, AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.42.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}},
		metav1.CreateOptions{})
	return out, err
}
