package statefulset

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/testenv"
)

// waitLimit bounds every wait for the controller.
const waitLimit = 15 * time.Second

// startController runs the controller against a real API server with the
// stand-in kubelet, which binds and starts Pods but leaves them unready:
// the test makes them Ready by hand, to see the order.
func startController(t *testing.T) (kubernetes.Interface, *testenv.Env) {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	testenv.StandInKubelet(t, env, testenv.StandInOptions{Ready: func(*corev1.Pod) bool { return false }})
	cs := env.Clientset
	f := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(Config{Client: cs, Informers: f})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	f.Start(ctx.Done())
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		f.Shutdown()
	})
	return cs, env
}

// kubectl runs the real kubectl against env and returns its output.
func kubectl(t *testing.T, env *testenv.Env, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Kubectl(t), append([]string{"--kubeconfig", env.Kubeconfig, "-n", "default"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// podNames lists the set's live Pods (not terminating) by name.
func podNames(t *testing.T, cs kubernetes.Interface, set string) []string {
	t.Helper()
	l, err := cs.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{LabelSelector: "app=" + set})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out
}

func getPod(t *testing.T, cs kubernetes.Interface, name string) *corev1.Pod {
	t.Helper()
	p, err := cs.CoreV1().Pods("default").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// makeReady waits for the stand-in kubelet to start the Pod, then marks
// it Ready, as a passing readiness probe would.
func makeReady(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	var p *corev1.Pod
	eventually(t, name+" running", func() bool {
		var err error
		p, err = cs.CoreV1().Pods("default").Get(t.Context(), name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning
	})
	now := metav1.Now()
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
	if _, err := cs.CoreV1().Pods("default").UpdateStatus(t.Context(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// stays checks that the set's Pods stay names for a while: the
// controller must be waiting, not merely slow.
func stays(t *testing.T, cs kubernetes.Interface, set string, names ...string) {
	t.Helper()
	for range 10 {
		if got := podNames(t, cs, set); !slices.Equal(got, names) {
			t.Fatalf("pods %v, want %v while waiting", got, names)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// patchSet changes the set's spec by a strategic merge patch, which does
// not conflict with the controller's status writes.
func patchSet(t *testing.T, cs kubernetes.Interface, name, patch string) {
	t.Helper()
	if _, err := cs.AppsV1().StatefulSets("default").Patch(t.Context(), name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func newSet(name string, replicas int32) *appsv1.StatefulSet {
	lbls := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
}

// TestController_orderedReady: Pods come one at a time, each once the one
// before is Ready, with their stable identity and claims; a template
// change replaces them from the highest ordinal down, stopping at the
// partition; scaling down removes the highest first and keeps the claims.
func TestController_orderedReady(t *testing.T) {
	cs, env := startController(t)
	ctx := t.Context()
	if _, err := cs.AppsV1().StatefulSets("default").Create(ctx, newSet("web", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web-0", func() bool { return len(podNames(t, cs, "web")) == 1 })
	stays(t, cs, "web", "web-0")

	p := getPod(t, cs, "web-0")
	if p.Spec.Hostname != "web-0" || p.Spec.Subdomain != "web" {
		t.Errorf("hostname %q subdomain %q, want web-0 and web", p.Spec.Hostname, p.Spec.Subdomain)
	}
	if p.Labels[LabelPodName] != "web-0" || p.Labels[LabelPodIndex] != "0" || p.Labels[LabelRevision] == "" {
		t.Errorf("labels %v", p.Labels)
	}
	if i := slices.IndexFunc(p.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == "data" && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "data-web-0"
	}); i < 0 {
		t.Errorf("no volume for claim data-web-0: %+v", p.Spec.Volumes)
	}
	claim, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if claim.Labels["app"] != "web" || claim.Spec.Resources.Requests.Storage().String() != "1Gi" {
		t.Errorf("claim labels %v, request %v", claim.Labels, claim.Spec.Resources.Requests)
	}

	for i := range 3 {
		makeReady(t, cs, fmt.Sprintf("web-%d", i))
		if i < 2 {
			want := fmt.Sprintf("web-%d", i+1)
			eventually(t, want, func() bool { return slices.Contains(podNames(t, cs, "web"), want) })
		}
	}
	var set *appsv1.StatefulSet
	eventually(t, "3 ready", func() bool {
		set, err = cs.AppsV1().StatefulSets("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && set.Status.ReadyReplicas == 3 && set.Status.UpdatedReplicas == 3 && set.Status.ObservedGeneration == set.Generation
	})
	oldRev := set.Status.CurrentRevision
	if oldRev == "" || set.Status.UpdateRevision != oldRev {
		t.Fatalf("revisions current %q update %q", oldRev, set.Status.UpdateRevision)
	}
	// The API defaults partition to 0, so kubectl reports a partitioned
	// roll out, as it does against kube.
	if out := kubectl(t, env, "rollout", "status", "statefulset/web", "--timeout=10s"); !strings.Contains(out, "partitioned roll out complete: 3 new pods have been updated") {
		t.Errorf("kubectl rollout status: %q", out)
	}

	// A new template with partition 1: web-2 then web-1 are replaced,
	// each once the one above is Ready; web-0 keeps the old revision.
	uids := map[string]string{}
	for _, n := range []string{"web-0", "web-1", "web-2"} {
		uids[n] = string(getPod(t, cs, n).UID)
	}
	patchSet(t, cs, "web", `{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}},"template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}`)
	replaced := func(n string) func() bool {
		return func() bool {
			p, err := cs.CoreV1().Pods("default").Get(ctx, n, metav1.GetOptions{})
			return err == nil && string(p.UID) != uids[n] && p.DeletionTimestamp == nil
		}
	}
	eventually(t, "web-2 replaced", replaced("web-2"))
	if img := getPod(t, cs, "web-2").Spec.Containers[0].Image; img != "app:2" {
		t.Errorf("web-2 image %s after the update", img)
	}
	time.Sleep(200 * time.Millisecond)
	if replaced("web-1")() {
		t.Fatal("web-1 replaced before web-2 was Ready")
	}
	makeReady(t, cs, "web-2")
	eventually(t, "web-1 replaced", replaced("web-1"))
	makeReady(t, cs, "web-1")
	eventually(t, "2 updated", func() bool {
		set, err = cs.AppsV1().StatefulSets("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && set.Status.UpdatedReplicas == 2 && set.Status.ReadyReplicas == 3
	})
	if replaced("web-0")() {
		t.Fatal("web-0, below the partition, was replaced")
	}
	if set.Status.CurrentRevision != oldRev || set.Status.UpdateRevision == oldRev {
		t.Errorf("mid-partition revisions current %q update %q, old %q", set.Status.CurrentRevision, set.Status.UpdateRevision, oldRev)
	}
	if out := kubectl(t, env, "rollout", "status", "statefulset/web", "--timeout=10s"); !strings.Contains(out, "partitioned roll out complete: 2 new pods have been updated") {
		t.Errorf("kubectl rollout status mid-partition: %q", out)
	}
	if out := kubectl(t, env, "rollout", "history", "statefulset/web"); !strings.Contains(out, "1 ") || !strings.Contains(out, "2 ") {
		t.Errorf("kubectl rollout history: %q", out)
	}
	// Below the partition a deleted Pod comes back at the old revision.
	if err := cs.CoreV1().Pods("default").Delete(ctx, "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web-0 back", replaced("web-0"))
	if p := getPod(t, cs, "web-0"); p.Spec.Containers[0].Image != "app:1" || p.Labels[LabelRevision] != oldRev {
		t.Errorf("web-0 came back with image %s revision %s, want app:1 %s", p.Spec.Containers[0].Image, p.Labels[LabelRevision], oldRev)
	}
	makeReady(t, cs, "web-0")

	// kubectl rollout undo puts the first template back; its revision
	// becomes the newest and the updated Pods roll back to it.
	kubectl(t, env, "rollout", "undo", "statefulset/web")
	eventually(t, "web-2 rolled back", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "web-2", metav1.GetOptions{})
		return err == nil && p.Labels[LabelRevision] == oldRev && p.DeletionTimestamp == nil
	})
	if p := getPod(t, cs, "web-2"); p.Spec.Containers[0].Image != "app:1" {
		t.Errorf("web-2 image %s after undo", p.Spec.Containers[0].Image)
	}
	rev, err := cs.AppsV1().ControllerRevisions("default").Get(ctx, oldRev, metav1.GetOptions{})
	if err != nil || rev.Revision != 3 {
		t.Errorf("revision %s after undo: %v, number %d, want 3", oldRev, err, rev.Revision)
	}
	makeReady(t, cs, "web-2")
	eventually(t, "web-1 rolled back", func() bool {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "web-1", metav1.GetOptions{})
		return err == nil && p.Labels[LabelRevision] == oldRev && p.DeletionTimestamp == nil
	})
	makeReady(t, cs, "web-1")
	eventually(t, "current revision back", func() bool {
		set, err = cs.AppsV1().StatefulSets("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && set.Status.CurrentRevision == oldRev && set.Status.UpdateRevision == oldRev && set.Status.UpdatedReplicas == 3
	})

	// Scale down to 1: web-2 goes first, then web-1; claims stay.
	patchSet(t, cs, "web", `{"spec":{"replicas":1}}`)
	eventually(t, "scaled to 1", func() bool { return slices.Equal(podNames(t, cs, "web"), []string{"web-0"}) })
	for _, n := range []string{"data-web-1", "data-web-2"} {
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, n, metav1.GetOptions{}); err != nil {
			t.Errorf("claim %s after scale down: %v", n, err)
		}
	}
	revs, err := cs.AppsV1().ControllerRevisions("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(revs.Items) != 2 {
		t.Errorf("controllerrevisions: %v, %d (want 2)", err, len(revs.Items))
	}
}

// TestController_parallel: Parallel creates every Pod at once, without
// waiting for readiness; a failed Pod is replaced under its name; a
// template change still replaces one Pod at a time.
func TestController_parallel(t *testing.T) {
	cs, _ := startController(t)
	ctx := t.Context()
	set := newSet("db", 3)
	set.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	set.Spec.VolumeClaimTemplates = nil
	if _, err := cs.AppsV1().StatefulSets("default").Create(ctx, set, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "3 pods", func() bool { return slices.Equal(podNames(t, cs, "db"), []string{"db-0", "db-1", "db-2"}) })

	p := getPod(t, cs, "db-1")
	eventually(t, "db-1 running", func() bool { p = getPod(t, cs, "db-1"); return p.Status.Phase == corev1.PodRunning })
	p.Status.Phase = corev1.PodFailed
	if _, err := cs.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "db-1 replaced", func() bool {
		q, err := cs.CoreV1().Pods("default").Get(ctx, "db-1", metav1.GetOptions{})
		return err == nil && q.UID != p.UID
	})

	// Parallel still updates one Pod at a time, highest first, each once
	// the one above is Ready.
	uid1 := getPod(t, cs, "db-1").UID
	uid2 := getPod(t, cs, "db-2").UID
	patchSet(t, cs, "db", `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}`)
	eventually(t, "db-2 replaced", func() bool {
		q, err := cs.CoreV1().Pods("default").Get(ctx, "db-2", metav1.GetOptions{})
		return err == nil && q.UID != uid2 && q.DeletionTimestamp == nil
	})
	time.Sleep(200 * time.Millisecond)
	if getPod(t, cs, "db-1").UID != uid1 {
		t.Fatal("db-1 replaced before db-2 was Ready")
	}
	makeReady(t, cs, "db-2")
	eventually(t, "db-1 replaced", func() bool {
		q, err := cs.CoreV1().Pods("default").Get(ctx, "db-1", metav1.GetOptions{})
		return err == nil && q.UID != uid1
	})

	// Deleting the set leaves nothing waiting on it.
	if err := cs.AppsV1().StatefulSets("default").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "set gone", func() bool {
		_, err := cs.AppsV1().StatefulSets("default").Get(ctx, "db", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

// TestController_claimRetention: with persistentvolumeClaimRetentionPolicy
// Delete, a claim is owned by its set (whenDeleted), and a condemned Pod
// is made the owner of its claim before it goes (whenScaled), so that the
// garbage collector deletes the claims after them.
func TestController_claimRetention(t *testing.T) {
	cs, _ := startController(t)
	ctx := t.Context()
	set := newSet("kv", 2)
	set.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	set.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
		WhenScaled:  appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
	}
	created, err := cs.AppsV1().StatefulSets("default").Create(ctx, set, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "2 pods", func() bool { return slices.Equal(podNames(t, cs, "kv"), []string{"kv-0", "kv-1"}) })
	owners := func(claim string) []metav1.OwnerReference {
		c, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("claim %s: %v", claim, err)
		}
		return c.OwnerReferences
	}
	for _, n := range []string{"data-kv-0", "data-kv-1"} {
		if refs := owners(n); len(refs) != 1 || refs[0].UID != created.UID || refs[0].Kind != "StatefulSet" {
			t.Errorf("claim %s owners %+v, want the set", n, refs)
		}
	}
	pod1 := getPod(t, cs, "kv-1")
	patchSet(t, cs, "kv", `{"spec":{"replicas":1}}`)
	eventually(t, "scaled to 1", func() bool { return slices.Equal(podNames(t, cs, "kv"), []string{"kv-0"}) })
	refs := owners("data-kv-1")
	if !slices.ContainsFunc(refs, func(r metav1.OwnerReference) bool { return r.UID == pod1.UID && r.Kind == "Pod" }) {
		t.Errorf("claim data-kv-1 owners %+v after scale down, want pod kv-1 among them", refs)
	}
	if refs := owners("data-kv-0"); slices.ContainsFunc(refs, func(r metav1.OwnerReference) bool { return r.Kind == "Pod" }) {
		t.Errorf("claim data-kv-0 of a kept pod owned by a pod: %+v", refs)
	}
}
