package reconcile_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/dir"
)

// syncEnv runs a control plane and a reconciler over one directory source.
type syncEnv struct {
	env  *testenv.Env
	dir  string
	kube kubernetes.Interface
	dyn  dynamic.Interface
}

func startSync(t *testing.T, files map[string]string, spec reconcile.SourceSpec) *syncEnv {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	d := t.TempDir()
	for name, content := range files {
		writeFile(t, d, name, content)
	}
	src, err := dir.New(dir.Config{Name: "demo", Path: d})
	if err != nil {
		t.Fatal(err)
	}
	spec.Kind, spec.Path = "dir", d
	if spec.Namespace == "" {
		spec.Namespace = "default"
	}
	rec, err := reconcile.New(reconcile.Config{RESTConfig: env.RESTConfig, Sources: []reconcile.SourceConfig{{Name: "demo", Spec: spec, Fetcher: src}}})
	if err != nil {
		t.Fatal(err)
	}
	runReconciler(t, rec)
	return &syncEnv{env: env, dir: d, kube: env.Clientset, dyn: dynamic.NewForConfigOrDie(env.RESTConfig)}
}

// runReconciler runs rec until the test ends, when a Run that returned
// an error fails it. The channel gets Run's result; a test that reads it
// sends it back for the cleanup.
func runReconciler(t *testing.T, rec *reconcile.Reconciler) chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reconciler: %v", err)
		}
	})
	return done
}

