package apiserver_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/components/testenv"
)

// HPAs are served at autoscaling/v2 and v1 and stored at v2 (kube's storage
// version); these tests write and read through both, with client-go's
// typed clients and the real kubectl, whose autoscale creates through v1.

const hpaNS = "shop"

func hpaEnv(t *testing.T) *testenv.Env {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	if _, err := env.Clientset.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hpaNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return env
}

func int32p(n int32) *int32 { return &n }

func hpaCPU(n int32) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: int32p(n)}}}
}

// cpuTarget is the utilization target of the v2 HPA's cpu Resource metric.
func cpuTarget(hpa *autoscalingv2.HorizontalPodAutoscaler) (int32, bool) {
	for _, m := range hpa.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType && m.Resource.Target.AverageUtilization != nil {
			return *m.Resource.Target.AverageUtilization, true
		}
	}
	return 0, false
}

// twoMetricHPA is a v2 HPA with what v1 cannot express: a second metric
// and behavior.
func twoMetricHPA(name string) *autoscalingv2.HorizontalPodAutoscaler {
	rps := apiresource.MustParse("100")
	window := int32(120)
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web", APIVersion: "apps/v1"},
			MinReplicas:    int32p(1), MaxReplicas: 5,
			Metrics: []autoscalingv2.MetricSpec{
				{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: "rps"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &rps}}},
				hpaCPU(60),
			},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{
				StabilizationWindowSeconds: &window,
				Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 60}}}},
		},
	}
}

// storedAPIVersion is the apiVersion of the HPA's JSON in etcd.
func storedAPIVersion(t *testing.T, env *testenv.Env, name string) string {
	t.Helper()
	kv, err := env.Store.Get(t.Context(), store.Key("autoscaling", "horizontalpodautoscalers", hpaNS, name))
	if err != nil {
		t.Fatal(err)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(kv.Value, &tm); err != nil {
		t.Fatal(err)
	}
	return tm.APIVersion
}

// noRoundTripAnnotations fails if a v2 object shows the annotations that
// carry v2 fields through v1.
func noRoundTripAnnotations(t *testing.T, hpa *autoscalingv2.HorizontalPodAutoscaler) {
	t.Helper()
	for k := range hpa.Annotations {
		if strings.HasPrefix(k, "autoscaling.alpha.kubernetes.io/") {
			t.Errorf("v2 object carries annotation %s", k)
		}
	}
}

func TestHPA_KubectlAutoscale_servedAtBothVersions(t *testing.T) {
	testenv.Kubectl(t)
	env := hpaEnv(t)
	kubectlMust(t, env, "create", "deployment", "web", "-n", hpaNS, "--image=nginx:1.27")
	kubectlMust(t, env, "autoscale", "deployment", "web", "-n", hpaNS, "--cpu-percent=50", "--min=1", "--max=5")
	ctx := t.Context()

	if v := storedAPIVersion(t, env, "web"); v != "autoscaling/v2" {
		t.Fatalf("stored at %s, want autoscaling/v2", v)
	}
	out := kubectlMust(t, env, "get", "hpa", "-n", hpaNS)
	if row := kubectlRow(t, out, "NAME", "web"); !strings.HasSuffix(row["TARGETS"], "/50%") {
		t.Fatalf("TARGETS = %q, want .../50%%:\n%s", row["TARGETS"], out)
	}
	v2, err := env.Clientset.AutoscalingV2().HorizontalPodAutoscalers(hpaNS).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := cpuTarget(v2); !ok || n != 50 || len(v2.Spec.Metrics) != 1 {
		t.Fatalf("v2 metrics = %+v, want cpu Utilization 50", v2.Spec.Metrics)
	}
	if v2.Spec.MaxReplicas != 5 || v2.Spec.ScaleTargetRef.Name != "web" {
		t.Fatalf("v2 spec = %+v", v2.Spec)
	}
	noRoundTripAnnotations(t, v2)
	v1, err := env.Clientset.AutoscalingV1().HorizontalPodAutoscalers(hpaNS).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := v1.Spec.TargetCPUUtilizationPercentage; p == nil || *p != 50 || v1.APIVersion != "" && v1.APIVersion != "autoscaling/v1" {
		t.Fatalf("v1 = %+v, want targetCPUUtilizationPercentage 50", v1)
	}
	if got := kubectlMust(t, env, "get", "horizontalpodautoscalers.v1.autoscaling", "web", "-n", hpaNS, "-o", "jsonpath={.apiVersion} {.spec.targetCPUUtilizationPercentage}"); got != "autoscaling/v1 50" {
		t.Fatalf("kubectl get through v1 = %q", got)
	}

	// The HPA controller's informer is on v2.
	factory := informers.NewSharedInformerFactoryWithOptions(env.Clientset, 0, informers.WithNamespace(hpaNS))
	lister := factory.Autoscaling().V2().HorizontalPodAutoscalers().Lister()
	factory.Start(ctx.Done())
	t.Cleanup(factory.Shutdown)
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer of %v did not sync", typ)
		}
	}
	cached, err := lister.HorizontalPodAutoscalers(hpaNS).Get("web")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := cpuTarget(cached); n != 50 {
		t.Fatalf("informer's HPA metrics = %+v", cached.Spec.Metrics)
	}
	// A later change through v1 reaches the v2 informer through its watch.
	kubectlMust(t, env, "patch", "horizontalpodautoscalers.v1.autoscaling", "web", "-n", hpaNS, "--type=merge", "-p", `{"spec":{"targetCPUUtilizationPercentage":65}}`)
	eventually(t, func() error {
		cached, err := lister.HorizontalPodAutoscalers(hpaNS).Get("web")
		if err != nil {
			return err
		}
		if n, _ := cpuTarget(cached); n != 65 {
			return fmt.Errorf("informer's cpu target %d, want 65", n)
		}
		return nil
	})
}

