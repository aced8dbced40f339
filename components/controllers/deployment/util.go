package deployment

import (
	"math"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// defaultRollingParam is kube's apps/v1 default of maxSurge and
// maxUnavailable, for objects that were never defaulted by an API server.
const defaultRollingParam = "25%"

// maxRevisionHistoryChars caps the revision-history annotation (kube's
// limit too): the oldest revisions are dropped first.
const maxRevisionHistoryChars = 2000

// replicasOf is d's spec.replicas; a nil one means kube's default of 1.
func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// replicasOfRS is rs's spec.replicas; a nil one means kube's default of 1.
func replicasOfRS(rs *appsv1.ReplicaSet) int32 {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return *rs.Spec.Replicas
}

func isRollingUpdate(d *appsv1.Deployment) bool {
	return d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.Type == ""
}

// resolveFenceposts turns maxSurge and maxUnavailable into pod counts for
// desired replicas: surge rounds up, unavailable rounds down, and if both
// come out zero (validation forbids both being zero, but 25% of 3 rounds
// down to 0 and 0% of anything is 0) unavailable becomes 1 so that a
// rollout can always proceed.
func resolveFenceposts(surge, unavailable *intstr.IntOrString, desired int32) (int32, int32, error) {
	if surge == nil {
		surge = new(intstr.FromString(defaultRollingParam))
	}
	if unavailable == nil {
		unavailable = new(intstr.FromString(defaultRollingParam))
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(surge, int(desired), true)
	if err != nil {
		return 0, 0, err
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(unavailable, int(desired), false)
	if err != nil {
		return 0, 0, err
	}
	if s == 0 && u == 0 {
		u = 1
	}
	return int32(s), int32(u), nil
}

func rollingParams(d *appsv1.Deployment) (surge, unavailable *intstr.IntOrString) {
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		return ru.MaxSurge, ru.MaxUnavailable
	}
	return nil, nil
}

// maxSurge is how many pods above spec.replicas a rolling update may run;
// zero for Recreate. An invalid value (which validation rejects) counts
// as zero.
func maxSurge(d *appsv1.Deployment) int32 {
	if !isRollingUpdate(d) {
		return 0
	}
	s, u := rollingParams(d)
	surge, _, _ := resolveFenceposts(s, u, replicasOf(d))
	return surge
}

// maxUnavailable is how many of spec.replicas may be unavailable during a
// rolling update, at most spec.replicas; zero for Recreate.
func maxUnavailable(d *appsv1.Deployment) int32 {
	if !isRollingUpdate(d) || replicasOf(d) == 0 {
		return 0
	}
	s, u := rollingParams(d)
	_, unavailable, _ := resolveFenceposts(s, u, replicasOf(d))
	return min(unavailable, replicasOf(d))
}

// newRSNewReplicas is the size the new ReplicaSet may grow to now: for a
// rolling update, no more than spec.replicas + maxSurge pods in all and
// no more than spec.replicas in it; for Recreate, spec.replicas.
//
// kube counts the ReplicaSets' sizes (spec.replicas) only, so right after
// an old ReplicaSet is scaled down the new one grows while the old pod may
// not have been deleted yet, and for a moment maxSurge+1 pods run. Here a
// ReplicaSet counts as the larger of its size and the pods it still
// reports (status.replicas, which leaves out terminating pods), so that
// maxSurge bounds the pods that exist and not only those requested. It
// costs one status round trip of the ReplicaSet controller per step.
func newRSNewReplicas(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	if !isRollingUpdate(d) {
		return replicasOf(d)
	}
	var current int32
	for _, rs := range allRSs {
		if rs != nil {
			current += max(replicasOfRS(rs), rs.Status.Replicas)
		}
	}
	maxTotal := replicasOf(d) + maxSurge(d)
	if current >= maxTotal {
		return replicasOfRS(newRS)
	}
	up := min(maxTotal-current, replicasOf(d)-replicasOfRS(newRS))
	return replicasOfRS(newRS) + up
}

// withNew is oldRSs plus newRS when there is one, in a new slice.
func withNew(oldRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	out := make([]*appsv1.ReplicaSet, 0, len(oldRSs)+1)
	out = append(out, oldRSs...)
	if newRS != nil {
		out = append(out, newRS)
	}
	return out
}

// activeReplicaSets are those with a non-zero size.
func activeReplicaSets(rss []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range rss {
		if rs != nil && replicasOfRS(rs) > 0 {
			out = append(out, rs)
		}
	}
	return out
}

func specReplicaCount(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += replicasOfRS(rs)
		}
	}
	return n
}

func statusReplicaCount(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += rs.Status.Replicas
		}
	}
	return n
}

func readyReplicaCount(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += rs.Status.ReadyReplicas
		}
	}
	return n
}

