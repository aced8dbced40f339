package namespace_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"

	"kiln.dev/kiln/components/controllers/namespace"
	"kiln.dev/kiln/components/testenv"
)

// start runs a control plane and the namespace controller on it until
// the test ends.
func start(t *testing.T) *testenv.Env {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	dyn, err := dynamic.NewForConfig(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	f := informers.NewSharedInformerFactory(env.Clientset, 0)
	c, err := namespace.New(namespace.Config{
		Client: env.Clientset, Dynamic: dyn, Informers: f,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	f.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		f.Shutdown()
	})
	return env
}

// eventually polls fn until it returns "" or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, fn func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if last = fn(); last == "" {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

// kubectl runs the real kubectl against env as the admin, with HOME and
// the discovery cache in env's data dir.
func kubectl(t *testing.T, env *testenv.Env, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	bin := testenv.Kubectl(t)
	home := filepath.Join(env.DataDir, "kubectl-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	full := append([]string{"--kubeconfig", env.Kubeconfig, "--cache-dir", filepath.Join(home, "cache")}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func createNamespace(t *testing.T, env *testenv.Env, name string) {
	t.Helper()
	if _, err := env.Clientset.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestController_Run_kubectlDeleteNamespace empties a namespace holding
// configmaps, a secret, a service, a ReplicaSet and its running pods:
// kubectl delete namespace returns once everything is gone.
func TestController_Run_kubectlDeleteNamespace(t *testing.T) {
	testenv.Kubectl(t)
	env := start(t)
	testenv.StandInKubelet(t, env, testenv.StandInOptions{})
	ctx, cs, ns := t.Context(), env.Clientset, "shop"
	createNamespace(t, env, ns)

	for i := range 3 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: map[string]string{"k": "v"}}
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "token"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	replicas := int32(2)
	rs, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d4b9"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec()}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No ReplicaSet controller runs here: create its pods as it would.
	yes := true
	for i := range 2 {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-7d4b9-%d", i), Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes, BlockOwnerDeletion: &yes}}},
			Spec: podSpec()}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Running pods on a node get a grace period: the controller must wait
	// for the kubelet to remove them.
	eventually(t, 30*time.Second, "pods running", func() string {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err.Error()
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning {
				return p.Name + " is " + string(p.Status.Phase)
			}
		}
		return ""
	})

	if _, err := kubectl(t, env, 75*time.Second, "delete", "namespace", ns, "--timeout=60s"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace after kubectl delete: err = %v, want NotFound", err)
	}
	dyn, err := dynamic.NewForConfig(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "configmaps"}, {Version: "v1", Resource: "secrets"}, {Version: "v1", Resource: "services"},
		{Version: "v1", Resource: "pods"}, {Group: "apps", Version: "v1", Resource: "replicasets"},
	} {
		l, err := dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Errorf("list %s: %v", gvr.Resource, err)
		} else if len(l.Items) != 0 {
			t.Errorf("%d %s left in deleted namespace", len(l.Items), gvr.Resource)
		}
	}
}

func podSpec() corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/web:1"}}}
}

