package deployment

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func progressing(reason string, status corev1.ConditionStatus, at time.Time) appsv1.DeploymentCondition {
	return newCondition(appsv1.DeploymentProgressing, status, reason, "", at)
}

func TestCalculateStatus(t *testing.T) {
	d := testDeployment(3, intstr.FromInt32(1), intstr.FromInt32(0))
	d.Generation = 4
	newRS := testRS("new", 1, 0, 2, 4)
	oldRS := testRS("old", 3, 3, 1, 4)
	st := calculateStatus(d, []*appsv1.ReplicaSet{oldRS, newRS}, newRS, t0)
	want := appsv1.DeploymentStatus{ObservedGeneration: 4, Replicas: 4, UpdatedReplicas: 1, ReadyReplicas: 3, AvailableReplicas: 3, UnavailableReplicas: 1}
	st.Conditions = nil
	if st.ObservedGeneration != want.ObservedGeneration || st.Replicas != want.Replicas || st.UpdatedReplicas != want.UpdatedReplicas ||
		st.ReadyReplicas != want.ReadyReplicas || st.AvailableReplicas != want.AvailableReplicas || st.UnavailableReplicas != want.UnavailableReplicas {
		t.Errorf("got %+v, want %+v", st, want)
	}
	for _, tc := range []struct {
		available int32
		status    corev1.ConditionStatus
		reason    string
	}{
		{3, corev1.ConditionTrue, ReasonMinimumReplicasAvailable},
		{2, corev1.ConditionFalse, ReasonMinimumReplicasUnavailable},
	} {
		oldRS.Status.AvailableReplicas = tc.available
		st := calculateStatus(d, []*appsv1.ReplicaSet{oldRS, newRS}, newRS, t0)
		c := getCondition(st, appsv1.DeploymentAvailable)
		if c == nil || c.Status != tc.status || c.Reason != tc.reason {
			t.Errorf("available %d: Available condition %+v, want %s %s", tc.available, c, tc.status, tc.reason)
		}
	}
}

func TestProgressStatus(t *testing.T) {
	complete := func(d *appsv1.Deployment) []*appsv1.ReplicaSet {
		return []*appsv1.ReplicaSet{testRS("new", 3, 3, 1, 4)}
	}
	rolling := func(d *appsv1.Deployment) []*appsv1.ReplicaSet {
		return []*appsv1.ReplicaSet{testRS("old", 3, 3, 0, 4), testRS("new", 1, 0, 1, 4)}
	}
	for _, tc := range []struct {
		name       string
		rss        func(*appsv1.Deployment) []*appsv1.ReplicaSet
		prev       appsv1.DeploymentStatus
		now        time.Time
		wantReason string
		wantStatus corev1.ConditionStatus
		wantUpdate time.Time
	}{
		{
			name: "complete", rss: complete,
			prev:       appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{progressing(ReasonReplicaSetUpdated, corev1.ConditionTrue, t0)}},
			now:        t0.Add(time.Second),
			wantReason: ReasonNewReplicaSetAvailable, wantStatus: corev1.ConditionTrue, wantUpdate: t0.Add(time.Second),
		},
		{
			name: "progress refreshes lastUpdateTime", rss: rolling,
			prev: appsv1.DeploymentStatus{Replicas: 3, Conditions: []appsv1.DeploymentCondition{
				progressing(ReasonNewReplicaSetCreated, corev1.ConditionTrue, t0)}},
			now:        t0.Add(time.Minute),
			wantReason: ReasonReplicaSetUpdated, wantStatus: corev1.ConditionTrue, wantUpdate: t0.Add(time.Minute),
		},
		{
			name: "no progress within the deadline: unchanged", rss: rolling,
			prev: appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, ReadyReplicas: 3, AvailableReplicas: 3, Conditions: []appsv1.DeploymentCondition{
				progressing(ReasonReplicaSetUpdated, corev1.ConditionTrue, t0)}},
			now:        t0.Add(599 * time.Second),
			wantReason: ReasonReplicaSetUpdated, wantStatus: corev1.ConditionTrue, wantUpdate: t0,
		},
		{
			name: "no progress past the deadline: timed out", rss: rolling,
			prev: appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1, ReadyReplicas: 3, AvailableReplicas: 3, Conditions: []appsv1.DeploymentCondition{
				progressing(ReasonReplicaSetUpdated, corev1.ConditionTrue, t0)}},
			now:        t0.Add(601 * time.Second),
			wantReason: ReasonProgressDeadlineExceeded, wantStatus: corev1.ConditionFalse, wantUpdate: t0.Add(601 * time.Second),
		},
		{
			name: "a completed rollout stays so", rss: complete,
			prev: appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, Conditions: []appsv1.DeploymentCondition{
				progressing(ReasonNewReplicaSetAvailable, corev1.ConditionTrue, t0)}},
			now:        t0.Add(time.Hour),
			wantReason: ReasonNewReplicaSetAvailable, wantStatus: corev1.ConditionTrue, wantUpdate: t0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testDeployment(3, intstr.FromInt32(1), intstr.FromInt32(0))
			d.Status = tc.prev
			d.Status.ObservedGeneration = d.Generation
			rss := tc.rss(d)
			newRS := rss[len(rss)-1]
			st := progressStatus(d, rss, newRS, tc.now)
			c := getCondition(st, appsv1.DeploymentProgressing)
			if c == nil || c.Reason != tc.wantReason || c.Status != tc.wantStatus || !c.LastUpdateTime.Time.Equal(tc.wantUpdate) {
				t.Fatalf("Progressing %+v, want %s %s updated %v", c, tc.wantStatus, tc.wantReason, tc.wantUpdate)
			}
		})
	}
}