func TestHPA_StatusV2_readThroughV1(t *testing.T) {
	env := hpaEnv(t)
	ctx := t.Context()
	v2c := env.Clientset.AutoscalingV2().HorizontalPodAutoscalers(hpaNS)
	v1c := env.Clientset.AutoscalingV1().HorizontalPodAutoscalers(hpaNS)
	hpa := twoMetricHPA("web")
	hpa, err := v2c.Create(ctx, hpa, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hpa.Status = autoscalingv2.HorizontalPodAutoscalerStatus{
		CurrentReplicas: 2, DesiredReplicas: 3,
		CurrentMetrics: []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
			Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: int32p(42)}}}},
		Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionTrue,
			Reason: "ValidMetricFound", LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))}},
	}
	if _, err := v2c.UpdateStatus(ctx, hpa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	v1, err := v1c.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := v1.Status.CurrentCPUUtilizationPercentage; p == nil || *p != 42 || v1.Status.DesiredReplicas != 3 {
		t.Fatalf("v1 status = %+v, want currentCPUUtilizationPercentage 42", v1.Status)
	}
	// The status subresource answers at its version too.
	var st autoscalingv1.HorizontalPodAutoscaler
	if err := env.Clientset.AutoscalingV1().RESTClient().Get().Namespace(hpaNS).Resource("horizontalpodautoscalers").Name("web").SubResource("status").Do(ctx).Into(&st); err != nil {
		t.Fatal(err)
	}
	if p := st.Status.CurrentCPUUtilizationPercentage; p == nil || *p != 42 {
		t.Fatalf("v1 status subresource = %+v", st.Status)
	}

	// A v1 status write changes what v1 has, and keeps the conditions
	// and metrics v1 cannot express, even from a client that sends no
	// annotations.
	v1.Annotations = nil
	v1.Status.CurrentCPUUtilizationPercentage = int32p(77)
	if _, err := v1c.UpdateStatus(ctx, v1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := v2c.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Status.CurrentMetrics) != 1 || *got.Status.CurrentMetrics[0].Resource.Current.AverageUtilization != 77 {
		t.Fatalf("v2 current metrics = %+v, want cpu 77", got.Status.CurrentMetrics)
	}
	if len(got.Spec.Metrics) != 2 || got.Spec.Behavior == nil {
		t.Fatalf("a v1 status write changed the v2 spec: %+v", got.Spec)
	}
	noRoundTripAnnotations(t, got)
}

