package deployment

import (
	"context"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// rolloutRolling takes one step of a rolling update: scale the new
// ReplicaSet up within maxSurge or, failing that, the old ones down within
// maxUnavailable; once complete, prune history. Each step waits for the
// ReplicaSet controller to report the pods it made available.
func (c *Controller) rolloutRolling(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) error {
	if newRS == nil {
		var err error
		if newRS, err = c.createNewReplicaSet(ctx, d, oldRSs); err != nil {
			return err
		}
	}
	allRSs := withNew(oldRSs, newRS)

	scaledUp, err := c.reconcileNewReplicaSet(ctx, d, allRSs, newRS)
	if err != nil {
		return err
	}
	if scaledUp {
		return c.syncRolloutStatus(ctx, d, allRSs, newRS)
	}
	scaledDown, err := c.reconcileOldReplicaSets(ctx, d, activeReplicaSets(oldRSs), newRS)
	if err != nil {
		return err
	}
	if scaledDown {
		return c.syncRolloutStatus(ctx, d, allRSs, newRS)
	}
	if deploymentComplete(d, &d.Status) {
		if err := c.cleanup(ctx, d, oldRSs); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, allRSs, newRS)
}

// reconcileNewReplicaSet scales the new ReplicaSet toward spec.replicas as
// far as maxSurge allows; true when it changed its size.
func (c *Controller) reconcileNewReplicaSet(ctx context.Context, d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	want := replicasOf(d)
	if replicasOfRS(newRS) > want {
		scaled, _, err := c.scaleReplicaSet(ctx, newRS, want, d)
		return scaled, err
	}
	if replicasOfRS(newRS) == want {
		return false, nil
	}
	scaled, _, err := c.scaleReplicaSet(ctx, newRS, newRSNewReplicas(d, allRSs, newRS), d)
	return scaled, err
}

// reconcileOldReplicaSets scales the active old ReplicaSets down while at
// least spec.replicas - maxUnavailable pods stay available: first their
// unavailable pods, then available ones. True when it scaled any down.
func (c *Controller) reconcileOldReplicaSets(ctx context.Context, d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	if specReplicaCount(oldRSs) == 0 {
		return false, nil
	}
	allPods := specReplicaCount(withNew(oldRSs, newRS))
	minAvailable := replicasOf(d) - maxUnavailable(d)
	newUnavailable := replicasOfRS(newRS) - newRS.Status.AvailableReplicas
	// Counting the new ReplicaSet's unavailable pods as if they were
	// needed keeps the old ones from going while the new ones are not up.
	maxScaledDown := allPods - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return false, nil
	}
	// Unhealthy replicas first: they would block the rollout otherwise
	// (kubernetes#16737).
	oldRSs, cleaned, err := c.cleanupUnhealthyReplicas(ctx, d, oldRSs, maxScaledDown)
	if err != nil {
		return false, err
	}
	scaledDown, err := c.scaleDownOldReplicaSets(ctx, d, withNew(oldRSs, newRS), oldRSs)
	if err != nil {
		return false, err
	}
	return cleaned+scaledDown > 0, nil
}

// cleanupUnhealthyReplicas scales old ReplicaSets down by their
// unavailable replicas, oldest first, at most maxCleanup in all. It
// returns oldRSs with the scaled ones replaced by their stored versions.
func (c *Controller) cleanupUnhealthyReplicas(ctx context.Context, d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet, maxCleanup int32) ([]*appsv1.ReplicaSet, int32, error) {
	oldRSs = append([]*appsv1.ReplicaSet(nil), oldRSs...)
	sort.SliceStable(oldRSs, func(i, j int) bool { return olderFirst(oldRSs[i], oldRSs[j]) })
	var total int32
	for i, rs := range oldRSs {
		if total >= maxCleanup {
			break
		}
		size := replicasOfRS(rs)
		unhealthy := size - rs.Status.AvailableReplicas
		if size == 0 || unhealthy <= 0 {
			continue
		}
		n := min(maxCleanup-total, unhealthy)
		_, updated, err := c.scaleReplicaSet(ctx, rs, size-n, d)
		if err != nil {
			return nil, total, err
		}
		oldRSs[i] = updated
		total += n
	}
	return oldRSs, total, nil
}

// scaleDownOldReplicaSets scales old ReplicaSets down, oldest first, by as
// many pods as are available beyond spec.replicas - maxUnavailable.
func (c *Controller) scaleDownOldReplicaSets(ctx context.Context, d *appsv1.Deployment, allRSs, oldRSs []*appsv1.ReplicaSet) (int32, error) {
	minAvailable := replicasOf(d) - maxUnavailable(d)
	available := availableReplicaCount(allRSs)
	if available <= minAvailable {
		return 0, nil
	}
	toScaleDown := available - minAvailable
	oldRSs = append([]*appsv1.ReplicaSet(nil), oldRSs...)
	sort.SliceStable(oldRSs, func(i, j int) bool { return olderFirst(oldRSs[i], oldRSs[j]) })
	var total int32
	for _, rs := range oldRSs {
		if total >= toScaleDown {
			break
		}
		size := replicasOfRS(rs)
		if size == 0 {
			continue
		}
		n := min(size, toScaleDown-total)
		if _, _, err := c.scaleReplicaSet(ctx, rs, size-n, d); err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// rolloutRecreate takes one step of a Recreate rollout: scale every old
// ReplicaSet to zero, wait until none of their pods is left, then create
// or scale up the new ReplicaSet.
func (c *Controller) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet, podMap map[types.UID][]*corev1.Pod) error {
	allRSs := withNew(oldRSs, newRS)
	scaledDown := false
	for _, rs := range activeReplicaSets(oldRSs) {
		scaled, _, err := c.scaleReplicaSet(ctx, rs, 0, d)
		if err != nil {
			return err
		}
		scaledDown = scaledDown || scaled
	}
	if scaledDown || oldPodsRunning(newRS, oldRSs, podMap) {
		return c.syncRolloutStatus(ctx, d, allRSs, newRS)
	}
	if newRS == nil {
		var err error
		if newRS, err = c.createNewReplicaSet(ctx, d, oldRSs); err != nil {
			return err
		}
		allRSs = withNew(oldRSs, newRS)
	}
	if _, _, err := c.scaleReplicaSet(ctx, newRS, replicasOf(d), d); err != nil {
		return err
	}
	if deploymentComplete(d, &d.Status) {
		if err := c.cleanup(ctx, d, oldRSs); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, allRSs, newRS)
}

// oldPodsRunning reports whether an old ReplicaSet still counts pods, or
// any pod of one is left that has not finished (terminating ones too): a
// Recreate rollout never runs old and new pods together.
func oldPodsRunning(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet, podMap map[types.UID][]*corev1.Pod) bool {
	if statusReplicaCount(oldRSs) > 0 {
		return true
	}
	for uid, pods := range podMap {
		if newRS != nil && newRS.UID == uid {
			continue
		}
		for _, pod := range pods {
			switch pod.Status.Phase {
			case corev1.PodFailed, corev1.PodSucceeded:
			default:
				return true
			}
		}
	}
	return false
}
