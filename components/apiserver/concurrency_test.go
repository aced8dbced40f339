package apiserver_test

// Optimistic concurrency and dry-run (RELIABILITY.md promises 3 and 7)
// against a real etcd and the HTTPS API server.

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/components/testenv"
)

// TestUpdate_readModifyWrite_counterEqualsAcknowledgedWrites: 20 writers
// each increment one ConfigMap counter 5 times by Get, +1 and Update with
// the resourceVersion read, retrying on 409 with a fresh read. The final
// value is the number of 2xx updates, and the 2xx updates wrote each value
// 1..100 exactly once (no lost update, no double write).
func TestUpdate_readModifyWrite_counterEqualsAcknowledgedWrites(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	cms := env.Clientset.CoreV1().ConfigMaps("default")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "counter"}, Data: map[string]string{"n": "0"}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const writers, increments, maxAttempts = 20, 5, 2000
	var ok2xx, conflicts atomic.Int64
	var mu sync.Mutex
	var written []int
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range writers {
		wg.Go(func() {
			<-start
			attempts := 0
			for range increments {
				for {
					attempts++
					if attempts > maxAttempts {
						t.Errorf("writer %d: no progress after %d attempts", g, maxAttempts)
						return
					}
					cur, err := cms.Get(ctx, "counter", metav1.GetOptions{})
					if err != nil {
						t.Errorf("writer %d: get: %v", g, err)
						return
					}
					n, err := strconv.Atoi(cur.Data["n"])
					if err != nil {
						t.Errorf("writer %d: counter %q: %v", g, cur.Data["n"], err)
						return
					}
					cur.Data["n"] = strconv.Itoa(n + 1)
					_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
					if apierrors.IsConflict(err) {
						conflicts.Add(1)
						continue
					}
					if err != nil {
						t.Errorf("writer %d: update: %v", g, err)
						return
					}
					ok2xx.Add(1)
					mu.Lock()
					written = append(written, n+1)
					mu.Unlock()
					break
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	final, err := cms.Get(ctx, "counter", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := final.Data["n"]; got != strconv.FormatInt(ok2xx.Load(), 10) {
		t.Fatalf("counter %s after %d acknowledged updates", got, ok2xx.Load())
	}
	if ok2xx.Load() != writers*increments {
		t.Fatalf("%d acknowledged updates, want %d", ok2xx.Load(), writers*increments)
	}
	slices.Sort(written)
	for i, v := range written {
		if v != i+1 {
			t.Fatalf("acknowledged updates wrote %v, want each of 1..%d once", written, len(written))
		}
	}
	t.Logf("%d acknowledged updates, %d conflicts (409) retried", ok2xx.Load(), conflicts.Load())
	if conflicts.Load() == 0 {
		t.Errorf("20 concurrent writers never conflicted; the test did not exercise optimistic concurrency")
	}
}

// TestUpdate_staleResourceVersion_conflictChangesNothing: an update or a
// patch carrying a resourceVersion that is no longer current answers 409
// Conflict and leaves the object as it was.
func TestUpdate_staleResourceVersion_conflictChangesNothing(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	cms := env.Clientset.CoreV1().ConfigMaps("default")
	v1, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"v": "1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale := v1.DeepCopy()
	v1.Data["v"] = "2"
	v2, err := cms.Update(ctx, v1, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale.Data["v"] = "stale"
	if _, err := cms.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("update with stale RV %s: %v, want 409 Conflict", stale.ResourceVersion, err)
	}
	patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q},"data":{"v":"stale"}}`, stale.ResourceVersion)
	if _, err := cms.Patch(ctx, "c", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("patch with stale RV: %v, want 409 Conflict", err)
	}
	got, err := cms.Get(ctx, "c", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != v2.ResourceVersion || got.Data["v"] != "2" {
		t.Fatalf("after conflicts: v=%q rv=%s, want v=2 rv=%s", got.Data["v"], got.ResourceVersion, v2.ResourceVersion)
	}
}

// TestCreate_sameNameConcurrently_oneWins: 20 simultaneous creates of one
// name: exactly one 201, every other 409 AlreadyExists, and the stored
// object is the winner's.
func TestCreate_sameNameConcurrently_oneWins(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	cms := env.Clientset.CoreV1().ConfigMaps("default")
	const racers, rounds = 20, 5
	for round := range rounds {
		name := fmt.Sprintf("dup-%d", round)
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, racers)
		uids := make([]types.UID, racers)
		for i := range racers {
			wg.Go(func() {
				<-start
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"by": strconv.Itoa(i)}}
				out, err := cms.Create(ctx, cm, metav1.CreateOptions{})
				errs[i] = err
				if err == nil {
					uids[i] = out.UID
				}
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: racers %d and %d both got 201", round, winner, i)
				}
				winner = i
			case apierrors.IsAlreadyExists(err):
				if code := err.(apierrors.APIStatus).Status().Code; code != http.StatusConflict {
					t.Fatalf("round %d: AlreadyExists with code %d, want 409", round, code)
				}
			default:
				t.Fatalf("round %d racer %d: %v, want 201 or 409 AlreadyExists", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no create succeeded", round)
		}
		got, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Data["by"] != strconv.Itoa(winner) || got.UID != uids[winner] {
			t.Fatalf("round %d: stored object by %q uid %s, want the winner %d uid %s", round, got.Data["by"], got.UID, winner, uids[winner])
		}
	}
}

// ddState is everything a dry run could touch: the etcd revision and each
// object of the test namespace (resourceVersion and content).
type ddState struct {
	rev     int64
	objects map[string]string
}

func ddSnapshot(t *testing.T, env *testenv.Env, cs kubernetes.Interface) ddState {
	t.Helper()
	ctx := t.Context()
	rev, err := env.Store.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]string{}
	cms, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range cms.Items {
		objs["cm/"+o.Name] = fmt.Sprintf("%s %v %v %v", o.ResourceVersion, o.Data, o.Labels, o.DeletionTimestamp)
	}
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range pods.Items {
		objs["pod/"+o.Name] = fmt.Sprintf("%s %v %v %q %v %v", o.ResourceVersion, o.Labels, o.DeletionTimestamp, o.Spec.NodeName, o.Status.Phase, o.Status.Conditions)
	}
	return ddState{rev: rev, objects: objs}
}

// TestDryRun_everyVerb_neverPersists: with dryRun=All, create, update,
// every patch type, server-side apply, the status and binding subresources,
// delete (dryRun in the body or the query) and deletecollection answer as
// if they had worked, but the etcd revision does not move and no object
// changes (api-concepts §Dry-run).
func TestDryRun_everyVerb_neverPersists(t *testing.T) {
	// No compactor: its bookkeeping write would move the revision.
	env := testenv.Start(t, testenv.Options{Store: store.Config{CompactInterval: -1}})
	ctx := t.Context()
	cs := env.Clientset
	cms := cs.CoreV1().ConfigMaps("default")
	pods := cs.CoreV1().Pods("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Labels: map[string]string{"k": "v"}}, Data: map[string]string{"a": "1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fin := wcPod("fin", nil)
	fin.Finalizers = []string{"example.com/keep"}
	if _, err := pods.Create(ctx, fin, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Create(ctx, wcPod("plain", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dry := []string{metav1.DryRunAll}
	cmRV := func() string {
		cm, err := cms.Get(ctx, "cm", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cm.ResourceVersion
	}

	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"create", func() error {
			out, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "new"}, Data: map[string]string{"x": "y"}}, metav1.CreateOptions{DryRun: dry})
			if err == nil && (out.Name != "new" || out.Data["x"] != "y") {
				err = fmt.Errorf("dry-run create answered %+v", out)
			}
			return err
		}},
		{"create generateName", func() error {
			_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{DryRun: dry})
			return err
		}},
		{"create pod", func() error {
			_, err := pods.Create(ctx, wcPod("newpod", nil), metav1.CreateOptions{DryRun: dry})
			return err
		}},
		{"update", func() error {
			cm, err := cms.Get(ctx, "cm", metav1.GetOptions{})
			if err != nil {
				return err
			}
			cm.Data["a"] = "2"
			out, err := cms.Update(ctx, cm, metav1.UpdateOptions{DryRun: dry})
			if err == nil && out.Data["a"] != "2" {
				err = fmt.Errorf("dry-run update answered %v", out.Data)
			}
			return err
		}},
		{"update with resourceVersion", func() error {
			_, err := cms.Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", ResourceVersion: cmRV()}, Data: map[string]string{"a": "3"}}, metav1.UpdateOptions{DryRun: dry})
			return err
		}},
		{"merge patch", func() error {
			_, err := cms.Patch(ctx, "cm", types.MergePatchType, []byte(`{"data":{"a":"m"}}`), metav1.PatchOptions{DryRun: dry})
			return err
		}},
		{"json patch", func() error {
			_, err := cms.Patch(ctx, "cm", types.JSONPatchType, []byte(`[{"op":"replace","path":"/data/a","value":"j"}]`), metav1.PatchOptions{DryRun: dry})
			return err
		}},
		{"strategic merge patch", func() error {
			_, err := cms.Patch(ctx, "cm", types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"k":"s"}}}`), metav1.PatchOptions{DryRun: dry})
			return err
		}},
		{"apply existing", func() error {
			_, err := cms.Patch(ctx, "cm", types.ApplyPatchType, []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"a":"applied"}}`), metav1.PatchOptions{DryRun: dry, FieldManager: "test"})
			return err
		}},
		{"apply new", func() error {
			_, err := cms.Patch(ctx, "applied", types.ApplyPatchType, []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"applied"},"data":{"a":"1"}}`), metav1.PatchOptions{DryRun: dry, FieldManager: "test"})
			return err
		}},
		{"update status", func() error {
			p, err := pods.Get(ctx, "plain", metav1.GetOptions{})
			if err != nil {
				return err
			}
			p.Status.Phase = corev1.PodRunning
			_, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{DryRun: dry})
			return err
		}},
		{"bind", func() error {
			return pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{DryRun: dry})
		}},
		{"delete", func() error {
			return cms.Delete(ctx, "cm", metav1.DeleteOptions{DryRun: dry})
		}},
		{"delete with dryRun in the query", func() error {
			return cs.CoreV1().RESTClient().Delete().Namespace("default").Resource("configmaps").Name("cm").
				Param("dryRun", metav1.DryRunAll).Do(ctx).Error()
		}},
		{"delete pod", func() error {
			return pods.Delete(ctx, "plain", metav1.DeleteOptions{DryRun: dry})
		}},
		{"delete with finalizer", func() error {
			return pods.Delete(ctx, "fin", metav1.DeleteOptions{DryRun: dry})
		}},
		{"delete foreground", func() error {
			fg := metav1.DeletePropagationForeground
			return cms.Delete(ctx, "cm", metav1.DeleteOptions{DryRun: dry, PropagationPolicy: &fg})
		}},
		{"deletecollection", func() error {
			return cms.DeleteCollection(ctx, metav1.DeleteOptions{DryRun: dry}, metav1.ListOptions{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ddSnapshot(t, env, cs)
			if err := tc.do(); err != nil {
				t.Fatalf("dry run: %v", err)
			}
			after := ddSnapshot(t, env, cs)
			if after.rev != before.rev {
				t.Errorf("etcd revision moved from %d to %d", before.rev, after.rev)
			}
			for k, v := range before.objects {
				if after.objects[k] != v {
					t.Errorf("%s changed:\nbefore %s\nafter  %s", k, v, after.objects[k])
				}
			}
			for k := range after.objects {
				if _, ok := before.objects[k]; !ok {
					t.Errorf("%s was created", k)
				}
			}
		})
	}

	// The same write without dryRun moves the revision: the check above
	// can see a write.
	before := ddSnapshot(t, env, cs)
	if _, err := cms.Patch(ctx, "cm", types.MergePatchType, []byte(`{"data":{"a":"real"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if after := ddSnapshot(t, env, cs); after.rev == before.rev {
		t.Fatalf("a real patch did not move the revision (%d)", after.rev)
	}
}

// client-go's typed clients tag DeleteOptions with the resource's own
// group version (protobuf and JSON alike); kube accepts that, and so must
// kiln.
func TestDelete_typedClientOutsideCoreGroup(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	for _, contentType := range []string{"application/json", ""} {
		rc := rest.CopyConfig(env.RESTConfig)
		rc.ContentType = contentType
		cs := kubernetes.NewForConfigOrDie(rc)
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "default"}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}}}
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		bg := metav1.DeletePropagationBackground
		if err := cs.AppsV1().Deployments("default").Delete(ctx, "d", metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
			t.Fatalf("delete with content type %q: %v", contentType, err)
		}
	}
}
