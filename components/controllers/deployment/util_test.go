package deployment

import (
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func testDeployment(replicas int32, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "d-uid", Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1"}}},
			},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
			RevisionHistoryLimit:    new(int32(10)),
			ProgressDeadlineSeconds: new(int32(600)),
		},
	}
}

// testRS is a ReplicaSet of size spec with available pods, created age
// seconds after an epoch, annotated as scaled for a Deployment of maxRS.
func testRS(name string, spec, available int32, age int, maxReplicas int32) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "ns", UID: types.UID(name + "-uid"),
			CreationTimestamp: metav1.NewTime(time.Unix(1_000_000+int64(age), 0)),
			Annotations:       map[string]string{},
		},
		Spec:   appsv1.ReplicaSetSpec{Replicas: new(spec)},
		Status: appsv1.ReplicaSetStatus{Replicas: spec, ReadyReplicas: available, AvailableReplicas: available},
	}
	if maxReplicas > 0 {
		rs.Annotations[AnnotationMaxReplicas] = itoa(maxReplicas)
	}
	return rs
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func TestResolveFenceposts(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		surge, unavailable     intstr.IntOrString
		desired                int32
		wantSurge, wantUnavail int32
	}{
		{"ints", intstr.FromInt32(1), intstr.FromInt32(0), 3, 1, 0},
		{"25% of 3: surge rounds up, unavailable down", intstr.FromString("25%"), intstr.FromString("25%"), 3, 1, 0},
		{"25% of 10", intstr.FromString("25%"), intstr.FromString("25%"), 10, 3, 2},
		{"both resolve to zero: unavailable becomes 1", intstr.FromString("0%"), intstr.FromString("10%"), 5, 0, 1},
		{"zero replicas", intstr.FromString("25%"), intstr.FromString("25%"), 0, 0, 1},
		{"100%", intstr.FromString("100%"), intstr.FromString("100%"), 4, 4, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, u, err := resolveFenceposts(&tc.surge, &tc.unavailable, tc.desired)
			if err != nil {
				t.Fatal(err)
			}
			if s != tc.wantSurge || u != tc.wantUnavail {
				t.Errorf("got surge %d unavailable %d, want %d %d", s, u, tc.wantSurge, tc.wantUnavail)
			}
		})
	}
	if _, _, err := resolveFenceposts(new(intstr.FromString("lots")), nil, 3); err == nil {
		t.Error("invalid maxSurge: want an error")
	}
}

func TestMaxUnavailable(t *testing.T) {
	d := testDeployment(2, intstr.FromInt32(0), intstr.FromInt32(5))
	if got := maxUnavailable(d); got != 2 {
		t.Errorf("maxUnavailable above replicas = %d, want clamped to 2", got)
	}
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if got, s := maxUnavailable(d), maxSurge(d); got != 0 || s != 0 {
		t.Errorf("recreate: maxUnavailable %d maxSurge %d, want 0 0", got, s)
	}
}