func writeFile(t *testing.T, d, name, content string) {
	t.Helper()
	p := filepath.Join(d, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// source reads the Source object; a missing one reads as empty, so
// polls can wait for it.
func (s *syncEnv) source(t *testing.T) reconcile.Source {
	t.Helper()
	var src reconcile.Source
	u, err := s.dyn.Resource(reconcile.SourceGVR).Get(t.Context(), "demo", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return src
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &src); err != nil {
		t.Fatal(err)
	}
	return src
}

// eventually polls fn until it returns "" or the deadline passes.
func eventually(t *testing.T, what string, fn func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		if last = fn(); last == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

const nsYAML = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
`

const deployYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.25"}]
`

const cmYAML = `apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: shop}
data: {greeting: hello}
`

func TestSync_applyConfigurePrune(t *testing.T) {
	s := startSync(t, map[string]string{"ns.yaml": nsYAML, "app/deploy.yaml": deployYAML, "app/cm.yaml": cmYAML}, reconcile.SourceSpec{Prune: true})
	ctx := t.Context()
	var first reconcile.Source
	eventually(t, "first sync", func() string {
		first = s.source(t)
		if !meta.IsStatusConditionTrue(first.Status.Conditions, reconcile.ConditionReady) {
			return "not ready: " + conditionMessage(first)
		}
		return ""
	})
	if h := first.Status.History[0]; h.Created != 3 || h.Error != "" {
		t.Fatalf("first sync record: %+v", h)
	}
	if len(first.Status.Inventory) != 3 {
		t.Fatalf("inventory: %+v", first.Status.Inventory)
	}
	d, err := s.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Labels[reconcile.LabelSource] != "demo" || d.Annotations[reconcile.AnnotationPath] != "app/deploy.yaml" || d.Annotations[reconcile.AnnotationRevision] != first.Status.LastAppliedRevision {
		t.Fatalf("managed metadata missing: labels %v annotations %v", d.Labels, d.Annotations)
	}
	deployUID := d.UID

	// Change one object, remove another: configured and pruned.
	writeFile(t, s.dir, "app/deploy.yaml", strings.Replace(deployYAML, "replicas: 2", "replicas: 4", 1))
	if err := os.Remove(filepath.Join(s.dir, "app/cm.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "second sync", func() string {
		src := s.source(t)
		if src.Status.LastAppliedRevision == first.Status.LastAppliedRevision {
			return "revision not applied yet"
		}
		h := src.Status.History[0]
		if h.Configured != 1 || h.Pruned != 1 || h.Unchanged != 1 {
			return "record " + strings.TrimSpace(strings.ReplaceAll(fmtRecord(h), "\n", " "))
		}
		return ""
	})
	d, err = s.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 4 || d.UID != deployUID {
		t.Fatalf("deployment after change: %v replicas=%v uid changed=%v", err, d.Spec.Replicas, d.UID != deployUID)
	}
	if _, err := s.kube.CoreV1().ConfigMaps("shop").Get(ctx, "cfg", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("configmap not pruned: %v", err)
	}
}

func fmtRecord(h reconcile.SyncRecord) string {
	return strings.Join([]string{"created", itoa(h.Created), "configured", itoa(h.Configured), "unchanged", itoa(h.Unchanged), "pruned", itoa(h.Pruned), "err", h.Error}, " ")
}

func itoa(n int) string { return strconv.Itoa(n) }

func conditionMessage(src reconcile.Source) string {
	c := meta.FindStatusCondition(src.Status.Conditions, reconcile.ConditionReady)
	if c == nil {
		return "no Ready condition"
	}
	return c.Reason + ": " + c.Message
}

func TestSync_badSnapshotAppliesNothingDeletesNothing(t *testing.T) {
	s := startSync(t, map[string]string{"ns.yaml": nsYAML, "app/deploy.yaml": deployYAML, "app/cm.yaml": cmYAML}, reconcile.SourceSpec{Prune: true})
	ctx := t.Context()
	var good reconcile.Source
	eventually(t, "first sync", func() string {
		good = s.source(t)
		if !meta.IsStatusConditionTrue(good.Status.Conditions, reconcile.ConditionReady) {
			return "not ready"
		}
		return ""
	})
	cm, err := s.kube.CoreV1().ConfigMaps("shop").Get(ctx, "cfg", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		apply func()
		want  string
	}{
		{"yaml syntax error with a removed file", func() {
			_ = os.Remove(filepath.Join(s.dir, "app/cm.yaml"))
			writeFile(t, s.dir, "app/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n")
		}, "app/broken.yaml"},
		{"unknown field", func() {
			writeFile(t, s.dir, "app/broken.yaml", strings.Replace(deployYAML, "replicas: 2", "replicas: 2\n  replicaz: 3", 1))
		}, "replicaz"},
		{"server-side invalid", func() {
			writeFile(t, s.dir, "app/broken.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: shop}\nspec: {ports: [{port: 0}]}\n")
		}, "spec.ports[0].port"},
		{"empty tree", func() {
			for _, f := range []string{"ns.yaml", "app/deploy.yaml", "app/cm.yaml", "app/broken.yaml"} {
				_ = os.Remove(filepath.Join(s.dir, f))
			}
		}, "would prune everything"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.apply()
			eventually(t, "failure recorded", func() string {
				src := s.source(t)
				c := meta.FindStatusCondition(src.Status.Conditions, reconcile.ConditionReady)
				if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, tc.want) {
					return "Ready condition: " + conditionMessage(src)
				}
				if src.Status.LastAppliedRevision != good.Status.LastAppliedRevision {
					return "last applied revision moved"
				}
				return ""
			})
			got, err := s.kube.CoreV1().ConfigMaps("shop").Get(ctx, "cfg", metav1.GetOptions{})
			if err != nil || got.UID != cm.UID {
				t.Fatalf("configmap lost or replaced: %v", err)
			}
			if _, err := s.kube.CoreV1().Services("shop").Get(ctx, "bad", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("half-applied: service exists (%v)", err)
			}
		})
	}
}

func TestSync_driftReverted(t *testing.T) {
	s := startSync(t, map[string]string{"ns.yaml": nsYAML, "deploy.yaml": deployYAML}, reconcile.SourceSpec{Prune: true})
	ctx := t.Context()
	eventually(t, "first sync", func() string {
		if !meta.IsStatusConditionTrue(s.source(t).Status.Conditions, reconcile.ConditionReady) {
			return "not ready"
		}
		return ""
	})
	scale, err := s.kube.AppsV1().Deployments("shop").GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 7
	if _, err := s.kube.AppsV1().Deployments("shop").UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var d *appsv1.Deployment
	eventually(t, "drift reverted", func() string {
		d, err = s.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if *d.Spec.Replicas != 2 {
			return "replicas still " + itoa(int(*d.Spec.Replicas))
		}
		return ""
	})
	eventually(t, "DriftCorrected event", func() string {
		evs, err := s.kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=DriftCorrected"})
		if err != nil {
			return err.Error()
		}
		for _, e := range evs.Items {
			if strings.Contains(e.Message, "shop/web") && e.Type == corev1.EventTypeNormal {
				return ""
			}
		}
		return "no event"
	})
}

func TestSync_healthCondition(t *testing.T) {
	s := startSync(t, map[string]string{"ns.yaml": nsYAML, "deploy.yaml": deployYAML, "cm.yaml": cmYAML}, reconcile.SourceSpec{Prune: true})
	ctx := t.Context()
	healthy := func() *metav1.Condition {
		return meta.FindStatusCondition(s.source(t).Status.Conditions, reconcile.ConditionHealthy)
	}
	// No controller runs here: the Deployment stays Progressing and the
	// condition names it.
	eventually(t, "progressing", func() string {
		c := healthy()
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reconcile.HealthProgressing || !strings.Contains(c.Message, "Deployment shop/web") {
			return "Healthy condition: " + condString(c)
		}
		return ""
	})
	// Play the deployment controller: report the rollout complete.
	d, err := s.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	if _, err := s.kube.AppsV1().Deployments("shop").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "healthy", func() string {
		if c := healthy(); c == nil || c.Status != metav1.ConditionTrue {
			return "Healthy condition: " + condString(c)
		}
		return ""
	})
}