func TestHPA_V1ReadModifyWrite_keepsWhatV1CannotExpress(t *testing.T) {
	env := hpaEnv(t)
	ctx := t.Context()
	v2c := env.Clientset.AutoscalingV2().HorizontalPodAutoscalers(hpaNS)
	v1c := env.Clientset.AutoscalingV1().HorizontalPodAutoscalers(hpaNS)
	want := twoMetricHPA("web")
	created, err := v2c.Create(ctx, want, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status.Conditions = []autoscalingv2.HorizontalPodAutoscalerCondition{{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue,
		Reason: "ReadyForNewScale", LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))}}
	if _, err := v2c.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	v1, err := v1c.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := v1.Spec.TargetCPUUtilizationPercentage; p == nil || *p != 60 {
		t.Fatalf("v1 target = %v, want 60", p)
	}
	if v1.Annotations["autoscaling.alpha.kubernetes.io/metrics"] == "" || v1.Annotations["autoscaling.alpha.kubernetes.io/behavior"] == "" {
		t.Fatalf("v1 annotations = %v, want the metrics and behavior v1 cannot express", v1.Annotations)
	}
	v1.Spec.MinReplicas = int32p(2)
	updated, err := v1c.Update(ctx, v1, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *updated.Spec.MinReplicas != 2 || *updated.Spec.TargetCPUUtilizationPercentage != 60 {
		t.Fatalf("v1 update answered %+v", updated.Spec)
	}

	got, err := v2c.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.MinReplicas != 2 {
		t.Fatalf("minReplicas = %d, want 2", *got.Spec.MinReplicas)
	}
	if len(got.Spec.Metrics) != 2 || got.Spec.Metrics[0].Pods == nil || got.Spec.Metrics[0].Pods.Metric.Name != "rps" {
		t.Fatalf("metrics = %+v, want rps and cpu", got.Spec.Metrics)
	}
	if n, _ := cpuTarget(got); n != 60 {
		t.Fatalf("cpu target = %d, want 60", n)
	}
	if b := got.Spec.Behavior; b == nil || b.ScaleDown == nil || *b.ScaleDown.StabilizationWindowSeconds != 120 {
		t.Fatalf("behavior = %+v", got.Spec.Behavior)
	}
	if len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Reason != "ReadyForNewScale" {
		t.Fatalf("conditions = %+v", got.Status.Conditions)
	}
	noRoundTripAnnotations(t, got)
	if got.Generation != created.Generation+1 {
		t.Fatalf("generation %d after one spec change from %d", got.Generation, created.Generation)
	}
}

