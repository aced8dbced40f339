package horizontalpodautoscaler

import (
	"errors"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

var now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// testPod is a pod requesting 100m cpu and 100Mi memory in its one
// container, started an hour ago and Ready since then unless changed.
type testPod struct {
	name    string
	phase   corev1.PodPhase // Running when empty
	unready bool
	// started and readySince are how long ago; zero means an hour.
	started, readySince time.Duration
	deleting            bool
	noRequest           bool
}

func (p testPod) pod() *corev1.Pod {
	if p.phase == "" {
		p.phase = corev1.PodRunning
	}
	if p.started == 0 {
		p.started = time.Hour
	}
	if p.readySince == 0 {
		p.readySince = p.started
	}
	ready := corev1.ConditionTrue
	if p.unready {
		ready = corev1.ConditionFalse
	}
	req := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("100Mi")}
	if p.noRequest {
		req = nil
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: req}}}},
		Status: corev1.PodStatus{
			Phase:      p.phase,
			StartTime:  &metav1.Time{Time: now.Add(-p.started)},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready, LastTransitionTime: metav1.Time{Time: now.Add(-p.readySince)}}},
		},
	}
	if p.deleting {
		pod.DeletionTimestamp = &metav1.Time{Time: now}
	}
	return pod
}

// usage is a pod's metric sampled a second ago over a 10 s window.
func usage(milli int64) podMetric {
	return podMetric{value: milli, timestamp: now.Add(-time.Second), window: 10 * time.Second}
}

func calc(current int32, res corev1.ResourceName, pods []testPod, metrics map[string]podMetric) calculation {
	c := calculation{current: current, metrics: metrics, resource: res, tolerance: tolerances{0.1, 0.1}, now: now,
		cpuInitialization: DefaultCPUInitializationPeriod, readinessDelay: DefaultInitialReadinessDelay}
	for _, p := range pods {
		c.pods = append(c.pods, p.pod())
	}
	return c
}

func ready(names ...string) []testPod {
	var out []testPod
	for _, n := range names {
		out = append(out, testPod{name: n})
	}
	return out
}

