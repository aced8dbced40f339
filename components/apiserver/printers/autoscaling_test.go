package printers

import (
	"strings"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestColumns_horizontalPodAutoscalers(t *testing.T) {
	var names []string
	for _, c := range Columns("autoscaling", "horizontalpodautoscalers") {
		names = append(names, c.Name)
	}
	if got, want := strings.Join(names, " "), "Name Reference Targets MinPods MaxPods Replicas Age"; got != want {
		t.Errorf("columns %q, want %q", got, want)
	}
}

func TestRow_horizontalPodAutoscalers(t *testing.T) {
	cpu := func(target int32) autoscalingv2.MetricSpec {
		return autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(target)}}}
	}
	cpuNow := func(u int32) autoscalingv2.MetricStatus {
		return autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
			Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr(u)}}}
	}
	mem := autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceMemory, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr(resource.MustParse("100Mi"))}}}
	memNow := autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
		Name: corev1.ResourceMemory, Current: autoscalingv2.MetricValueStatus{AverageValue: ptr(resource.MustParse("50Mi"))}}}
	hpa := func(metrics []autoscalingv2.MetricSpec, statuses ...autoscalingv2.MetricStatus) *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: objMeta("web"), Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr(int32(1)), MaxReplicas: 5, Metrics: metrics,
		}, Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 2, CurrentMetrics: statuses}}
	}
	v1 := &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: objMeta("web"), Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
		MaxReplicas:    5, TargetCPUUtilizationPercentage: ptr(int32(50)),
	}, Status: autoscalingv1.HorizontalPodAutoscalerStatus{CurrentReplicas: 2, CurrentCPUUtilizationPercentage: ptr(int32(40))}}
	v1u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(v1)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: v1u}
	u.SetAPIVersion("autoscaling/v1")
	u.SetKind("HorizontalPodAutoscaler")
	row := func(targets, minPods string) []interface{} {
		return []interface{}{"web", "Deployment/web", targets, minPods, int64(5), int64(2), "5m"}
	}
	runRows(t, "autoscaling", "horizontalpodautoscalers", []rowCase{
		{"cpu measured", hpa([]autoscalingv2.MetricSpec{cpu(50)}, cpuNow(40)), row("cpu: 40%/50%", "1")},
		{"cpu not measured yet", hpa([]autoscalingv2.MetricSpec{cpu(50)}), row("cpu: <unknown>/50%", "1")},
		{"two metrics", hpa([]autoscalingv2.MetricSpec{cpu(50), mem}, cpuNow(40), memNow), row("cpu: 40%/50%, memory: 50Mi/100Mi", "1")},
		{"more than two", hpa([]autoscalingv2.MetricSpec{cpu(50), mem, cpu(60)}), row("cpu: <unknown>/50%, memory: <unknown>/100Mi + 1 more...", "1")},
		{"no metrics", hpa(nil), row("<none>", "1")},
		{"autoscaling/v1", v1, row("cpu: 40%/50%", "<unset>")},
		{"autoscaling/v1 unstructured", u, row("cpu: 40%/50%", "<unset>")},
	})
}