// TestController_Run_finalizerHoldsNamespace checks the "list until
// empty" wait and the status conditions: an object with a finalizer keeps
// the namespace Terminating, with NamespaceContentRemaining and
// NamespaceFinalizersRemaining saying why, until the finalizer goes.
func TestController_Run_finalizerHoldsNamespace(t *testing.T) {
	env := start(t)
	ctx, cs, ns := t.Context(), env.Clientset, "held"
	createNamespace(t, env, ns)
	const hold = "example.com/hold"
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{hold}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "free"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	want := map[corev1.NamespaceConditionType]struct {
		status corev1.ConditionStatus
		reason string
		msg    string
	}{
		corev1.NamespaceDeletionDiscoveryFailure: {corev1.ConditionFalse, "ResourcesDiscovered", ""},
		corev1.NamespaceDeletionGVParsingFailure: {corev1.ConditionFalse, "ParsedGroupVersions", ""},
		corev1.NamespaceDeletionContentFailure:   {corev1.ConditionFalse, "ContentDeleted", ""},
		corev1.NamespaceContentRemaining:         {corev1.ConditionTrue, "SomeResourcesRemain", "configmaps has 1 resource instances"},
		corev1.NamespaceFinalizersRemaining:      {corev1.ConditionTrue, "SomeFinalizersRemain", hold + " in 1 resource instances"},
	}
	eventually(t, 20*time.Second, "conditions while held", func() string {
		got, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if got.Status.Phase != corev1.NamespaceTerminating {
			return "phase " + string(got.Status.Phase)
		}
		for typ, w := range want {
			i := -1
			for j, c := range got.Status.Conditions {
				if c.Type == typ {
					i = j
				}
			}
			if i < 0 {
				return "no condition " + string(typ)
			}
			c := got.Status.Conditions[i]
			if c.Status != w.status || c.Reason != w.reason || !strings.Contains(c.Message, w.msg) || c.LastTransitionTime.IsZero() {
				return fmt.Sprintf("condition %s = %s/%s %q", typ, c.Status, c.Reason, c.Message)
			}
		}
		return ""
	})
	if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "free", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("configmap without finalizer: err = %v, want NotFound", err)
	}

	// Let go: the configmap leaves, then the namespace.
	cur, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Finalizers = nil
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "namespace gone", func() string {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return ""
		}
		return fmt.Sprintf("err = %v", err)
	})
}

// TestController_Run_liveNamespaceUntouched checks that a namespace
// which is not being deleted keeps its content.
func TestController_Run_liveNamespaceUntouched(t *testing.T) {
	env := start(t)
	ctx, cs := t.Context(), env.Clientset
	createNamespace(t, env, "live")
	createNamespace(t, env, "doomed")
	for _, ns := range []string{"live", "doomed"} {
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "doomed namespace gone", func() string {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return ""
		}
		return fmt.Sprintf("err = %v", err)
	})
	if _, err := cs.CoreV1().ConfigMaps("live").Get(ctx, "cm", metav1.GetOptions{}); err != nil {
		t.Errorf("configmap in live namespace: %v", err)
	}
}

func TestNew_validates(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	dyn, err := dynamic.NewForConfig(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	f := informers.NewSharedInformerFactory(env.Clientset, 0)
	tests := []struct {
		name string
		cfg  namespace.Config
		want string
	}{
		{"no client", namespace.Config{Dynamic: dyn, Informers: f}, "Client"},
		{"no dynamic", namespace.Config{Client: env.Clientset, Informers: f}, "Dynamic"},
		{"no informers", namespace.Config{Client: env.Clientset, Dynamic: dyn}, "Informers"},
		{"negative workers", namespace.Config{Client: env.Clientset, Dynamic: dyn, Informers: f, Workers: -1}, "Workers"},
		{"retry order", namespace.Config{Client: env.Clientset, Dynamic: dyn, Informers: f, MinRetry: time.Second, MaxRetry: time.Millisecond}, "MinRetry"},
		{"defaults", namespace.Config{Client: env.Clientset, Dynamic: dyn, Informers: f}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := namespace.New(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New: err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// TestController_Run_twice refuses a second Run.
func TestController_Run_twice(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	dyn, err := dynamic.NewForConfig(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	f := informers.NewSharedInformerFactory(env.Clientset, 0)
	c, err := namespace.New(namespace.Config{Client: env.Clientset, Dynamic: dyn, Informers: f})
	if err != nil {
		t.Fatal(err)
	}
	// Whichever call comes second is refused at once; the first runs
	// until ctx is done and returns nil.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- c.Run(ctx) }()
	}
	f.Start(ctx.Done())
	if err := <-done; !errors.Is(err, namespace.ErrRunTwice) {
		t.Errorf("second Run: err = %v, want ErrRunTwice", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("first Run: %v", err)
	}
	f.Shutdown()
}