func condString(c *metav1.Condition) string {
	if c == nil {
		return "none"
	}
	return string(c.Status) + " " + c.Reason + ": " + c.Message
}

func TestSync_autoscaledReplicasLeftAlone(t *testing.T) {
	hpa := `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
`
	s := startSync(t, map[string]string{"ns.yaml": nsYAML, "deploy.yaml": deployYAML, "hpa.yaml": hpa}, reconcile.SourceSpec{Prune: true})
	ctx := t.Context()
	eventually(t, "first sync", func() string {
		if !meta.IsStatusConditionTrue(s.source(t).Status.Conditions, reconcile.ConditionReady) {
			return "not ready: " + conditionMessage(s.source(t))
		}
		return ""
	})
	// The autoscaler (played here) scales to 6; kiln must not revert it.
	scale, err := s.kube.AppsV1().Deployments("shop").GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 6
	if _, err := s.kube.AppsV1().Deployments("shop").UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A later change to the deployment's template is still applied, and
	// replicas stay where the autoscaler put them.
	writeFile(t, s.dir, "deploy.yaml", strings.Replace(deployYAML, "nginx:1.25", "nginx:1.26", 1))
	eventually(t, "template applied", func() string {
		d, err := s.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if d.Spec.Template.Spec.Containers[0].Image != "nginx:1.26" {
			return "image not updated"
		}
		if *d.Spec.Replicas != 6 {
			return "replicas reverted to " + itoa(int(*d.Spec.Replicas))
		}
		return ""
	})
}

// Adding an autoscaler to a workload kiln already applied hands replicas
// over to it: the next sync must not reset them to the default.
func TestSync_autoscalerAddedLater_keepsReplicas(t *testing.T) {
	s := startSync(t, map[string]string{"ns.yaml": nsYAML, "deploy.yaml": deployYAML}, reconcile.SourceSpec{Prune: true})
	ctx := t.Context()
	var first reconcile.Source
	eventually(t, "first sync", func() string {
		first = s.source(t)
		if !meta.IsStatusConditionTrue(first.Status.Conditions, reconcile.ConditionReady) {
			return "not ready"
		}
		return ""
	})
	writeFile(t, s.dir, "hpa.yaml", `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
`)
	eventually(t, "second sync", func() string {
		src := s.source(t)
		if src.Status.LastAppliedRevision == first.Status.LastAppliedRevision {
			return "not applied yet: " + conditionMessage(src)
		}
		return ""
	})
	d, err := s.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 {
		t.Fatalf("replicas reset to %d when the autoscaler took over", *d.Spec.Replicas)
	}
}