func TestProgressStatus_noDeadline(t *testing.T) {
	d := testDeployment(3, intstr.FromInt32(1), intstr.FromInt32(0))
	d.Spec.ProgressDeadlineSeconds = nil
	d.Status.Conditions = []appsv1.DeploymentCondition{progressing(ReasonReplicaSetUpdated, corev1.ConditionTrue, t0)}
	st := progressStatus(d, []*appsv1.ReplicaSet{testRS("new", 3, 3, 0, 4)}, nil, t0)
	if c := getCondition(st, appsv1.DeploymentProgressing); c != nil {
		t.Errorf("Progressing %+v without a deadline", c)
	}
}

func TestRequeueAfter(t *testing.T) {
	d := testDeployment(3, intstr.FromInt32(1), intstr.FromInt32(0))
	d.Spec.ProgressDeadlineSeconds = new(int32(10))
	st := appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{progressing(ReasonReplicaSetUpdated, corev1.ConditionTrue, t0)}}
	if after, ok := requeueAfter(d, &st, t0.Add(4*time.Second)); !ok || after != 6*time.Second {
		t.Errorf("got %v %v, want 6s true", after, ok)
	}
	for _, reason := range []string{ReasonProgressDeadlineExceeded, ReasonNewReplicaSetAvailable} {
		st.Conditions[0].Reason = reason
		if _, ok := requeueAfter(d, &st, t0); ok {
			t.Errorf("%s: requeued", reason)
		}
	}
}

func TestSetCondition(t *testing.T) {
	var st appsv1.DeploymentStatus
	setCondition(&st, progressing(ReasonNewReplicaSetCreated, corev1.ConditionTrue, t0))
	setCondition(&st, progressing(ReasonNewReplicaSetCreated, corev1.ConditionTrue, t0.Add(time.Hour)))
	if c := getCondition(st, appsv1.DeploymentProgressing); !c.LastUpdateTime.Time.Equal(t0) {
		t.Errorf("same status and reason replaced the condition: %+v", c)
	}
	setCondition(&st, progressing(ReasonReplicaSetUpdated, corev1.ConditionTrue, t0.Add(time.Hour)))
	c := getCondition(st, appsv1.DeploymentProgressing)
	if c.Reason != ReasonReplicaSetUpdated || !c.LastTransitionTime.Time.Equal(t0) || !c.LastUpdateTime.Time.Equal(t0.Add(time.Hour)) {
		t.Errorf("same status, new reason: %+v, want transition kept at t0", c)
	}
	setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, ReasonMinimumReplicasUnavailable, "", t0))
	if len(st.Conditions) != 2 {
		t.Errorf("conditions %+v, want 2", st.Conditions)
	}
	removeCondition(&st, appsv1.DeploymentProgressing)
	if len(st.Conditions) != 1 || st.Conditions[0].Type != appsv1.DeploymentAvailable {
		t.Errorf("after remove: %+v", st.Conditions)
	}
}
