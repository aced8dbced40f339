package deployment

import (
	"context"
	"fmt"
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// requeueMargin is added to the time left to a progress deadline so that
// the check lands after it.
const requeueMargin = 100 * time.Millisecond

// calculateStatus is d's status from its ReplicaSets' (newRS may be nil),
// with the Available condition; the Progressing condition is carried over
// and left to syncRolloutStatus.
func calculateStatus(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, now time.Time) appsv1.DeploymentStatus {
	available := availableReplicaCount(allRSs)
	var updated int32
	if newRS != nil {
		updated = newRS.Status.Replicas
	}
	st := appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           statusReplicaCount(allRSs),
		UpdatedReplicas:    updated,
		ReadyReplicas:      readyReplicaCount(allRSs),
		AvailableReplicas:  available,
		// Negative while scaling down with more available than wanted.
		UnavailableReplicas: max(specReplicaCount(allRSs)-available, 0),
		CollisionCount:      d.Status.CollisionCount,
		Conditions:          append([]appsv1.DeploymentCondition(nil), d.Status.Conditions...),
	}
	if available >= replicasOf(d)-maxUnavailable(d) {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, ReasonMinimumReplicasAvailable,
			"Deployment has minimum availability.", now))
	} else {
		setCondition(&st, newCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, ReasonMinimumReplicasUnavailable,
			"Deployment does not have minimum availability.", now))
	}
	return st
}

// syncDeploymentStatus writes the status calculated from the ReplicaSets
// when it differs, without judging progress (paused or scaling).
func (c *Controller) syncDeploymentStatus(ctx context.Context, d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	st := calculateStatus(d, allRSs, newRS, c.now())
	if apiequality.Semantic.DeepEqual(d.Status, st) {
		return nil
	}
	d.Status = st
	return c.writeStatus(ctx, d)
}

// syncRolloutStatus writes the status of a rollout step with its
// Progressing condition, or, when nothing changed, schedules the check of
// the progress deadline.
func (c *Controller) syncRolloutStatus(ctx context.Context, d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	now := c.now()
	st := progressStatus(d, allRSs, newRS, now)
	if apiequality.Semantic.DeepEqual(d.Status, st) {
		if after, ok := requeueAfter(d, &st, now); ok {
			// Past the deadline, not at it. (kube requeues rate-limited
			// when under a second is left, which, as each sync resets the
			// backoff, spins at the base delay until the deadline.)
			c.enqueueAfter(d, max(after, 0)+requeueMargin)
		}
		return nil
	}
	d.Status = st
	return c.writeStatus(ctx, d)
}

// progressStatus is calculateStatus plus the Progressing condition (as
// kube's syncRolloutStatus) and the ReplicaFailure condition taken from
// the ReplicaSets.
func progressStatus(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, now time.Time) appsv1.DeploymentStatus {
	st := calculateStatus(d, allRSs, newRS, now)
	if !hasProgressDeadline(d) {
		removeCondition(&st, appsv1.DeploymentProgressing)
	}
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	// A rollout that completed stays complete until a new one starts.
	complete := st.Replicas == st.UpdatedReplicas && cur != nil && cur.Reason == ReasonNewReplicaSetAvailable
	if hasProgressDeadline(d) && !complete {
		rsName := func(format, fallback string) string {
			if newRS != nil {
				return fmt.Sprintf(format, newRS.Name)
			}
			return fmt.Sprintf(fallback, d.Name)
		}
		switch {
		case deploymentComplete(d, &st):
			setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewReplicaSetAvailable,
				rsName("ReplicaSet %q has successfully progressed.", "Deployment %q has successfully progressed."), now))
		case deploymentProgressing(d, &st):
			// Progress refreshes lastUpdateTime, which the deadline counts
			// from, even under the same reason; setCondition would keep
			// the old condition, so replace it outright.
			cond := newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonReplicaSetUpdated,
				rsName("ReplicaSet %q is progressing.", "Deployment %q is progressing."), now)
			if cur != nil {
				if cur.Status == corev1.ConditionTrue {
					cond.LastTransitionTime = cur.LastTransitionTime
				}
				removeCondition(&st, appsv1.DeploymentProgressing)
			}
			setCondition(&st, cond)
		case deploymentTimedOut(d, &st, now):
			setCondition(&st, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonProgressDeadlineExceeded,
				rsName("ReplicaSet %q has timed out progressing.", "Deployment %q has timed out progressing."), now))
		}
	}
	if failure := replicaFailure(allRSs, newRS); failure != nil {
		setCondition(&st, *failure)
	} else {
		removeCondition(&st, appsv1.DeploymentReplicaFailure)
	}
	return st
}