func TestNewRSNewReplicas(t *testing.T) {
	for _, tc := range []struct {
		name     string
		surge    intstr.IntOrString
		old, new int32
		oldPods  int32 // old's status.replicas when it differs from its size
		want     int32
	}{
		{"first rollout takes all", intstr.FromInt32(1), 0, 0, 0, 3},
		{"surge one above the old", intstr.FromInt32(1), 3, 0, 0, 1},
		{"at the surge limit: hold", intstr.FromInt32(1), 3, 1, 0, 1},
		{"old scaled down: grow", intstr.FromInt32(1), 2, 1, 0, 2},
		{"old scaled down, its pod not yet gone: hold", intstr.FromInt32(1), 2, 1, 3, 1},
		{"never past replicas", intstr.FromInt32(5), 1, 2, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDeployment(3, tc.surge, intstr.FromInt32(0))
			oldRS, newRS := testRS("old", tc.old, tc.old, 0, 0), testRS("new", tc.new, 0, 1, 0)
			if tc.oldPods > 0 {
				oldRS.Status.Replicas = tc.oldPods
			}
			if got := newRSNewReplicas(d, []*appsv1.ReplicaSet{oldRS, newRS}, newRS); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
	d := testDeployment(3, intstr.FromInt32(1), intstr.FromInt32(0))
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if got := newRSNewReplicas(d, nil, testRS("new", 0, 0, 0, 0)); got != 3 {
		t.Errorf("recreate: got %d, want 3", got)
	}
}

func TestTemplateHash(t *testing.T) {
	d := testDeployment(1, intstr.FromInt32(1), intstr.FromInt32(0))
	h := templateHash(&d.Spec.Template, nil)
	if h != templateHash(d.Spec.Template.DeepCopy(), nil) {
		t.Error("hash is not deterministic")
	}
	if strings.Trim(h, "bcdfghjklmnpqrstvwxz2456789") != "" {
		t.Errorf("hash %q has characters outside SafeEncodeString's alphabet", h)
	}
	if h == templateHash(&d.Spec.Template, new(int32(1))) {
		t.Error("collision count does not change the hash")
	}
	other := d.Spec.Template.DeepCopy()
	other.Spec.Containers[0].Image = "nginx:2"
	if h == templateHash(other, nil) {
		t.Error("image does not change the hash")
	}
}

func TestEqualIgnoreHash(t *testing.T) {
	d := testDeployment(1, intstr.FromInt32(1), intstr.FromInt32(0))
	rs := newReplicaSetFor(d, nil)
	if rs.Spec.Template.Labels[LabelPodTemplateHash] == "" || rs.Labels[LabelPodTemplateHash] == "" ||
		rs.Spec.Selector.MatchLabels[LabelPodTemplateHash] == "" {
		t.Fatalf("hash label missing: %+v", rs)
	}
	if d.Spec.Template.Labels[LabelPodTemplateHash] != "" || d.Spec.Selector.MatchLabels[LabelPodTemplateHash] != "" {
		t.Fatal("newReplicaSetFor changed the Deployment")
	}
	if !strings.HasPrefix(rs.Name, "web-") || rs.Name != "web-"+rs.Labels[LabelPodTemplateHash] {
		t.Errorf("name %q, want web-<hash>", rs.Name)
	}
	if !equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
		t.Error("the ReplicaSet's template differs from the Deployment's but for the hash")
	}
	d.Spec.Template.Spec.Containers[0].Image = "nginx:2"
	if equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
		t.Error("a new image is equal")
	}
}

