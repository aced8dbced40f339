package apiserver

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"kiln.dev/kiln/components/apiserver/resources"
	"kiln.dev/kiln/components/store"
)

func ptr[T any](v T) *T { return &v }

func qty(s string) *apiresource.Quantity { q := apiresource.MustParse(s); return &q }

func cpuMetric(n int32) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(n)}}}
}

// fullHPA is a v2 HPA using everything v1 cannot express: every metric
// source, behavior, conditions and current metrics. The cpu utilization
// metric is last, where a conversion from v1 puts it.
func fullHPA() *autoscalingv2.HorizontalPodAutoscaler {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"q": "jobs"}}
	ref := autoscalingv2.CrossVersionObjectReference{Kind: "Ingress", Name: "main", APIVersion: "networking.k8s.io/v1"}
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{Kind: "HorizontalPodAutoscaler", APIVersion: "autoscaling/v2"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Annotations: map[string]string{"team": "a"}, Generation: 3},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web", APIVersion: "apps/v1"},
			MinReplicas:    ptr(int32(2)), MaxReplicas: 9,
			Metrics: []autoscalingv2.MetricSpec{
				{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: "rps", Selector: sel},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: qty("100")}}},
				{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{
					DescribedObject: ref, Metric: autoscalingv2.MetricIdentifier{Name: "hits"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: qty("2k")}}},
				{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: "queue", Selector: sel},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: qty("30")}}},
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceMemory, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: qty("512Mi")}}},
				{Type: autoscalingv2.ContainerResourceMetricSourceType, ContainerResource: &autoscalingv2.ContainerResourceMetricSource{
					Name: corev1.ResourceCPU, Container: "app",
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(int32(60))}}},
				cpuMetric(50),
			},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr(int32(120)), SelectPolicy: ptr(autoscalingv2.MinChangePolicySelect),
					Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 60}}},
			},
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{
			ObservedGeneration: ptr(int64(3)), LastScaleTime: &now, CurrentReplicas: 4, DesiredReplicas: 5,
			CurrentMetrics: []autoscalingv2.MetricStatus{
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
					Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr(int32(73)), AverageValue: qty("730m")}}},
				{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricStatus{
					Metric: autoscalingv2.MetricIdentifier{Name: "rps"}, Current: autoscalingv2.MetricValueStatus{AverageValue: qty("80")}}},
				{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricStatus{
					Metric: autoscalingv2.MetricIdentifier{Name: "queue"}, Current: autoscalingv2.MetricValueStatus{Value: qty("7")}}},
			},
			Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{
				{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, LastTransitionTime: now, Reason: "ReadyForNewScale", Message: "ok"},
			},
		},
	}
}

func TestHPAConversion_toV1_cpuTargetAndAnnotations(t *testing.T) {
	v1 := hpaToV1(fullHPA())
	if v1.APIVersion != "autoscaling/v1" || v1.Kind != "HorizontalPodAutoscaler" {
		t.Fatalf("type %s %s", v1.APIVersion, v1.Kind)
	}
	if got := v1.Spec.TargetCPUUtilizationPercentage; got == nil || *got != 50 {
		t.Fatalf("targetCPUUtilizationPercentage = %v, want 50", got)
	}
	if got := v1.Status.CurrentCPUUtilizationPercentage; got == nil || *got != 73 {
		t.Fatalf("currentCPUUtilizationPercentage = %v, want 73", got)
	}
	if v1.Spec.ScaleTargetRef.Name != "web" || *v1.Spec.MinReplicas != 2 || v1.Spec.MaxReplicas != 9 ||
		v1.Status.CurrentReplicas != 4 || v1.Status.DesiredReplicas != 5 || *v1.Status.ObservedGeneration != 3 || v1.Status.LastScaleTime == nil {
		t.Fatalf("direct fields not mapped: %+v", v1)
	}
	if v1.Annotations["team"] != "a" {
		t.Fatalf("user annotation lost: %v", v1.Annotations)
	}
	// The other metrics are in v1's (v2beta1-shaped) format, as kube
	// writes them, without the cpu target v1 has a field for.
	var others []autoscalingv1.MetricSpec
	if err := json.Unmarshal([]byte(v1.Annotations[hpaMetricsAnnotation]), &others); err != nil {
		t.Fatal(err)
	}
	if len(others) != 5 || others[0].Pods == nil || others[0].Pods.MetricName != "rps" || others[0].Pods.TargetAverageValue.String() != "100" {
		t.Fatalf("metrics annotation = %s", v1.Annotations[hpaMetricsAnnotation])
	}
	for _, k := range []string{hpaCurrentMetricsAnnotation, hpaConditionsAnnotation, hpaBehaviorAnnotation} {
		if v1.Annotations[k] == "" {
			t.Errorf("annotation %s missing", k)
		}
	}
	if !strings.Contains(v1.Annotations[hpaBehaviorAnnotation], `"stabilizationWindowSeconds":120`) {
		t.Errorf("behavior annotation = %s", v1.Annotations[hpaBehaviorAnnotation])
	}
}