func TestCalculation_utilizationReplicas(t *testing.T) {
	const mi = 1024 * 1024 * 1000 // 1Mi in milli-bytes
	tests := []struct {
		name     string
		current  int32
		resource corev1.ResourceName
		pods     []testPod
		metrics  map[string]podMetric
		target   int32
		want     int32
		wantUtil int32
		wantErr  string
	}{
		{name: "above target scales up by usage over target", current: 3, pods: ready("a", "b", "c"),
			metrics: map[string]podMetric{"a": usage(100), "b": usage(100), "c": usage(100)}, target: 50, want: 6, wantUtil: 100},
		{name: "below target scales down", current: 4, pods: ready("a", "b", "c", "d"),
			metrics: map[string]podMetric{"a": usage(10), "b": usage(10), "c": usage(10), "d": usage(10)}, target: 50, want: 1, wantUtil: 10},
		{name: "within tolerance above changes nothing", current: 2, pods: ready("a", "b"),
			metrics: map[string]podMetric{"a": usage(54), "b": usage(54)}, target: 50, want: 2, wantUtil: 54},
		{name: "within tolerance below changes nothing", current: 2, pods: ready("a", "b"),
			metrics: map[string]podMetric{"a": usage(46), "b": usage(46)}, target: 50, want: 2, wantUtil: 46},
		{name: "just past tolerance scales", current: 2, pods: ready("a", "b"),
			metrics: map[string]podMetric{"a": usage(56), "b": usage(56)}, target: 50, want: 3, wantUtil: 56},
		{name: "missing pod counts as 0% on scale-up", current: 3, pods: ready("a", "b", "c", "new"),
			// 60% of the measured alone would be 4 replicas; with the new
			// pod at 0% usage is 45%, which points down: no change.
			metrics: map[string]podMetric{"a": usage(60), "b": usage(60), "c": usage(60)}, target: 50, want: 3, wantUtil: 60},
		{name: "missing pod counts as 100% on scale-down", current: 4, pods: ready("a", "b", "c", "gone"),
			// 10% alone would be 1 replica; with the missing pod at 100%
			// usage is 32% of 50: ceil(0.64*4) = 3.
			metrics: map[string]podMetric{"a": usage(10), "b": usage(10), "c": usage(10)}, target: 50, want: 3, wantUtil: 10},
		{name: "missing pod counts as the target above 100% on scale-down", current: 2, pods: ready("a", "gone"),
			// (10 + 100*200/100) / 200 = 105% of 200: ratio 0.525, 2 replicas.
			metrics: map[string]podMetric{"a": usage(10)}, target: 200, want: 2, wantUtil: 10},
		{name: "unready pod counts as 0% on cpu scale-up", current: 3,
			pods:    []testPod{{name: "a"}, {name: "b"}, {name: "u", unready: true, started: time.Minute}},
			metrics: map[string]podMetric{"a": usage(100), "b": usage(100), "u": usage(100)}, target: 50, want: 4, wantUtil: 100},
		{name: "unready pod is left out of a cpu scale-down", current: 3,
			pods:    []testPod{{name: "a"}, {name: "b"}, {name: "u", unready: true, started: time.Minute}},
			metrics: map[string]podMetric{"a": usage(10), "b": usage(10), "u": usage(100)}, target: 50, want: 1, wantUtil: 10},
		{name: "pod ready for less than a window counts as unready for cpu", current: 2,
			pods:    []testPod{{name: "a"}, {name: "young", started: time.Minute, readySince: 5 * time.Second}},
			metrics: map[string]podMetric{"a": usage(100), "young": usage(100)}, target: 50, want: 2, wantUtil: 100},
		{name: "unready pod counts for memory", current: 3, resource: corev1.ResourceMemory,
			pods:    []testPod{{name: "a"}, {name: "b"}, {name: "u", unready: true, started: time.Minute}},
			metrics: map[string]podMetric{"a": usage(100 * mi), "b": usage(100 * mi), "u": usage(100 * mi)}, target: 50, want: 6, wantUtil: 100},
		{name: "pending pod is unready for memory too", current: 2, resource: corev1.ResourceMemory,
			pods:    []testPod{{name: "a"}, {name: "p", phase: corev1.PodPending}},
			metrics: map[string]podMetric{"a": usage(100 * mi)}, target: 50, want: 2, wantUtil: 100},
		{name: "failed and terminating pods are ignored", current: 3,
			pods:    []testPod{{name: "a"}, {name: "f", phase: corev1.PodFailed}, {name: "d", deleting: true}},
			metrics: map[string]podMetric{"a": usage(10), "f": usage(500), "d": usage(500)}, target: 50, want: 1, wantUtil: 10},
		{name: "no pods", current: 1, metrics: map[string]podMetric{"a": usage(1)}, target: 50, wantErr: "no pods returned by selector"},
		{name: "no ready pod has metrics", current: 1, pods: []testPod{{name: "u", unready: true, started: time.Minute}},
			metrics: map[string]podMetric{"u": usage(100)}, target: 50, wantErr: "did not receive metrics for targeted pods"},
		{name: "a container without a request", current: 1, pods: []testPod{{name: "a", noRequest: true}},
			metrics: map[string]podMetric{"a": usage(100)}, target: 50, wantErr: "missing request for cpu in container c of Pod a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.resource == "" {
				tc.resource = corev1.ResourceCPU
			}
			got, util, _, err := calc(tc.current, tc.resource, tc.pods, tc.metrics).utilizationReplicas(tc.target)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || util != tc.wantUtil {
				t.Errorf("replicas %d, utilization %d%%; want %d, %d%%", got, util, tc.want, tc.wantUtil)
			}
		})
	}
}

