package horizontalpodautoscaler_test

// The controller end to end against a real etcd and API server
// (testenv), with the real ReplicaSet and Deployment controllers and
// testenv's stand-in scheduler and kubelet running the pods. Usage comes
// from the API server's own metrics.k8s.io, which asks the node's kubelet
// for /stats/resource at the node's address and kubeletEndpoint port:
// that one endpoint is served by statsServer, a test HTTPS server on
// 127.0.0.1 standing in for the kubelet's stats (the only stand-in here
// besides testenv's), reporting the usage the test sets.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"kiln.dev/kiln/components/controllers/deployment"
	"kiln.dev/kiln/components/controllers/horizontalpodautoscaler"
	"kiln.dev/kiln/components/controllers/replicaset"
	"kiln.dev/kiln/components/testenv"
)

const (
	ns = "default"
	// waitLimit bounds every wait but the one for the scale-up period.
	waitLimit = 30 * time.Second
	// syncPeriod is the controller's, shortened from 15 s.
	syncPeriod = 100 * time.Millisecond
)

func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// consistently checks that cond holds for d.
func consistently(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
	}
}

// statsServer stands in for the kubelet's /stats/resource: every running
// pod of the namespace gets cpuMilli of cpu in one container, or no pod
// is reported while cpuMilli is negative.
type statsServer struct {
	srv      *httptest.Server
	cs       atomic.Pointer[kubernetes.Clientset]
	cpuMilli atomic.Int64
}

func newStatsServer(t *testing.T) *statsServer {
	s := &statsServer{}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stats/resource" {
			http.NotFound(w, r)
			return
		}
		now := metav1.Now()
		// What the kubelet answers (components/kubelet/stats.go); a
		// 1 s window, so a pod that just became ready counts soon.
		var out struct {
			Node metricsv1beta1.NodeMetrics  `json:"node"`
			Pods []metricsv1beta1.PodMetrics `json:"pods"`
		}
		out.Node = metricsv1beta1.NodeMetrics{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Timestamp: now, Window: metav1.Duration{Duration: time.Second},
			Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}}
		if cs, cpu := s.cs.Load(), s.cpuMilli.Load(); cs != nil && cpu >= 0 {
			pods, err := cs.CoreV1().Pods(ns).List(r.Context(), metav1.ListOptions{})
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			for _, p := range pods.Items {
				if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
					continue
				}
				out.Pods = append(out.Pods, metricsv1beta1.PodMetrics{
					ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name}, Timestamp: now, Window: metav1.Duration{Duration: time.Second},
					Containers: []metricsv1beta1.ContainerMetrics{{Name: "app", Usage: corev1.ResourceList{
						corev1.ResourceCPU: *resource.NewMilliQuantity(cpu, resource.DecimalSI), corev1.ResourceMemory: resource.MustParse("10Mi")}}},
				})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	s.srv.StartTLS() // on 127.0.0.1
	t.Cleanup(s.srv.Close)
	return s
}