func availableReplicaCount(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += rs.Status.AvailableReplicas
		}
	}
	return n
}

// olderFirst orders by creation, then name.
func olderFirst(a, b *appsv1.ReplicaSet) bool {
	if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.Name < b.Name
	}
	return a.CreationTimestamp.Before(&b.CreationTimestamp)
}

// findNewReplicaSet is the oldest of rsList whose template is d's: there
// may be more than one after a hash collision, and the oldest keeps being
// chosen.
func findNewReplicaSet(d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	sorted := append([]*appsv1.ReplicaSet(nil), rsList...)
	sort.SliceStable(sorted, func(i, j int) bool { return olderFirst(sorted[i], sorted[j]) })
	for _, rs := range sorted {
		if equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			return rs
		}
	}
	return nil
}

// revisionOf is rs's revision annotation; 0 when absent or malformed.
func revisionOf(rs *appsv1.ReplicaSet) int64 {
	v, err := strconv.ParseInt(rs.Annotations[AnnotationRevision], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

func maxRevision(rss []*appsv1.ReplicaSet) int64 {
	var m int64
	for _, rs := range rss {
		m = max(m, revisionOf(rs))
	}
	return m
}

func intAnnotation(rs *appsv1.ReplicaSet, key string) (int32, bool) {
	s, ok := rs.Annotations[key]
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(v), true
}

// skipCopy are the Deployment annotations not copied to its ReplicaSets:
// the controller's own and kubectl's record of the last apply.
func skipCopy(key string) bool {
	switch key {
	case annotationLastApplied, AnnotationRevision, AnnotationRevisionHistory,
		AnnotationDesiredReplicas, AnnotationMaxReplicas, annotationRollbackTo:
		return true
	}
	return false
}

// setNewReplicaSetAnnotations copies d's annotations to rs and raises its
// revision to newRevision when below; a ReplicaSet that had a revision
// (a rollback to it) keeps its former ones in revision-history. A
// ReplicaSet about to be created (exists false) also gets the replicas
// annotations. It reports whether rs changed.
func setNewReplicaSetAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet, newRevision string, exists bool) bool {
	changed := false
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	for k, v := range d.Annotations {
		if skipCopy(k) {
			continue
		}
		if cur, ok := rs.Annotations[k]; !ok || cur != v {
			rs.Annotations[k] = v
			changed = true
		}
	}
	oldRevision, had := rs.Annotations[AnnotationRevision]
	oldInt, err := strconv.ParseInt(oldRevision, 10, 64)
	if err != nil {
		if oldRevision != "" {
			// Malformed: leave it to a human rather than guess.
			return changed
		}
		oldInt = 0
	}
	newInt, err := strconv.ParseInt(newRevision, 10, 64)
	if err != nil {
		return changed
	}
	if oldInt < newInt {
		rs.Annotations[AnnotationRevision] = newRevision
		changed = true
		if had && oldRevision != "" {
			hist := rs.Annotations[AnnotationRevisionHistory]
			if hist == "" {
				hist = oldRevision
			} else {
				hist += "," + oldRevision
			}
			for len(hist) > maxRevisionHistoryChars {
				i := strings.IndexByte(hist, ',')
				if i < 0 {
					break
				}
				hist = hist[i+1:]
			}
			rs.Annotations[AnnotationRevisionHistory] = hist
		}
	}
	if !exists && setReplicasAnnotations(rs, replicasOf(d), replicasOf(d)+maxSurge(d)) {
		changed = true
	}
	return changed
}

// setReplicasAnnotations records the Deployment size a ReplicaSet was
// scaled for; it reports whether rs changed.
func setReplicasAnnotations(rs *appsv1.ReplicaSet, desired, maxReplicas int32) bool {
	if !replicasAnnotationsNeedUpdate(rs, desired, maxReplicas) {
		return false
	}
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	rs.Annotations[AnnotationDesiredReplicas] = strconv.Itoa(int(desired))
	rs.Annotations[AnnotationMaxReplicas] = strconv.Itoa(int(maxReplicas))
	return true
}

func replicasAnnotationsNeedUpdate(rs *appsv1.ReplicaSet, desired, maxReplicas int32) bool {
	return rs.Annotations[AnnotationDesiredReplicas] != strconv.Itoa(int(desired)) ||
		rs.Annotations[AnnotationMaxReplicas] != strconv.Itoa(int(maxReplicas))
}

// isSaturated reports whether rs alone runs all of d, available.
func isSaturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	desired, ok := intAnnotation(rs, AnnotationDesiredReplicas)
	return ok && desired == replicasOf(d) &&
		replicasOfRS(rs) == replicasOf(d) && rs.Status.AvailableReplicas == replicasOf(d)
}