func TestHPAConversion_toV1_onlyCPU(t *testing.T) {
	in := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 5, Metrics: []autoscalingv2.MetricSpec{cpuMetric(50)}}}
	v1 := hpaToV1(in)
	if v1.Annotations != nil {
		t.Fatalf("annotations = %v, want none", v1.Annotations)
	}
	if *v1.Spec.TargetCPUUtilizationPercentage != 50 {
		t.Fatalf("target = %d", *v1.Spec.TargetCPUUtilizationPercentage)
	}
	if len(in.Spec.Metrics) != 1 || in.Annotations != nil {
		t.Fatalf("input changed: %+v", in)
	}
}

func TestHPAConversion_toV2_cpuTarget(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          autoscalingv1.HorizontalPodAutoscaler
		wantMetrics []autoscalingv2.MetricSpec
		wantCurrent []autoscalingv2.MetricStatus
	}{
		{
			name: "target and current",
			in: autoscalingv1.HorizontalPodAutoscaler{
				Spec:   autoscalingv1.HorizontalPodAutoscalerSpec{MaxReplicas: 5, TargetCPUUtilizationPercentage: ptr(int32(70))},
				Status: autoscalingv1.HorizontalPodAutoscalerStatus{CurrentCPUUtilizationPercentage: ptr(int32(20))},
			},
			wantMetrics: []autoscalingv2.MetricSpec{cpuMetric(70)},
			wantCurrent: []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
				Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr(int32(20))}}}},
		},
		{
			// The HPA controller defaults cpu 80%; the object says nothing.
			name: "no target",
			in:   autoscalingv1.HorizontalPodAutoscaler{Spec: autoscalingv1.HorizontalPodAutoscalerSpec{MaxReplicas: 5}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v2 := hpaToV2(&tc.in)
			if v2.APIVersion != "autoscaling/v2" {
				t.Fatalf("apiVersion %q", v2.APIVersion)
			}
			if !apiequality.Semantic.DeepEqual(v2.Spec.Metrics, tc.wantMetrics) {
				t.Fatalf("metrics = %s", mustJSON(t, v2.Spec.Metrics))
			}
			if !apiequality.Semantic.DeepEqual(v2.Status.CurrentMetrics, tc.wantCurrent) {
				t.Fatalf("current metrics = %s", mustJSON(t, v2.Status.CurrentMetrics))
			}
		})
	}
}

func TestHPAConversion_roundTrip(t *testing.T) {
	t.Run("v2 to v1 to v2", func(t *testing.T) {
		want := fullHPA()
		// Through JSON too, as a v1 client's read-modify-write goes.
		var v1 autoscalingv1.HorizontalPodAutoscaler
		if err := json.Unmarshal(mustJSON(t, hpaToV1(fullHPA())), &v1); err != nil {
			t.Fatal(err)
		}
		got := hpaToV2(&v1)
		if !apiequality.Semantic.DeepEqual(got, want) {
			t.Fatalf("round trip changed the object:\ngot  %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
		}
	})
	t.Run("v1 to v2 to v1", func(t *testing.T) {
		now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		want := &autoscalingv1.HorizontalPodAutoscaler{
			TypeMeta:   metav1.TypeMeta{Kind: "HorizontalPodAutoscaler", APIVersion: "autoscaling/v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"a": "b"}},
			Spec: autoscalingv1.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "web", APIVersion: "apps/v1"},
				MinReplicas: ptr(int32(1)), MaxReplicas: 5, TargetCPUUtilizationPercentage: ptr(int32(50))},
			Status: autoscalingv1.HorizontalPodAutoscalerStatus{ObservedGeneration: ptr(int64(1)), LastScaleTime: &now, CurrentReplicas: 1, DesiredReplicas: 2},
		}
		got := hpaToV1(hpaToV2(want.DeepCopy()))
		if !apiequality.Semantic.DeepEqual(got, want) {
			t.Fatalf("round trip changed the object:\ngot  %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
		}
	})
}

// A v1 client that keeps the annotations but edits the fields v1 has
// changes those; the rest comes back from the annotations.
func TestHPAConversion_toV2_v1FieldsWinOverAnnotations(t *testing.T) {
	v1 := hpaToV1(fullHPA())
	v1.Spec.TargetCPUUtilizationPercentage = ptr(int32(90))
	v1.Status.CurrentCPUUtilizationPercentage = ptr(int32(11))
	v1.Spec.MinReplicas = ptr(int32(3))
	got := hpaToV2(v1)
	want := fullHPA()
	want.Spec.Metrics[len(want.Spec.Metrics)-1] = cpuMetric(90)
	want.Spec.MinReplicas = ptr(int32(3))
	want.Status.CurrentMetrics[0].Resource.Current = autoscalingv2.MetricValueStatus{AverageUtilization: ptr(int32(11))}
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Fatalf("got  %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
	}
	for _, k := range hpaRoundTripAnnotations {
		if _, ok := got.Annotations[k]; ok {
			t.Errorf("annotation %s not consumed", k)
		}
	}
}

// kube encodes behavior from its internal type, without JSON tags; such an
// annotation (from an object copied off a kube cluster) reads too.
func TestHPAConversion_toV2_kubeBehaviorAnnotation(t *testing.T) {
	in := &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		hpaBehaviorAnnotation: `{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":4,"PeriodSeconds":15}]},"ScaleDown":null}`,
		hpaMetricsAnnotation:  `not json`,
	}}}
	got := hpaToV2(in)
	b := got.Spec.Behavior
	if b == nil || b.ScaleUp == nil || len(b.ScaleUp.Policies) != 1 || b.ScaleUp.Policies[0].Value != 4 || b.ScaleDown != nil {
		t.Fatalf("behavior = %s", mustJSON(t, b))
	}
	if len(got.Spec.Metrics) != 0 || got.Annotations != nil {
		t.Fatalf("a bad annotation is ignored and dropped, got metrics %v annotations %v", got.Spec.Metrics, got.Annotations)
	}
}