func (s *statsServer) port(t *testing.T) int32 {
	u, err := url.Parse(s.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return int32(p)
}

// startEnv runs the control plane, the stats stand-in behind node-1, the
// stand-in kubelet, and the ReplicaSet, Deployment and HPA controllers.
func startEnv(t *testing.T) (*testenv.Env, *statsServer) {
	t.Helper()
	stats := newStatsServer(t)
	env := testenv.Start(t, testenv.Options{KubeletClient: stats.srv.Client()})
	cs := env.Clientset.(*kubernetes.Clientset)
	stats.cs.Store(cs)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	if _, err := cs.CoreV1().Nodes().Create(t.Context(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node.Status = corev1.NodeStatus{
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: stats.port(t)}},
	}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(t.Context(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.StandInKubelet(t, env, testenv.StandInOptions{Node: "node-1"})

	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	f := informers.NewSharedInformerFactory(cs, 0)
	events := record.NewBroadcaster()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	mcs, err := metricsclient.NewForConfig(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	rsc, err := replicaset.New(replicaset.Config{Client: cs, Informers: f, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := deployment.New(deployment.Config{Client: cs, Informers: f, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hc, err := horizontalpodautoscaler.New(horizontalpodautoscaler.Config{Client: cs, Metrics: mcs, Informers: f, Events: events,
		SyncPeriod: syncPeriod, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	f.Start(ctx.Done())
	runs := []interface{ Run(context.Context) error }{rsc, dc, hc}
	errs := make(chan error, len(runs))
	for _, r := range runs {
		go func() { errs <- r.Run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		for range runs {
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
		events.Shutdown()
	})
	return env, stats
}

func newDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}},
			},
		},
	}
}

func scaleOf(t *testing.T, cs kubernetes.Interface, name string) int32 {
	t.Helper()
	s, err := cs.AppsV1().Deployments(ns).GetScale(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Spec.Replicas
}

func getHPA(t *testing.T, cs kubernetes.Interface, name string) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	h, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// condition returns "Status Reason" of the HPA's condition of type typ.
func condition(h *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) string {
	for _, c := range h.Status.Conditions {
		if c.Type == typ {
			return string(c.Status) + " " + c.Reason
		}
	}
	return ""
}

// cpuNow is the status's current cpu utilization, -1 when unknown.
func cpuNow(h *autoscalingv2.HorizontalPodAutoscaler) int32 {
	for _, m := range h.Status.CurrentMetrics {
		if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Current.AverageUtilization != nil {
			return *m.Resource.Current.AverageUtilization
		}
	}
	return -1
}

// waitHPA waits for the HPA's status to show the conditions (type ->
// "Status Reason") and cond to hold.
func waitHPA(t *testing.T, cs kubernetes.Interface, name string, limit time.Duration, conds map[autoscalingv2.HorizontalPodAutoscalerConditionType]string,
	cond func(*autoscalingv2.HorizontalPodAutoscaler) bool) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	var h *autoscalingv2.HorizontalPodAutoscaler
	eventually(t, limit, fmt.Sprintf("HPA %s with %v", name, conds), func() bool {
		h = getHPA(t, cs, name)
		for typ, want := range conds {
			if condition(h, typ) != want {
				return false
			}
		}
		return cond == nil || cond(h)
	})
	return h
}

// events returns "Type Reason Message" of the Events about obj.
func events(t *testing.T, cs kubernetes.Interface, uid types.UID) []string {
	t.Helper()
	l, err := cs.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(uid)).String()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range l.Items {
		out = append(out, e.Type+" "+e.Reason+" "+e.Message)
	}
	return out
}

func waitEvent(t *testing.T, cs kubernetes.Interface, uid types.UID, want string) {
	t.Helper()
	eventually(t, waitLimit, "event "+want, func() bool {
		for _, e := range events(t, cs, uid) {
			if e == want {
				return true
			}
		}
		return false
	})
}

// kubectl runs the real kubectl against env; the subtest skips (or fails
// under KILN_E2E=require) without one.
func kubectl(t *testing.T, env *testenv.Env, args ...string) string {
	t.Helper()
	bin := testenv.Kubectl(t)
	home := t.TempDir()
	cmd := exec.CommandContext(t.Context(), bin, append([]string{"--kubeconfig", env.Kubeconfig, "--cache-dir", filepath.Join(home, "cache")}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// waitKubectlTargets waits for kubectl get hpa to print want in TARGETS.
func waitKubectlTargets(t *testing.T, env *testenv.Env, name, want string) {
	t.Helper()
	var out string
	eventually(t, waitLimit, "kubectl get hpa showing "+want, func() bool {
		out = kubectl(t, env, "get", "hpa", name, "-n", ns)
		return strings.Contains(out, want)
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE" {
		t.Errorf("kubectl get hpa header %q", lines[0])
	}
	if !strings.HasPrefix(lines[1], name+" ") || !strings.Contains(lines[1], "Deployment/"+name) {
		t.Errorf("kubectl get hpa row %q", lines[1])
	}
}

func TestController_Run_scalesDeploymentOnCPU(t *testing.T) {
	env, stats := startEnv(t)
	cs := env.Clientset
	stats.cpuMilli.Store(54) // 54% of the 100m request: within 10% of 50%
	if _, err := cs.AppsV1().Deployments(ns).Create(t.Context(), newDeployment("web", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	minReplicas, target, window := int32(3), int32(50), int32(3)
	hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(t.Context(), &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    &minReplicas, MaxReplicas: 8,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target}}}},
			// Scale-down stabilization shortened from 300 s; scale-up
			// keeps kube's default rules.
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &window}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Within tolerance: 54% against 50% changes nothing.
	h := waitHPA(t, cs, "web", waitLimit, map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
		autoscalingv2.AbleToScale:    "True ReadyForNewScale",
		autoscalingv2.ScalingActive:  "True ValidMetricFound",
		autoscalingv2.ScalingLimited: "False DesiredWithinRange",
	}, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		return cpuNow(h) == 54 && h.Status.CurrentReplicas == 3
	})
	if h.Status.DesiredReplicas != 3 || h.Status.LastScaleTime != nil || h.Status.ObservedGeneration == nil || *h.Status.ObservedGeneration != h.Generation {
		t.Errorf("status %+v, want desiredReplicas 3, no lastScaleTime, observedGeneration %d", h.Status, h.Generation)
	}
	for _, c := range h.Status.Conditions {
		if c.Type == autoscalingv2.ScalingActive && c.Message != "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)" {
			t.Errorf("ScalingActive message %q", c.Message)
		}
	}
	consistently(t, 1500*time.Millisecond, "3 replicas within tolerance", func() bool { return scaleOf(t, cs, "web") == 3 })
	t.Run("kubectl get hpa within tolerance", func(t *testing.T) { waitKubectlTargets(t, env, "web", "cpu: 54%/50%") })

	// Above target: 300% wants 18; the default rule allows max(4 pods,
	// 100%) per 15 s: 3 -> 7.
	stats.cpuMilli.Store(300)
	eventually(t, waitLimit, "scale-up to 7", func() bool { return scaleOf(t, cs, "web") == 7 })
	waitEvent(t, cs, hpa.UID, "Normal SuccessfulRescale New size: 7; reason: cpu resource utilization (percentage of request) above target")
	stepAt := time.Now()
	waitHPA(t, cs, "web", waitLimit, map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
		autoscalingv2.ScalingLimited: "True ScaleUpLimit",
	}, nil)
	consistently(t, 1500*time.Millisecond, "7 replicas until the scale-up period passes", func() bool { return scaleOf(t, cs, "web") == 7 })
	t.Run("kubectl get hpa above target", func(t *testing.T) { waitKubectlTargets(t, env, "web", "cpu: 300%/50%") })

	// Once the 15 s period passed: clamped at maxReplicas.
	eventually(t, 15*time.Second+waitLimit, "scale-up to maxReplicas", func() bool { return scaleOf(t, cs, "web") == 8 })
	if d := time.Since(stepAt); d < 13*time.Second {
		t.Errorf("second step %v after the first, want the 15 s period", d)
	}
	waitHPA(t, cs, "web", waitLimit, map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
		autoscalingv2.ScalingLimited: "True TooManyReplicas",
	}, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		return h.Status.CurrentReplicas == 8 && h.Status.DesiredReplicas == 8
	})

	// Below target: down only once the 3 s stabilization window has
	// passed, and no lower than minReplicas.
	stats.cpuMilli.Store(10)
	lowAt := time.Now()
	waitHPA(t, cs, "web", waitLimit, map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
		autoscalingv2.AbleToScale: "True ScaleDownStabilized",
	}, func(h *autoscalingv2.HorizontalPodAutoscaler) bool { return cpuNow(h) == 10 })
	eventually(t, waitLimit, "scale-down to minReplicas", func() bool { return scaleOf(t, cs, "web") == 3 })
	if d := time.Since(lowAt); d < 2500*time.Millisecond {
		t.Errorf("scaled down %v after usage dropped, want the 3 s stabilization window", d)
	}
	waitEvent(t, cs, hpa.UID, "Normal SuccessfulRescale New size: 3; reason: All metrics below target")
	waitHPA(t, cs, "web", waitLimit, map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
		autoscalingv2.ScalingLimited: "True TooFewReplicas",
	}, nil)

	// No metrics: ScalingActive False and kube's Warnings; no change.
	stats.cpuMilli.Store(-1)
	h = waitHPA(t, cs, "web", waitLimit, map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
		autoscalingv2.ScalingActive: "False FailedGetResourceMetric",
	}, nil)
	const noMetrics = "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API"
	for _, c := range h.Status.Conditions {
		if c.Type == autoscalingv2.ScalingActive && c.Message != "the HPA was unable to compute the replica count: "+noMetrics {
			t.Errorf("ScalingActive message %q", c.Message)
		}
	}
	waitEvent(t, cs, hpa.UID, "Warning FailedGetResourceMetric "+noMetrics)
	waitEvent(t, cs, hpa.UID, "Warning FailedComputeMetricsReplicas invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: "+noMetrics)
	if n := scaleOf(t, cs, "web"); n != 3 {
		t.Errorf("scale %d without metrics, want 3", n)
	}

	// Below a raised minReplicas: scaled to it, metrics or not.
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Patch(t.Context(), "web", types.MergePatchType,
		[]byte(`{"spec":{"minReplicas":4}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitLimit, "scale raised to minReplicas", func() bool { return scaleOf(t, cs, "web") == 4 })
	waitEvent(t, cs, hpa.UID, "Normal SuccessfulRescale New size: 4; reason: Current number of replicas below Spec.MinReplicas")
	if h := getHPA(t, cs, "web"); h.Status.LastScaleTime == nil {
		t.Error("no lastScaleTime after rescales")
	}

	// A target scaled to zero by hand is left there.
	stats.cpuMilli.Store(300)
	if _, err := cs.AppsV1().Deployments(ns).UpdateScale(t.Context(), "web", &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 0}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitHPA(t, cs, "web", waitLimit, map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
		autoscalingv2.ScalingActive: "False ScalingDisabled",
	}, nil)
	consistently(t, time.Second, "0 replicas while disabled", func() bool { return scaleOf(t, cs, "web") == 0 })
}
