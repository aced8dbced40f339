package garbagecollector_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/controllers/garbagecollector"
	"kiln.dev/kiln/components/testenv"
)

const (
	ns   = "default"
	hold = "example.com/hold"
	// settle bounds every wait for the collector.
	settle = 30 * time.Second
)

// runGC runs a garbage collector against env until stop or the end of
// the test.
func runGC(t *testing.T, env *testenv.Env) (stop func()) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := garbagecollector.New(garbagecollector.Config{
		Client: env.Clientset, Dynamic: dyn, DiscoveryPeriod: time.Second,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- gc.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls fn until it returns "" or settle passes.
func eventually(t *testing.T, what string, fn func() string) {
	t.Helper()
	deadline := time.Now().Add(settle)
	last := ""
	for time.Now().Before(deadline) {
		if last = fn(); last == "" {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

// owned returns a reference to a ConfigMap owner.
func owned(owner *corev1.ConfigMap, block bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID, BlockOwnerDeletion: &block}
}

func createCM(t *testing.T, cs kubernetes.Interface, name string, finalizers []string, owners ...metav1.OwnerReference) *corev1.ConfigMap {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: name, OwnerReferences: owners, Finalizers: finalizers}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func deleteCM(t *testing.T, cs kubernetes.Interface, name string, policy metav1.DeletionPropagation) {
	t.Helper()
	if err := cs.CoreV1().ConfigMaps(ns).Delete(t.Context(), name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
		t.Fatal(err)
	}
}

// cmGone waits until every named ConfigMap is gone.
func cmGone(t *testing.T, cs kubernetes.Interface, names ...string) {
	t.Helper()
	eventually(t, "configmaps "+strings.Join(names, ", ")+" gone", func() string {
		for _, name := range names {
			_, err := cs.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return fmt.Sprintf("%s: err = %v", name, err)
			}
		}
		return ""
	})
}

func getCM(t *testing.T, cs kubernetes.Interface, name string) *corev1.ConfigMap {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("configmap %s: %v", name, err)
	}
	return cm
}

// release removes every finalizer from a ConfigMap.
func release(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	patch := []byte(`{"metadata":{"finalizers":null}}`)
	if _, err := cs.CoreV1().ConfigMaps(ns).Patch(t.Context(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func ownerUIDs(cm *corev1.ConfigMap) []types.UID {
	var out []types.UID
	for _, r := range cm.OwnerReferences {
		out = append(out, r.UID)
	}
	return out
}

// TestController_Run_background deletes an owner ConfigMap without a
// propagation policy: its dependents (a ConfigMap, a Secret) and a
// grandchild are collected, and an unrelated ConfigMap stays.
func TestController_Run_background(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	runGC(t, env)
	cs := env.Clientset
	owner := createCM(t, cs, "owner", nil)
	child := createCM(t, cs, "child", nil, owned(owner, false))
	createCM(t, cs, "grandchild", nil, owned(child, true))
	createCM(t, cs, "bystander", nil)
	secret, err := cs.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: "child-secret", OwnerReferences: []metav1.OwnerReference{owned(owner, false)}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	if err := cs.CoreV1().ConfigMaps(ns).Delete(t.Context(), owner.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cmGone(t, cs, "owner", "child", "grandchild")
	eventually(t, "secret gone", func() string {
		_, err := cs.CoreV1().Secrets(ns).Get(t.Context(), secret.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return ""
		}
		return fmt.Sprintf("err = %v", err)
	})
	getCM(t, cs, "bystander")
}

// TestController_Run_orphan deletes an owner with propagationPolicy
// Orphan: the dependents survive without the reference to it (keeping
// their other references), and the owner goes.
func TestController_Run_orphan(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	runGC(t, env)
	cs := env.Clientset
	owner := createCM(t, cs, "owner", nil)
	other := createCM(t, cs, "other-owner", nil)
	createCM(t, cs, "only-child", nil, owned(owner, true))
	createCM(t, cs, "shared-child", nil, owned(owner, true), owned(other, false))

	deleteCM(t, cs, owner.Name, metav1.DeletePropagationOrphan)
	cmGone(t, cs, owner.Name)
	if refs := getCM(t, cs, "only-child").OwnerReferences; len(refs) != 0 {
		t.Errorf("only-child ownerReferences = %v, want none", refs)
	}
	if got := ownerUIDs(getCM(t, cs, "shared-child")); !slices.Equal(got, []types.UID{other.UID}) {
		t.Errorf("shared-child owner UIDs = %v, want [%s]", got, other.UID)
	}
}

// TestController_Run_foreground deletes an owner with propagationPolicy
// Foreground: it stays, with deletionTimestamp, until its blocking
// dependent is gone; a non-blocking dependent is deleted too but does not
// hold it.
func TestController_Run_foreground(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	runGC(t, env)
	cs := env.Clientset
	owner := createCM(t, cs, "owner", nil)
	createCM(t, cs, "blocker", []string{hold}, owned(owner, true))
	createCM(t, cs, "free", nil, owned(owner, false))

	deleteCM(t, cs, owner.Name, metav1.DeletePropagationForeground)
	cmGone(t, cs, "free")
	eventually(t, "blocker deleted by the collector", func() string {
		if getCM(t, cs, "blocker").DeletionTimestamp == nil {
			return "no deletionTimestamp"
		}
		return ""
	})
	o := getCM(t, cs, owner.Name)
	if o.DeletionTimestamp == nil || !slices.Contains(o.Finalizers, metav1.FinalizerDeleteDependents) {
		t.Fatalf("owner while blocker remains: deletionTimestamp %v finalizers %v, want set and %q", o.DeletionTimestamp, o.Finalizers, metav1.FinalizerDeleteDependents)
	}

	release(t, cs, "blocker")
	cmGone(t, cs, "blocker", owner.Name)
}

// TestController_Run_foregroundChain checks that the foreground wait is
// transitive: a blocking dependent with blocking dependents of its own is
// deleted in the foreground, so the top owner waits on the grandchild.
func TestController_Run_foregroundChain(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	runGC(t, env)
	cs := env.Clientset
	top := createCM(t, cs, "top", nil)
	mid := createCM(t, cs, "mid", nil, owned(top, true))
	createCM(t, cs, "leaf", []string{hold}, owned(mid, true))

	deleteCM(t, cs, top.Name, metav1.DeletePropagationForeground)
	eventually(t, "leaf deleted by the collector", func() string {
		if getCM(t, cs, "leaf").DeletionTimestamp == nil {
			return "no deletionTimestamp"
		}
		return ""
	})
	for _, name := range []string{"top", "mid"} {
		cm := getCM(t, cs, name)
		if cm.DeletionTimestamp == nil || !slices.Contains(cm.Finalizers, metav1.FinalizerDeleteDependents) {
			t.Fatalf("%s while leaf remains: deletionTimestamp %v finalizers %v", name, cm.DeletionTimestamp, cm.Finalizers)
		}
	}
	release(t, cs, "leaf")
	cmGone(t, cs, "leaf", "mid", "top")
}

// TestController_Run_cycles deletes a member of an ownership cycle in the
// foreground, every edge blocking: the cycle must not block forever.
func TestController_Run_cycles(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	runGC(t, env)
	cs := env.Clientset
	tests := []struct {
		name string
		size int
	}{
		{"self", 1},
		{"pair", 2},
		{"ring", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cms []*corev1.ConfigMap
			var names []string
			for i := range tc.size {
				name := fmt.Sprintf("%s-%d", tc.name, i)
				cms = append(cms, createCM(t, cs, name, nil))
				names = append(names, name)
			}
			// cms[i] is owned by cms[i+1], the last by the first.
			for i, cm := range cms {
				cm.OwnerReferences = []metav1.OwnerReference{owned(cms[(i+1)%len(cms)], true)}
				if _, err := cs.CoreV1().ConfigMaps(ns).Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			deleteCM(t, cs, names[0], metav1.DeletePropagationForeground)
			cmGone(t, cs, names...)
		})
	}
}

// TestController_Run_danglingOwner collects dependents whose owner never
// existed, or whose owner's name now holds another UID, and keeps the
// object of that name.
func TestController_Run_danglingOwner(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	runGC(t, env)
	cs := env.Clientset
	real := createCM(t, cs, "real", nil)
	ghost := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ghost", UID: uuid.NewUUID()}}
	impostor := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: real.Name, UID: uuid.NewUUID()}}
	createCM(t, cs, "ghost-child", nil, owned(ghost, false))
	createCM(t, cs, "impostor-child", nil, owned(impostor, true))
	if _, err := cs.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: "ghost-secret", OwnerReferences: []metav1.OwnerReference{owned(ghost, false)}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	real.OwnerReferences = nil
	createCM(t, cs, "real-child", nil, owned(real, true))

	cmGone(t, cs, "ghost-child", "impostor-child")
	eventually(t, "ghost-secret gone", func() string {
		_, err := cs.CoreV1().Secrets(ns).Get(t.Context(), "ghost-secret", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return ""
		}
		return fmt.Sprintf("err = %v", err)
	})
	getCM(t, cs, "real")
	getCM(t, cs, "real-child")
}

// TestController_Run_twoOwners deletes one of a dependent's two owners:
// the dependent stays and drops the reference to the gone owner; deleting
// the second owner then collects it.
func TestController_Run_twoOwners(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	runGC(t, env)
	cs := env.Clientset
	a := createCM(t, cs, "owner-a", nil)
	b := createCM(t, cs, "owner-b", nil)
	createCM(t, cs, "shared", nil, owned(a, true), owned(b, true))

	deleteCM(t, cs, a.Name, metav1.DeletePropagationBackground)
	eventually(t, "reference to the gone owner dropped", func() string {
		if got := ownerUIDs(getCM(t, cs, "shared")); !slices.Equal(got, []types.UID{b.UID}) {
			return fmt.Sprintf("owner UIDs %v", got)
		}
		return ""
	})
	if cm := getCM(t, cs, "shared"); cm.DeletionTimestamp != nil {
		t.Fatalf("shared is being deleted while owner-b exists")
	}

	deleteCM(t, cs, b.Name, metav1.DeletePropagationBackground)
	cmGone(t, cs, "shared")
}

// TestController_Run_replicaSetPods deletes a ReplicaSet in the
// foreground while its pods run on a node: it stays until the kubelet has
// removed them, then goes.
func TestController_Run_replicaSetPods(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	testenv.StandInKubelet(t, env, testenv.StandInOptions{})
	runGC(t, env)
	ctx, cs := t.Context(), env.Clientset
	labels := map[string]string{"app": "web"}
	replicas := int32(2)
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/web:1"}}}
	rs, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No ReplicaSet controller runs here: create its pods as it would.
	yes := true
	for i := range 2 {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes, BlockOwnerDeletion: &yes}}},
			Spec: spec}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "pods running", func() string {
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

	// Deleted through the dynamic client, as kubectl and the controllers
	// do: the typed apps/v1 client sends DeleteOptions as apps/v1, which
	// the API server does not decode yet.
	dyn, err := dynamic.NewForConfig(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	fg := metav1.DeletePropagationForeground
	rsGVR := appsv1.SchemeGroupVersion.WithResource("replicasets")
	if err := dyn.Resource(rsGVR).Namespace(ns).Delete(ctx, rs.Name, metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	// Until both pods are gone, the ReplicaSet must still be there.
	eventually(t, "pods and then the replicaset gone", func() string {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err.Error()
		}
		got, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, rs.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) && len(pods.Items) > 0:
			t.Fatalf("replicaset gone while %d pods remain", len(pods.Items))
		case apierrors.IsNotFound(err):
			return ""
		case err != nil:
			return err.Error()
		case got.DeletionTimestamp == nil:
			t.Fatal("replicaset has no deletionTimestamp")
		}
		return fmt.Sprintf("%d pods remain", len(pods.Items))
	})
}

// TestController_Run_convergesAfterRestart stops the collector in the
// middle of a foreground cascade and while deletions pile up, then starts
// a new one, as a new leader would: everything converges.
func TestController_Run_convergesAfterRestart(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	stop := runGC(t, env)

	fgOwner := createCM(t, cs, "fg-owner", nil)
	createCM(t, cs, "fg-blocker", []string{hold}, owned(fgOwner, true))
	deleteCM(t, cs, fgOwner.Name, metav1.DeletePropagationForeground)
	eventually(t, "fg-blocker deleted by the collector", func() string {
		if getCM(t, cs, "fg-blocker").DeletionTimestamp == nil {
			return "no deletionTimestamp"
		}
		return ""
	})
	stop()

	// While no collector runs: the blocker is released, one owner is
	// deleted in the background and one orphaning.
	release(t, cs, "fg-blocker")
	bgOwner := createCM(t, cs, "bg-owner", nil)
	createCM(t, cs, "bg-child", nil, owned(bgOwner, false))
	orphOwner := createCM(t, cs, "orph-owner", nil)
	createCM(t, cs, "orph-child", nil, owned(orphOwner, true))
	deleteCM(t, cs, bgOwner.Name, metav1.DeletePropagationBackground)
	deleteCM(t, cs, orphOwner.Name, metav1.DeletePropagationOrphan)
	if o := getCM(t, cs, "orph-owner"); !slices.Contains(o.Finalizers, metav1.FinalizerOrphanDependents) {
		t.Fatalf("orph-owner finalizers = %v", o.Finalizers)
	}

	runGC(t, env)
	cmGone(t, cs, "fg-blocker", "fg-owner", "bg-child", "orph-owner")
	if refs := getCM(t, cs, "orph-child").OwnerReferences; len(refs) != 0 {
		t.Errorf("orph-child ownerReferences = %v, want none", refs)
	}
}

func TestNew_validates(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	dyn, err := dynamic.NewForConfig(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  garbagecollector.Config
		want string
	}{
		{"no dynamic", garbagecollector.Config{Client: env.Clientset}, "Dynamic"},
		{"no client or discovery", garbagecollector.Config{Dynamic: dyn}, "Discovery"},
		{"negative workers", garbagecollector.Config{Client: env.Clientset, Dynamic: dyn, Workers: -1}, "Workers"},
		{"negative period", garbagecollector.Config{Client: env.Clientset, Dynamic: dyn, DiscoveryPeriod: -time.Second}, "DiscoveryPeriod"},
		{"discovery only", garbagecollector.Config{Discovery: env.Clientset.Discovery(), Dynamic: dyn}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := garbagecollector.New(tc.cfg)
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
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	dyn, err := dynamic.NewForConfig(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := garbagecollector.New(garbagecollector.Config{Client: env.Clientset, Dynamic: dyn,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Whichever call comes second is refused at once; the first runs
	// until ctx is done and returns nil.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- gc.Run(ctx) }()
	}
	if err := <-done; !errors.Is(err, garbagecollector.ErrRunTwice) {
		t.Errorf("second Run: err = %v, want refused", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("first Run: %v", err)
	}
}