// Both versions' watches share the cache of the one store prefix; each
// gets its own version, of objects written through either.
func TestHPA_Watch_eachVersionGetsItsOwn(t *testing.T) {
	env := hpaEnv(t)
	ctx := t.Context()
	v2c := env.Clientset.AutoscalingV2().HorizontalPodAutoscalers(hpaNS)
	v1c := env.Clientset.AutoscalingV1().HorizontalPodAutoscalers(hpaNS)
	// One object before the watches: their initial events.
	if _, err := v2c.Create(ctx, twoMetricHPA("before"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := v1c.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w1, err := v1c.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Stop()
	w2, err := v2c.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	w1all, err := v1c.Watch(ctx, metav1.ListOptions{}) // from the current state
	if err != nil {
		t.Fatal(err)
	}
	defer w1all.Stop()

	v1obj := &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "v1made"},
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "web", APIVersion: "apps/v1"},
			MaxReplicas: 3, TargetCPUUtilizationPercentage: int32p(55)}}
	if _, err := v1c.Create(ctx, v1obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v2c.Patch(ctx, "before", types.MergePatchType, []byte(`{"spec":{"maxReplicas":7}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := v1c.Delete(ctx, "v1made", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	v1Of := func(t *testing.T, ev watch.Event) *autoscalingv1.HorizontalPodAutoscaler {
		t.Helper()
		o, ok := ev.Object.(*autoscalingv1.HorizontalPodAutoscaler)
		if !ok {
			t.Fatalf("v1 watch delivered %T: %+v", ev.Object, ev.Object)
		}
		return o
	}
	v2Of := func(t *testing.T, ev watch.Event) *autoscalingv2.HorizontalPodAutoscaler {
		t.Helper()
		o, ok := ev.Object.(*autoscalingv2.HorizontalPodAutoscaler)
		if !ok {
			t.Fatalf("v2 watch delivered %T: %+v", ev.Object, ev.Object)
		}
		return o
	}
	t.Run("v1", func(t *testing.T) {
		ev := hpaNextEvent(t, w1)
		if o := v1Of(t, ev); ev.Type != watch.Added || o.Name != "v1made" || *o.Spec.TargetCPUUtilizationPercentage != 55 {
			t.Fatalf("first event %s %+v", ev.Type, o)
		}
		ev = hpaNextEvent(t, w1)
		if o := v1Of(t, ev); ev.Type != watch.Modified || o.Name != "before" || o.Spec.MaxReplicas != 7 || *o.Spec.TargetCPUUtilizationPercentage != 60 {
			t.Fatalf("second event %s %+v", ev.Type, o)
		}
		if ev := hpaNextEvent(t, w1); ev.Type != watch.Deleted || v1Of(t, ev).Name != "v1made" {
			t.Fatalf("third event %s %+v", ev.Type, ev.Object)
		}
	})
	t.Run("v2", func(t *testing.T) {
		ev := hpaNextEvent(t, w2)
		o := v2Of(t, ev)
		if n, _ := cpuTarget(o); ev.Type != watch.Added || o.Name != "v1made" || n != 55 {
			t.Fatalf("first event %s %+v", ev.Type, o)
		}
		noRoundTripAnnotations(t, o)
		ev = hpaNextEvent(t, w2)
		if o := v2Of(t, ev); ev.Type != watch.Modified || o.Name != "before" || len(o.Spec.Metrics) != 2 {
			t.Fatalf("second event %s %+v", ev.Type, o)
		}
		if ev := hpaNextEvent(t, w2); ev.Type != watch.Deleted || v2Of(t, ev).Name != "v1made" {
			t.Fatalf("third event %s %+v", ev.Type, ev.Object)
		}
	})
	t.Run("v1 initial events", func(t *testing.T) {
		ev := hpaNextEvent(t, w1all)
		if o := v1Of(t, ev); ev.Type != watch.Added || o.Name != "before" || *o.Spec.TargetCPUUtilizationPercentage != 60 {
			t.Fatalf("initial event %s %+v", ev.Type, o)
		}
	})
}

func hpaNextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch ended")
		}
		if ev.Type == watch.Error {
			t.Fatalf("watch error: %+v", ev.Object)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event in 10s")
	}
	return watch.Event{}
}

// Patches through v1 apply to the v1 form and update the v2 metric.
func TestHPA_PatchThroughV1_updatesV2Metric(t *testing.T) {
	testenv.Kubectl(t)
	env := hpaEnv(t)
	ctx := t.Context()
	v2c := env.Clientset.AutoscalingV2().HorizontalPodAutoscalers(hpaNS)
	v1c := env.Clientset.AutoscalingV1().HorizontalPodAutoscalers(hpaNS)
	if _, err := v2c.Create(ctx, twoMetricHPA("web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, want int32) {
		t.Helper()
		got, err := v2c.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := cpuTarget(got); n != want || len(got.Spec.Metrics) != 2 || got.Spec.Behavior == nil {
			t.Fatalf("v2 spec = %+v, want cpu %d beside rps and behavior", got.Spec, want)
		}
		noRoundTripAnnotations(t, got)
	}
	t.Run("kubectl merge", func(t *testing.T) {
		kubectlMust(t, env, "patch", "horizontalpodautoscalers.v1.autoscaling", "web", "-n", hpaNS, "--type=merge", "-p", `{"spec":{"targetCPUUtilizationPercentage":70}}`)
		check(t, 70)
	})
	for _, tc := range []struct {
		typ   types.PatchType
		patch string
		want  int32
	}{
		{types.StrategicMergePatchType, `{"spec":{"targetCPUUtilizationPercentage":71}}`, 71},
		{types.MergePatchType, `{"spec":{"targetCPUUtilizationPercentage":72}}`, 72},
		{types.JSONPatchType, `[{"op":"replace","path":"/spec/targetCPUUtilizationPercentage","value":73}]`, 73},
	} {
		t.Run("client-go "+string(tc.typ), func(t *testing.T) {
			out, err := v1c.Patch(ctx, "web", tc.typ, []byte(tc.patch), metav1.PatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if *out.Spec.TargetCPUUtilizationPercentage != tc.want {
				t.Fatalf("patch answered %+v", out.Spec)
			}
			check(t, tc.want)
		})
	}
	t.Run("dry run", func(t *testing.T) {
		out, err := v1c.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"targetCPUUtilizationPercentage":99}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if *out.Spec.TargetCPUUtilizationPercentage != 99 {
			t.Fatalf("dry run answered %+v", out.Spec)
		}
		check(t, 73)
	})
}

// An object an older kiln stored as v1 reads through both versions, and
// the next write stores it at v2.
func TestHPA_StoredAsV1_readsThroughBoth(t *testing.T) {
	testenv.Kubectl(t)
	env := hpaEnv(t)
	ctx := t.Context()
	legacy := `{"kind":"HorizontalPodAutoscaler","apiVersion":"autoscaling/v1","metadata":{"name":"old","namespace":"shop","uid":"5b0c2a4e-0000-4000-8000-000000000001","generation":1,"creationTimestamp":"2025-06-01T00:00:00Z"},` +
		`"spec":{"scaleTargetRef":{"kind":"Deployment","name":"web","apiVersion":"apps/v1"},"minReplicas":1,"maxReplicas":4,"targetCPUUtilizationPercentage":60},` +
		`"status":{"currentReplicas":1,"desiredReplicas":1,"currentCPUUtilizationPercentage":12}}`
	if _, err := env.Store.Create(ctx, store.Key("autoscaling", "horizontalpodautoscalers", hpaNS, "old"), []byte(legacy), store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	v2c := env.Clientset.AutoscalingV2().HorizontalPodAutoscalers(hpaNS)
	v1c := env.Clientset.AutoscalingV1().HorizontalPodAutoscalers(hpaNS)

	v2, err := v2c.Get(ctx, "old", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := cpuTarget(v2); n != 60 || len(v2.Status.CurrentMetrics) != 1 || *v2.Status.CurrentMetrics[0].Resource.Current.AverageUtilization != 12 {
		t.Fatalf("v2 = %+v", v2)
	}
	list, err := v2c.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("v2 list has %d items", len(list.Items))
	}
	if n, _ := cpuTarget(&list.Items[0]); n != 60 {
		t.Fatalf("v2 list item metrics = %+v", list.Items[0].Spec.Metrics)
	}
	v1, err := v1c.Get(ctx, "old", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := v1.Spec.TargetCPUUtilizationPercentage; p == nil || *p != 60 || *v1.Status.CurrentCPUUtilizationPercentage != 12 {
		t.Fatalf("v1 = %+v", v1)
	}
	out := kubectlMust(t, env, "get", "hpa", "-n", hpaNS)
	if row := kubectlRow(t, out, "NAME", "old"); row["TARGETS"] != "cpu: 12%/60%" {
		t.Fatalf("TARGETS = %q:\n%s", row["TARGETS"], out)
	}

	v2.Spec.MaxReplicas = 6
	if _, err := v2c.Update(ctx, v2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := storedAPIVersion(t, env, "old"); v != "autoscaling/v2" {
		t.Fatalf("rewritten at %s, want autoscaling/v2", v)
	}
	if got, err := v1c.Get(ctx, "old", metav1.GetOptions{}); err != nil || *got.Spec.TargetCPUUtilizationPercentage != 60 || got.Spec.MaxReplicas != 6 {
		t.Fatalf("v1 after the v2 write = %+v, %v", got, err)
	}
}

// The other verbs answer at the request's version and store v2.
func TestHPA_V1Verbs_answerV1StoreV2(t *testing.T) {
	env := hpaEnv(t)
	ctx := t.Context()
	v1c := env.Clientset.AutoscalingV1().HorizontalPodAutoscalers(hpaNS)
	newV1 := func(name string, target int32) *autoscalingv1.HorizontalPodAutoscaler {
		return &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
			Spec: autoscalingv1.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: name, APIVersion: "apps/v1"},
				MaxReplicas: 3, TargetCPUUtilizationPercentage: int32p(target)}}
	}

	t.Run("create with protobuf", func(t *testing.T) {
		cfg := *env.RESTConfig
		cfg.ContentType = "" // client-go's default: protobuf
		cs, err := kubernetes.NewForConfig(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		out, err := cs.AutoscalingV1().HorizontalPodAutoscalers(hpaNS).Create(ctx, newV1("a", 41), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *out.Spec.TargetCPUUtilizationPercentage != 41 || out.ResourceVersion == "" || out.UID == "" {
			t.Fatalf("create answered %+v", out)
		}
		if v := storedAPIVersion(t, env, "a"); v != "autoscaling/v2" {
			t.Fatalf("stored at %s", v)
		}
	})
	// b is written through v2, so every read below crosses versions.
	v2b := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "b", Labels: map[string]string{"app": "web"}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "b", APIVersion: "apps/v1"},
			MaxReplicas: 3, Metrics: []autoscalingv2.MetricSpec{hpaCPU(42)}}}
	if _, err := env.Clientset.AutoscalingV2().HorizontalPodAutoscalers(hpaNS).Create(ctx, v2b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v1c.Create(ctx, newV1("c", 43), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Run("dry run", func(t *testing.T) {
		out, err := v1c.Create(ctx, newV1("dry", 44), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if *out.Spec.TargetCPUUtilizationPercentage != 44 {
			t.Fatalf("dry run answered %+v", out.Spec)
		}
		if _, err := v1c.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("dry run stored the object: %v", err)
		}
		b, err := v1c.Get(ctx, "b", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b.Spec.MaxReplicas = 9
		out, err = v1c.Update(ctx, b, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if out.Spec.MaxReplicas != 9 || out.Spec.TargetCPUUtilizationPercentage == nil || *out.Spec.TargetCPUUtilizationPercentage != 42 {
			t.Fatalf("dry run update answered %+v", out.Spec)
		}
		if got, err := v1c.Get(ctx, "b", metav1.GetOptions{}); err != nil || got.Spec.MaxReplicas != 3 {
			t.Fatalf("dry run update stored: %+v, %v", got, err)
		}
	})
	t.Run("list pages", func(t *testing.T) {
		var names []string
		opts := metav1.ListOptions{Limit: 2}
		for {
			page, err := v1c.List(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				if it.Spec.TargetCPUUtilizationPercentage == nil {
					t.Fatalf("list item without the v1 target: %+v", it)
				}
				names = append(names, it.Name)
			}
			if page.Continue == "" {
				break
			}
			opts.Continue = page.Continue
		}
		if strings.Join(names, ",") != "a,b,c" {
			t.Fatalf("listed %v", names)
		}
	})
	t.Run("list as table", func(t *testing.T) {
		raw, err := env.Clientset.AutoscalingV1().RESTClient().Get().Namespace(hpaNS).Resource("horizontalpodautoscalers").
			SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var table metav1.Table
		if err := json.Unmarshal(raw, &table); err != nil {
			t.Fatal(err)
		}
		if len(table.Rows) != 3 || !strings.Contains(string(raw), "/41%") || !strings.Contains(string(raw), "/42%") {
			t.Fatalf("table = %s", raw)
		}
	})
	t.Run("delete answers v1", func(t *testing.T) {
		// An orphan finalizer keeps the object, so the answer is the object.
		orphan := metav1.DeletePropagationOrphan
		raw, err := env.Clientset.AutoscalingV1().RESTClient().Delete().Namespace(hpaNS).Resource("horizontalpodautoscalers").Name("b").
			Body(&metav1.DeleteOptions{PropagationPolicy: &orphan}).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out autoscalingv1.HorizontalPodAutoscaler
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		if out.APIVersion != "autoscaling/v1" || out.DeletionTimestamp == nil || out.Spec.TargetCPUUtilizationPercentage == nil || *out.Spec.TargetCPUUtilizationPercentage != 42 {
			t.Fatalf("delete answered %s", raw)
		}
		if v := storedAPIVersion(t, env, "b"); v != "autoscaling/v2" {
			t.Fatalf("terminating object stored at %s", v)
		}
		if _, err := v1c.Patch(ctx, "b", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := v1c.Get(ctx, "b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("after the finalizer went: %v", err)
		}

		if err := v1c.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=web"}); err != nil {
			t.Fatal(err)
		}
		list, err := env.Clientset.AutoscalingV2().HorizontalPodAutoscalers(hpaNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 0 {
			t.Fatalf("deletecollection left %d", len(list.Items))
		}
	})
}