// Round-trip annotations never reach the store: a v2 write drops them, and
// a conversion to v1 replaces stale ones.
func TestHPAConversion_staleAnnotations(t *testing.T) {
	stale := map[string]string{hpaMetricsAnnotation: `[{"type":"Pods"}]`, hpaBehaviorAnnotation: `{}`, "keep": "me"}
	in := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Annotations: stale},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 1, Metrics: []autoscalingv2.MetricSpec{cpuMetric(50)}}}
	cleaned, err := hpaClean(in)
	if err != nil {
		t.Fatal(err)
	}
	if a := cleaned.(*autoscalingv2.HorizontalPodAutoscaler).Annotations; len(a) != 1 || a["keep"] != "me" {
		t.Fatalf("cleaned annotations = %v", a)
	}
	if len(in.Annotations) != 3 {
		t.Fatalf("the caller's object changed: %v", in.Annotations)
	}
	if a := hpaToV1(in).Annotations; len(a) != 1 || a["keep"] != "me" {
		t.Fatalf("v1 annotations = %v", a)
	}
}

func hpaResources(t *testing.T) (v1, v2 *resource) {
	t.Helper()
	byGVR := map[gvrKey]*resource{}
	for _, r := range resources.Builtin() {
		byGVR[gvrKey{r.Group, r.Version, r.Name}] = newResource(r)
	}
	addConversions(byGVR)
	v1 = byGVR[gvrKey{"autoscaling", "v1", "horizontalpodautoscalers"}]
	v2 = byGVR[gvrKey{"autoscaling", "v2", "horizontalpodautoscalers"}]
	if v1 == nil || v2 == nil || v1.conv == nil || v1.conv != v2.conv || v1.conv.storage != v2 {
		t.Fatal("HPAs have no conversion")
	}
	return v1, v2
}

// Objects stored at v2 are served to v2 readers without decoding; objects
// an older kiln stored at v1 are read by their apiVersion, for both.
func TestHPAConversion_servedJSON(t *testing.T) {
	v1res, v2res := hpaResources(t)
	stored, err := v2res.encodeStored(fullHPA())
	if err != nil {
		t.Fatal(err)
	}
	kv := store.KV{Key: v2res.key("ns", "web"), Value: stored, ModRevision: 12}
	got, err := v2res.servedJSON(kv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, withResourceVersion(stored, 12)) {
		t.Fatalf("v2 of a v2 object is not the stored JSON:\n%s", got)
	}

	legacy := hpaToV1(fullHPA())
	legacy.Annotations = nil // an older kiln stored v1 as sent
	legacyJSON := mustJSON(t, legacy)
	for _, tc := range []struct {
		name    string
		res     *resource
		data    []byte
		want    runtime.Object
		wantAPI string
	}{
		{"v1 of v2", v1res, stored, hpaToV1(fullHPA()), "autoscaling/v1"},
		{"v2 of v1", v2res, legacyJSON, hpaToV2(legacy), "autoscaling/v2"},
		// Through v2, so with the current-metrics annotation kube adds.
		{"v1 of v1", v1res, legacyJSON, hpaToV1(hpaToV2(legacy)), "autoscaling/v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := store.KV{Key: kv.Key, Value: tc.data, ModRevision: 12}
			got, err := tc.res.servedJSON(kv)
			if err != nil {
				t.Fatal(err)
			}
			obj := tc.res.newObject()
			if err := json.Unmarshal(got, obj); err != nil {
				t.Fatal(err)
			}
			m := accessor(obj)
			if obj.GetObjectKind().GroupVersionKind().GroupVersion().String() != tc.wantAPI || m.GetResourceVersion() != "12" {
				t.Fatalf("served %s", got)
			}
			m.SetResourceVersion("")
			setKind(tc.want, obj.GetObjectKind().GroupVersionKind())
			if !apiequality.Semantic.DeepEqual(obj, tc.want) {
				t.Fatalf("served\n%s\nwant\n%s", got, mustJSON(t, tc.want))
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