func TestCalculation_averageValueReplicas(t *testing.T) {
	tests := []struct {
		name      string
		current   int32
		pods      []testPod
		metrics   map[string]podMetric
		target    int64
		want      int32
		wantUsage int64
	}{
		{"above target", 2, ready("a", "b"), map[string]podMetric{"a": usage(200), "b": usage(200)}, 100, 4, 200},
		{"below target", 4, ready("a", "b", "c", "d"), map[string]podMetric{"a": usage(20), "b": usage(20), "c": usage(20), "d": usage(20)}, 100, 1, 20},
		{"within tolerance", 2, ready("a", "b"), map[string]podMetric{"a": usage(105), "b": usage(105)}, 100, 2, 105},
		// 20 alone would be 1 replica; the missing pod at the target
		// makes the average 60: ceil(0.6*2) = 2.
		{"missing pod counts as the target on scale-down", 2, ready("a", "gone"), map[string]podMetric{"a": usage(20)}, 100, 2, 20},
		// 300 alone would be 3; with the missing pod at 0 the average
		// is 150: ceil(1.5*2) = 3.
		{"missing pod counts as zero on scale-up", 1, ready("a", "new"), map[string]podMetric{"a": usage(300)}, 100, 3, 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, avg, err := calc(tc.current, corev1.ResourceCPU, tc.pods, tc.metrics).averageValueReplicas(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || avg != tc.wantUsage {
				t.Errorf("replicas %d, usage %d; want %d, %d", got, avg, tc.want, tc.wantUsage)
			}
		})
	}
}

func TestPodMetricsOf(t *testing.T) {
	cm := func(name, cpu string) metricsv1beta1.ContainerMetrics {
		u := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")}
		if cpu != "" {
			u[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		return metricsv1beta1.ContainerMetrics{Name: name, Usage: u}
	}
	items := []metricsv1beta1.PodMetrics{
		{ObjectMeta: metav1.ObjectMeta{Name: "two"}, Containers: []metricsv1beta1.ContainerMetrics{cm("app", "100m"), cm("side", "50m")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "partial"}, Containers: []metricsv1beta1.ContainerMetrics{cm("app", "100m"), cm("side", "")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "empty"}},
	}
	got, err := podMetricsOf(items, corev1.ResourceCPU, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["two"].value != 150 {
		t.Errorf("pod sums %v, want only two at 150m", got)
	}
	got, err = podMetricsOf(items[:2], corev1.ResourceCPU, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["two"].value != 100 || got["partial"].value != 100 {
		t.Errorf("container app %v, want both at 100m", got)
	}
	if _, err := podMetricsOf(items, corev1.ResourceCPU, "app"); err == nil {
		t.Error("a pod without the container: no error")
	}
}

func TestCombine(t *testing.T) {
	failed := proposal{err: errors.New("no metrics"), condition: autoscalingv2.HorizontalPodAutoscalerCondition{Reason: ReasonFailedGetResourceMetric}}
	tests := []struct {
		name       string
		proposals  []proposal
		spec       int32
		want       int32
		wantMetric string
		wantErr    bool
	}{
		{"largest proposal wins", []proposal{{replicas: 3, metric: "cpu"}, {replicas: 5, metric: "memory"}, {replicas: 4, metric: "x"}}, 3, 5, "memory", false},
		{"a failure beside a scale-up scales", []proposal{failed, {replicas: 6, metric: "memory"}}, 3, 6, "memory", true},
		{"a failure beside a scale-down does not scale", []proposal{failed, {replicas: 1, metric: "memory"}}, 3, -1, "", true},
		{"every metric failed", []proposal{failed, failed}, 3, -1, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, metric, cond, err := combine(tc.proposals, tc.spec)
			if got != tc.want || metric != tc.wantMetric || (err != nil) != tc.wantErr {
				t.Fatalf("combine = %d, %q, %v; want %d, %q, error %v", got, metric, err, tc.want, tc.wantMetric, tc.wantErr)
			}
			if got == -1 && cond.Reason != ReasonFailedGetResourceMetric {
				t.Errorf("condition %+v, want the first failure's", cond)
			}
			if err != nil && !strings.Contains(err.Error(), "invalid metrics (") {
				t.Errorf("err %v, want kube's invalid metrics summary", err)
			}
		})
	}
}
