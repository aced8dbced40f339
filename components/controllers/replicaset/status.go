package replicaset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Reasons of the ReplicaFailure condition, as kube writes them.
const (
	ReasonFailedCreate = "FailedCreate"
	ReasonFailedDelete = "FailedDelete"
)

// requeueMargin is added to a computed wait so that the sync lands after
// the moment, not on it.
const requeueMargin = 10 * time.Millisecond

// calculateStatus is the status pods (the claimed, active Pods) give rs.
// availableIn is how long until the next ready Pod becomes available
// (ready for minReadySeconds); zero if none is waiting.
func calculateStatus(rs *appsv1.ReplicaSet, pods []*corev1.Pod, terminating int, manageErr error, now time.Time) (st appsv1.ReplicaSetStatus, availableIn time.Duration) {
	st = *rs.Status.DeepCopy()
	templateLabels := labels.SelectorFromSet(rs.Spec.Template.Labels)
	minReady := time.Duration(rs.Spec.MinReadySeconds) * time.Second
	var fullyLabeled, ready, available int32
	for _, p := range pods {
		if templateLabels.Matches(labels.Set(p.Labels)) {
			fullyLabeled++
		}
		isReady, since := podReady(p)
		if !isReady {
			continue
		}
		ready++
		// As kube's IsPodAvailable: strictly more than minReadySeconds
		// since the Ready transition; an unknown transition time never
		// counts.
		switch at := since.Add(minReady); {
		case minReady == 0 || (!since.IsZero() && at.Before(now)):
			available++
		case !since.IsZero():
			if d := at.Sub(now) + requeueMargin; availableIn == 0 || d < availableIn {
				availableIn = d
			}
		}
	}

	failure := condition(st.Conditions, appsv1.ReplicaSetReplicaFailure)
	switch {
	case manageErr != nil && failure == nil:
		reason := ReasonFailedCreate
		if len(pods) > replicas(rs) {
			reason = ReasonFailedDelete
		}
		st.Conditions = append(st.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(now), Reason: reason, Message: manageErr.Error(),
		})
	case manageErr == nil && failure != nil:
		var kept []appsv1.ReplicaSetCondition
		for _, c := range st.Conditions {
			if c.Type != appsv1.ReplicaSetReplicaFailure {
				kept = append(kept, c)
			}
		}
		st.Conditions = kept
	}
	st.Replicas = int32(len(pods))
	st.FullyLabeledReplicas = fullyLabeled
	st.ReadyReplicas = ready
	st.AvailableReplicas = available
	st.TerminatingReplicas = new(int32(terminating))
	st.ObservedGeneration = rs.Generation
	return st, availableIn
}

func condition(conds []appsv1.ReplicaSetCondition, t appsv1.ReplicaSetConditionType) *appsv1.ReplicaSetCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// updateStatus writes st to rs's status subresource unless it is already
// there. On a conflict it retries once on a fresh read, as kube does, so
// that a status write racing a spec change does not wait for a requeue.
func (c *Controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) error {
	if equality.Semantic.DeepEqual(rs.Status, st) {
		return nil
	}
	rsc := c.client.AppsV1().ReplicaSets(rs.Namespace)
	next := rs.DeepCopy() // never change the cached object
	next.Status = st
	_, err := rsc.UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if !apierrors.IsConflict(err) {
		return err
	}
	fresh, err := rsc.Get(ctx, rs.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if fresh.UID != rs.UID {
		return nil // replaced; the new one has its own key
	}
	fresh.Status = st
	_, err = rsc.UpdateStatus(ctx, fresh, metav1.UpdateOptions{})
	return err
}