// replicaFailure is the ReplicaFailure condition of the new ReplicaSet,
// else of any old one, as a Deployment condition.
func replicaFailure(allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) *appsv1.DeploymentCondition {
	find := func(rs *appsv1.ReplicaSet) *appsv1.DeploymentCondition {
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure {
				return &appsv1.DeploymentCondition{
					Type: appsv1.DeploymentReplicaFailure, Status: c.Status, Reason: c.Reason, Message: c.Message,
					LastUpdateTime: c.LastTransitionTime, LastTransitionTime: c.LastTransitionTime,
				}
			}
		}
		return nil
	}
	if newRS != nil {
		if c := find(newRS); c != nil {
			return c
		}
	}
	for _, rs := range allRSs {
		if rs == nil || (newRS != nil && rs.UID == newRS.UID) {
			continue
		}
		if c := find(rs); c != nil {
			return c
		}
	}
	return nil
}

// requeueAfter is when to look at a rollout again that made no progress,
// to declare it timed out: lastUpdateTime of Progressing plus the
// deadline (kubernetes#34458). ok is false when no check is due: no
// deadline, paused, complete or already timed out.
func requeueAfter(d *appsv1.Deployment, st *appsv1.DeploymentStatus, now time.Time) (time.Duration, bool) {
	cur := getCondition(*st, appsv1.DeploymentProgressing)
	if !hasProgressDeadline(d) || cur == nil || d.Spec.Paused {
		return 0, false
	}
	if deploymentComplete(d, st) || cur.Reason == ReasonProgressDeadlineExceeded || cur.Reason == ReasonNewReplicaSetAvailable {
		return 0, false
	}
	deadline := cur.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second)
	return deadline.Sub(now), true
}

// checkPausedConditions marks the Progressing condition Unknown with
// DeploymentPaused while paused and DeploymentResumed after, so that the
// time spent paused never counts against the progress deadline; a
// timed-out rollout keeps saying so.
func (c *Controller) checkPausedConditions(ctx context.Context, d *appsv1.Deployment) error {
	if !hasProgressDeadline(d) {
		return nil
	}
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	if cur != nil && cur.Reason == ReasonProgressDeadlineExceeded {
		return nil
	}
	pausedCond := cur != nil && cur.Reason == ReasonDeploymentPaused
	switch {
	case d.Spec.Paused && !pausedCond:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonDeploymentPaused,
			"Deployment is paused", c.now()))
	case !d.Spec.Paused && pausedCond:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonDeploymentResumed,
			"Deployment is resumed", c.now()))
	default:
		return nil
	}
	return c.writeStatus(ctx, d)
}

// hasProgressDeadline: kube treats MaxInt32 as "no deadline".
func hasProgressDeadline(d *appsv1.Deployment) bool {
	p := d.Spec.ProgressDeadlineSeconds
	return p != nil && *p != math.MaxInt32
}

// deploymentComplete: every replica is updated and available, and the
// status is of the current generation.
func deploymentComplete(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	n := replicasOf(d)
	return st.UpdatedReplicas == n && st.Replicas == n && st.AvailableReplicas == n &&
		st.ObservedGeneration >= d.Generation
}

// deploymentProgressing compares st with d's current status: more pods
// updated, ready or available, or fewer old ones.
func deploymentProgressing(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	old := d.Status
	return st.UpdatedReplicas > old.UpdatedReplicas ||
		st.Replicas-st.UpdatedReplicas < old.Replicas-old.UpdatedReplicas ||
		st.ReadyReplicas > old.ReadyReplicas ||
		st.AvailableReplicas > old.AvailableReplicas
}

// deploymentTimedOut: no progress for progressDeadlineSeconds since the
// Progressing condition was last updated.
func deploymentTimedOut(d *appsv1.Deployment, st *appsv1.DeploymentStatus, now time.Time) bool {
	if !hasProgressDeadline(d) {
		return false
	}
	cur := getCondition(*st, appsv1.DeploymentProgressing)
	if cur == nil {
		return false
	}
	switch cur.Reason {
	case ReasonNewReplicaSetAvailable, ReasonDeploymentPaused:
		return false
	case ReasonProgressDeadlineExceeded:
		return true
	}
	deadline := cur.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second)
	return deadline.Before(now)
}

func newCondition(t appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason, msg string, now time.Time) appsv1.DeploymentCondition {
	ts := metav1.NewTime(now)
	return appsv1.DeploymentCondition{Type: t, Status: status, Reason: reason, Message: msg, LastUpdateTime: ts, LastTransitionTime: ts}
}

func getCondition(st appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setCondition puts cond in st unless a condition of its type already
// has its status and reason; a condition keeping its status keeps its
// lastTransitionTime.
func setCondition(st *appsv1.DeploymentStatus, cond appsv1.DeploymentCondition) {
	cur := getCondition(*st, cond.Type)
	if cur != nil && cur.Status == cond.Status && cur.Reason == cond.Reason {
		return
	}
	if cur != nil && cur.Status == cond.Status {
		cond.LastTransitionTime = cur.LastTransitionTime
	}
	removeCondition(st, cond.Type)
	st.Conditions = append(st.Conditions, cond)
}

func removeCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) {
	out := st.Conditions[:0:0]
	for _, c := range st.Conditions {
		if c.Type != t {
			out = append(out, c)
		}
	}
	st.Conditions = out
}
