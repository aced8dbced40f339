package daemonset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// requeueMargin is added to a computed wait so that the sync lands after
// the moment, not on it.
const requeueMargin = 10 * time.Millisecond

// podAvailable is kube's IsPodAvailable: Ready, and for strictly more
// than minReady since the Ready transition. When ready but not yet
// available, wait is how long until it is.
func podAvailable(p *corev1.Pod, minReady time.Duration, now time.Time) (ok bool, wait time.Duration) {
	for _, c := range p.Status.Conditions {
		if c.Type != corev1.PodReady {
			continue
		}
		if c.Status != corev1.ConditionTrue {
			return false, 0
		}
		if minReady == 0 {
			return true, 0
		}
		if c.LastTransitionTime.IsZero() {
			return false, 0
		}
		at := c.LastTransitionTime.Add(minReady)
		if at.Before(now) {
			return true, 0
		}
		return false, at.Sub(now) + requeueMargin
	}
	return false, 0
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// calculateStatus is kube's updateDaemonSetStatus. For each Node that
// should run a Pod, the oldest live (not terminating, not finished) Pod
// there decides whether the Node counts as scheduled, ready, available
// and updated; a Node that should not run one but has a live Pod is
// misscheduled. availableIn is how long until the next ready Pod becomes
// available; zero if none is waiting.
func calculateStatus(ds *appsv1.DaemonSet, nodes []*corev1.Node, nodeToPods map[string][]*corev1.Pod, hash string, now time.Time) (st appsv1.DaemonSetStatus, availableIn time.Duration) {
	st = *ds.Status.DeepCopy()
	minReady := time.Duration(ds.Spec.MinReadySeconds) * time.Second
	var desired, current, ready, available, updated, misscheduled int32
	for _, node := range nodes {
		shouldRun, _ := nodeShouldRunDaemonPod(node, ds)
		live := livePods(nodeToPods[node.Name])
		if !shouldRun {
			if len(live) > 0 {
				misscheduled++
			}
			continue
		}
		desired++
		if len(live) == 0 {
			continue
		}
		current++
		p := live[0] // oldest first
		if podReady(p) {
			ready++
			ok, wait := podAvailable(p, minReady, now)
			switch {
			case ok:
				available++
			case wait > 0 && (availableIn == 0 || wait < availableIn):
				availableIn = wait
			}
		}
		if p.Labels[LabelRevisionHash] == hash {
			updated++
		}
	}
	st.DesiredNumberScheduled = desired
	st.CurrentNumberScheduled = current
	st.NumberReady = ready
	st.NumberAvailable = available
	st.NumberUnavailable = max(0, desired-available)
	st.UpdatedNumberScheduled = updated
	st.NumberMisscheduled = misscheduled
	st.ObservedGeneration = ds.Generation
	return st, availableIn
}

// updateStatus writes st to ds's status subresource unless it is already
// there. On a conflict it retries once on a fresh read.
func (c *Controller) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, st appsv1.DaemonSetStatus) error {
	if equality.Semantic.DeepEqual(ds.Status, st) {
		return nil
	}
	dsc := c.client.AppsV1().DaemonSets(ds.Namespace)
	next := ds.DeepCopy() // never change the cached object
	next.Status = st
	_, err := dsc.UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if !apierrors.IsConflict(err) {
		return err
	}
	fresh, err := dsc.Get(ctx, ds.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if fresh.UID != ds.UID {
		return nil // replaced; the new one has its own key
	}
	fresh.Status = st
	_, err = dsc.UpdateStatus(ctx, fresh, metav1.UpdateOptions{})
	return err
}