func TestSetNewReplicaSetAnnotations(t *testing.T) {
	d := testDeployment(4, intstr.FromInt32(1), intstr.FromInt32(0))
	d.Annotations = map[string]string{"team": "a", annotationLastApplied: "{}", AnnotationRevision: "9"}

	created := &appsv1.ReplicaSet{}
	if !setNewReplicaSetAnnotations(d, created, "1", false) {
		t.Fatal("no change reported")
	}
	want := map[string]string{"team": "a", AnnotationRevision: "1", AnnotationDesiredReplicas: "4", AnnotationMaxReplicas: "5"}
	if !equalMaps(created.Annotations, want) {
		t.Errorf("created: %v, want %v", created.Annotations, want)
	}
	if setNewReplicaSetAnnotations(d, created, "1", true) {
		t.Error("an up to date ReplicaSet reported a change")
	}
	// A rollback to revision 1 as revision 3 keeps 1 in the history.
	if !setNewReplicaSetAnnotations(d, created, "3", true) {
		t.Fatal("no change reported")
	}
	if created.Annotations[AnnotationRevision] != "3" || created.Annotations[AnnotationRevisionHistory] != "1" {
		t.Errorf("rollback: %v", created.Annotations)
	}
	// A revision never goes down.
	setNewReplicaSetAnnotations(d, created, "2", true)
	if created.Annotations[AnnotationRevision] != "3" {
		t.Errorf("revision went down: %v", created.Annotations)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func TestScaleTargets(t *testing.T) {
	sizes := func(ts []scaleTarget) map[string]int32 {
		m := map[string]int32{}
		for _, t := range ts {
			m[t.rs.Name] = t.size
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		replicas int32
		newRS    *appsv1.ReplicaSet
		oldRSs   []*appsv1.ReplicaSet
		want     map[string]int32
	}{
		{
			name: "one active takes all", replicas: 5,
			newRS:  testRS("new", 3, 3, 2, 4),
			oldRSs: []*appsv1.ReplicaSet{testRS("old", 0, 0, 1, 4)},
			want:   map[string]int32{"new": 5},
		},
		{
			name: "none active: the new one", replicas: 2,
			newRS:  testRS("new", 0, 0, 2, 0),
			oldRSs: []*appsv1.ReplicaSet{testRS("old", 0, 0, 1, 0)},
			want:   map[string]int32{"new": 2},
		},
		{
			name: "already the size: nothing", replicas: 3,
			newRS: testRS("new", 3, 3, 2, 4),
			want:  map[string]int32{},
		},
		{
			// kube's proportional scaling example: 10 -> 15 with maxSurge 3
			// (max 13 -> 18) while 5 new and 8 old run.
			name: "proportional up", replicas: 15,
			newRS:  testRS("new", 5, 0, 2, 13),
			oldRSs: []*appsv1.ReplicaSet{testRS("old", 8, 8, 1, 13)},
			want:   map[string]int32{"new": 7, "old": 11},
		},
		{
			name: "proportional down", replicas: 5,
			newRS:  testRS("new", 5, 0, 2, 13),
			oldRSs: []*appsv1.ReplicaSet{testRS("old", 8, 8, 1, 13)},
			want:   map[string]int32{"new": 3, "old": 5},
		},
		{
			name: "to zero", replicas: 0,
			newRS:  testRS("new", 2, 0, 2, 4),
			oldRSs: []*appsv1.ReplicaSet{testRS("old", 2, 2, 1, 4)},
			want:   map[string]int32{"new": 0, "old": 0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			surge := intstr.FromString("25%")
			if tc.replicas >= 10 || tc.name == "proportional down" {
				surge = intstr.FromInt32(3)
			}
			d := testDeployment(tc.replicas, surge, intstr.FromInt32(1))
			got := sizes(scaleTargets(d, tc.newRS, tc.oldRSs))
			if !equalSizes(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			var total int32
			for _, n := range got {
				total += n
			}
			if limit := tc.replicas + maxSurge(d); len(got) > 1 && total != limit && tc.replicas > 0 {
				t.Errorf("total %d, want replicas+maxSurge %d", total, limit)
			}
		})
	}
}

func equalSizes(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func TestScaleTargets_saturatedNewScalesOldToZero(t *testing.T) {
	d := testDeployment(3, intstr.FromInt32(1), intstr.FromInt32(0))
	newRS := testRS("new", 3, 3, 2, 4)
	newRS.Annotations[AnnotationDesiredReplicas] = "3"
	got := scaleTargets(d, newRS, []*appsv1.ReplicaSet{testRS("old", 1, 1, 1, 4)})
	if len(got) != 1 || got[0].rs.Name != "old" || got[0].size != 0 {
		t.Errorf("got %+v, want old to 0", got)
	}
}

func TestHistoryToDelete(t *testing.T) {
	d := testDeployment(1, intstr.FromInt32(1), intstr.FromInt32(0))
	d.Spec.RevisionHistoryLimit = new(int32(1))
	var old []*appsv1.ReplicaSet
	for i, rev := range []string{"3", "1", "2", "4"} {
		rs := testRS("rs-"+rev, 0, 0, i, 0)
		rs.Annotations[AnnotationRevision] = rev
		old = append(old, rs)
	}
	old[2].Status.Replicas = 1 // revision 2 still has a pod: kept
	var got []string
	for _, rs := range historyToDelete(d, old) {
		got = append(got, rs.Name)
	}
	if strings.Join(got, ",") != "rs-1,rs-3" {
		t.Errorf("got %v, want rs-1,rs-3 (oldest revisions beyond the limit, scaled down)", got)
	}
	d.Spec.RevisionHistoryLimit = nil
	if got := historyToDelete(d, old); got != nil {
		t.Errorf("no limit: got %v", got)
	}
}

func TestOldPodsRunning(t *testing.T) {
	newRS, oldRS := testRS("new", 1, 0, 2, 0), testRS("old", 0, 0, 1, 0)
	oldRS.Status.Replicas = 0
	pod := func(phase corev1.PodPhase) *corev1.Pod { return &corev1.Pod{Status: corev1.PodStatus{Phase: phase}} }
	for _, tc := range []struct {
		name   string
		podMap map[types.UID][]*corev1.Pod
		want   bool
	}{
		{"none", map[types.UID][]*corev1.Pod{oldRS.UID: nil}, false},
		{"only new pods", map[types.UID][]*corev1.Pod{newRS.UID: {pod(corev1.PodRunning)}}, false},
		{"old running", map[types.UID][]*corev1.Pod{oldRS.UID: {pod(corev1.PodRunning)}}, true},
		{"old pending", map[types.UID][]*corev1.Pod{oldRS.UID: {pod(corev1.PodPending)}}, true},
		{"old finished", map[types.UID][]*corev1.Pod{oldRS.UID: {pod(corev1.PodSucceeded), pod(corev1.PodFailed)}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := oldPodsRunning(newRS, []*appsv1.ReplicaSet{oldRS}, tc.podMap); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	oldRS.Status.Replicas = 1
	if !oldPodsRunning(newRS, []*appsv1.ReplicaSet{oldRS}, nil) {
		t.Error("an old ReplicaSet reporting replicas: want running")
	}
}