// scaleTarget is a size one ReplicaSet should have.
type scaleTarget struct {
	rs   *appsv1.ReplicaSet
	size int32
}

// scaleTargets decides the sizes of a scale without rollout, as kube's
// DeploymentController.scale:
//   - one active ReplicaSet (or none, then the new one or the newest old
//     one) takes spec.replicas;
//   - a saturated new ReplicaSet leaves the old ones at zero;
//   - otherwise, in a rolling update, the pods to add or remove up to
//     spec.replicas + maxSurge are shared among the active ReplicaSets in
//     proportion to their sizes, the rounding leftover going to the
//     largest (newer first when growing, older first when shrinking).
//
// Targets may repeat a ReplicaSet's current size: scaleReplicaSet still
// refreshes its replicas annotations then.
func scaleTargets(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) []scaleTarget {
	if rs := activeOrLatest(newRS, oldRSs); rs != nil {
		if replicasOfRS(rs) == replicasOf(d) {
			return nil
		}
		return []scaleTarget{{rs, replicasOf(d)}}
	}
	if isSaturated(d, newRS) {
		var out []scaleTarget
		for _, rs := range activeReplicaSets(oldRSs) {
			out = append(out, scaleTarget{rs, 0})
		}
		return out
	}
	if !isRollingUpdate(d) {
		return nil
	}
	active := activeReplicaSets(withNew(oldRSs, newRS))
	var allowed int32
	if replicasOf(d) > 0 {
		allowed = replicasOf(d) + maxSurge(d)
	}
	toAdd := allowed - specReplicaCount(active)
	switch {
	case toAdd > 0:
		// Largest first; among equals, newer first.
		sort.SliceStable(active, func(i, j int) bool {
			if si, sj := replicasOfRS(active[i]), replicasOfRS(active[j]); si != sj {
				return si > sj
			}
			return olderFirst(active[j], active[i])
		})
	case toAdd < 0:
		// Largest first; among equals, older first.
		sort.SliceStable(active, func(i, j int) bool {
			if si, sj := replicasOfRS(active[i]), replicasOfRS(active[j]); si != sj {
				return si > sj
			}
			return olderFirst(active[i], active[j])
		})
	}
	sizes := make([]int32, len(active))
	var added int32
	for i, rs := range active {
		sizes[i] = replicasOfRS(rs)
		if toAdd != 0 {
			p := proportion(d, rs, toAdd, added)
			sizes[i] += p
			added += p
		}
	}
	out := make([]scaleTarget, len(active))
	for i, rs := range active {
		if i == 0 && toAdd != 0 {
			sizes[0] = max(sizes[0]+toAdd-added, 0)
		}
		out[i] = scaleTarget{rs, sizes[i]}
	}
	return out
}

// activeOrLatest is the only active ReplicaSet, or with none active the
// new one, else the newest old one; nil when several are active.
func activeOrLatest(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(oldRSs) == 0 {
		return nil
	}
	active := activeReplicaSets(withNew(oldRSs, newRS))
	switch len(active) {
	case 0:
		if newRS != nil {
			return newRS
		}
		newest := oldRSs[0]
		for _, rs := range oldRSs[1:] {
			if olderFirst(newest, rs) {
				newest = rs
			}
		}
		return newest
	case 1:
		return active[0]
	}
	return nil
}

// proportion is how many of toAdd (negative: to remove) replicas rs takes,
// given added already handed out: its share of the new maximum size by
// the max-replicas it was last scaled for, bounded by what is left.
func proportion(d *appsv1.Deployment, rs *appsv1.ReplicaSet, toAdd, added int32) int32 {
	if replicasOfRS(rs) == 0 || toAdd == 0 || toAdd == added {
		return 0
	}
	fraction := replicaSetFraction(d, rs)
	left := toAdd - added
	if toAdd > 0 {
		return min(fraction, left)
	}
	return max(fraction, left)
}

// replicaSetFraction is how rs's size would change if it kept its share
// of the Deployment at the new size.
func replicaSetFraction(d *appsv1.Deployment, rs *appsv1.ReplicaSet) int32 {
	if replicasOf(d) == 0 {
		return -replicasOfRS(rs)
	}
	newMax := replicasOf(d) + maxSurge(d)
	oldMax, ok := intAnnotation(rs, AnnotationMaxReplicas)
	if !ok || oldMax == 0 {
		// Scaled by hand or by something else: assume the current size
		// of the Deployment.
		oldMax = d.Status.Replicas
	}
	if oldMax == 0 {
		return 0
	}
	size := float64(replicasOfRS(rs)) * float64(newMax) / float64(oldMax)
	return int32(math.Round(size)) - replicasOfRS(rs)
}
