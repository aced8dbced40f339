package deployment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// sync reconciles one Deployment, as kube's syncDeployment: read from the
// caches, claim ReplicaSets, then either only report status (deleting),
// scale (paused, or spec.replicas changed) or roll out by strategy. It
// works on a copy of the cached Deployment and is idempotent; every write
// carries the resourceVersion read, so a stale cache ends in a conflict
// and a retry, never in a lost update.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return terminal(err)
	}
	cached, err := c.dLister.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // deleted: the garbage collector removes its ReplicaSets
	}
	if err != nil {
		return err
	}
	d := cached.DeepCopy()

	if sel := d.Spec.Selector; sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			if err := c.writeStatus(ctx, d); err != nil {
				return err
			}
		}
		return terminal(errSelectsAll)
	}

	rsList, err := c.claimReplicaSets(ctx, d)
	if err != nil {
		return err
	}
	existing, oldRSs := splitReplicaSets(d, rsList)
	newRS, err := c.syncNewReplicaSet(ctx, d, existing, oldRSs)
	if err != nil {
		return err
	}
	if d.DeletionTimestamp != nil {
		return c.syncDeploymentStatus(ctx, d, withNew(oldRSs, newRS), newRS)
	}
	if err := c.checkPausedConditions(ctx, d); err != nil {
		return err
	}
	if d.Spec.Paused || isScalingEvent(d, newRS, oldRSs) {
		return c.syncScale(ctx, d, newRS, oldRSs)
	}
	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		podMap, err := c.podMap(d, rsList)
		if err != nil {
			return err
		}
		return c.rolloutRecreate(ctx, d, newRS, oldRSs, podMap)
	case appsv1.RollingUpdateDeploymentStrategyType, "":
		return c.rolloutRolling(ctx, d, newRS, oldRSs)
	}
	return terminal(fmt.Errorf("unknown strategy type %q", d.Spec.Strategy.Type))
}

// claimReplicaSets returns the ReplicaSets d controls, as kube's
// ControllerRefManager: it adopts orphans its selector matches and
// releases owned ones it no longer matches.
func (c *Controller) claimReplicaSets(ctx context.Context, d *appsv1.Deployment) ([]*appsv1.ReplicaSet, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, terminal(fmt.Errorf("selector: %w", err))
	}
	all, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	// Adoption is checked once against a live read, as kube's
	// RecheckDeletionTimestamp: the cache may not show that d is going,
	// or was replaced by a Deployment of the same name.
	var adoptErr error
	checked := false
	canAdopt := func() error {
		if checked {
			return adoptErr
		}
		checked = true
		fresh, err := c.client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		switch {
		case err != nil:
			adoptErr = err
		case fresh.UID != d.UID:
			adoptErr = fmt.Errorf("deployment %s/%s was recreated (uid %s, want %s)", d.Namespace, d.Name, fresh.UID, d.UID)
		case fresh.DeletionTimestamp != nil:
			adoptErr = fmt.Errorf("deployment %s/%s is being deleted", d.Namespace, d.Name)
		}
		return adoptErr
	}
	var owned []*appsv1.ReplicaSet
	for _, rs := range all {
		match := sel.Matches(labels.Set(rs.Labels))
		ref := metav1.GetControllerOf(rs)
		switch {
		case ref != nil && ref.UID == d.UID:
			if match {
				owned = append(owned, rs)
			} else if d.DeletionTimestamp == nil {
				if err := c.releaseReplicaSet(ctx, d, rs); err != nil {
					return nil, err
				}
			}
		case ref == nil && match && rs.DeletionTimestamp == nil && d.DeletionTimestamp == nil:
			if err := canAdopt(); err != nil {
				return nil, err
			}
			adopted, err := c.adoptReplicaSet(ctx, d, rs)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			owned = append(owned, adopted)
		}
	}
	return owned, nil
}

func controllerRef(d *appsv1.Deployment) *metav1.OwnerReference {
	return metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))
}

func (c *Controller) adoptReplicaSet(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	cp := rs.DeepCopy()
	cp.OwnerReferences = append(cp.OwnerReferences, *controllerRef(d))
	return c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
}

func (c *Controller) releaseReplicaSet(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet) error {
	cp := rs.DeepCopy()
	refs := cp.OwnerReferences[:0]
	for _, r := range cp.OwnerReferences {
		if r.UID != d.UID {
			refs = append(refs, r)
		}
	}
	cp.OwnerReferences = refs
	_, err := c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// podMap groups the cached pods d selects by the UID of the ReplicaSet in
// rsList that controls them; every ReplicaSet has an entry.
func (c *Controller) podMap(d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (map[types.UID][]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, terminal(fmt.Errorf("selector: %w", err))
	}
	pods, err := c.podLister.Pods(d.Namespace).List(sel)
	if err != nil {
		return nil, err
	}
	m := make(map[types.UID][]*corev1.Pod, len(rsList))
	for _, rs := range rsList {
		m[rs.UID] = nil
	}
	for _, pod := range pods {
		ref := metav1.GetControllerOf(pod)
		if ref == nil {
			continue
		}
		if list, ok := m[ref.UID]; ok {
			m[ref.UID] = append(list, pod)
		}
	}
	return m, nil
}

// syncScale scales without rolling out: a paused Deployment, or a change
// of spec.replicas, shared proportionally among the ReplicaSets.
func (c *Controller) syncScale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) error {
	if err := c.scale(ctx, d, newRS, oldRSs); err != nil {
		return err
	}
	if d.Spec.Paused {
		if err := c.cleanup(ctx, d, oldRSs); err != nil {
			return err
		}
	}
	return c.syncDeploymentStatus(ctx, d, withNew(oldRSs, newRS), newRS)
}

// isScalingEvent reports whether spec.replicas changed since the active
// ReplicaSets were last scaled, which their desired-replicas annotation
// records.
func isScalingEvent(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) bool {
	for _, rs := range activeReplicaSets(withNew(oldRSs, newRS)) {
		desired, ok := intAnnotation(rs, AnnotationDesiredReplicas)
		if ok && desired != replicasOf(d) {
			return true
		}
	}
	return false
}

// splitReplicaSets finds the new ReplicaSet among d's, the oldest one
// running d's template (nil when none does), and all the others.
func splitReplicaSets(d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet) {
	existing := findNewReplicaSet(d, rsList)
	var oldRSs []*appsv1.ReplicaSet
	for _, rs := range rsList {
		if existing == nil || rs.UID != existing.UID {
			oldRSs = append(oldRSs, rs)
		}
	}
	return existing, oldRSs
}

// syncNewReplicaSet brings the annotations of the existing new ReplicaSet
// (revision: max old revision + 1, or kept when already above) and d's
// revision up to date. It returns the new ReplicaSet as stored, or nil
// when there is none yet.
func (c *Controller) syncNewReplicaSet(ctx context.Context, d *appsv1.Deployment, existing *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	if existing == nil {
		return nil, nil
	}
	newRevision := fmt.Sprint(maxRevision(oldRSs) + 1)
	rs := existing
	cp := existing.DeepCopy()
	changed := setNewReplicaSetAnnotations(d, cp, newRevision, true)
	if changed || cp.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
		cp.Spec.MinReadySeconds = d.Spec.MinReadySeconds
		updated, err := c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
		if err != nil {
			return nil, fmt.Errorf("update replicaset %s: %w", cp.Name, err)
		}
		rs = updated
	}
	if err := c.writeRevision(ctx, d, rs.Annotations[AnnotationRevision]); err != nil {
		return nil, err
	}
	// A Deployment that never had a Progressing condition gets one from
	// the first time its new ReplicaSet is seen.
	if hasProgressDeadline(d) && getCondition(d.Status, appsv1.DeploymentProgressing) == nil {
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewReplicaSet,
			fmt.Sprintf("Found new replica set %q", rs.Name), c.now()))
		if err := c.writeStatus(ctx, d); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// createNewReplicaSet creates the ReplicaSet of d's current template, with
// revision max old revision + 1.
func (c *Controller) createNewReplicaSet(ctx context.Context, d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	newRevision := fmt.Sprint(maxRevision(oldRSs) + 1)
	rs := newReplicaSetFor(d, oldRSs)
	setNewReplicaSetAnnotations(d, rs, newRevision, false)
	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	alreadyExists := false
	switch {
	case apierrors.IsAlreadyExists(err):
		// Either a cache that has not seen our own earlier create yet, or
		// a hash collision with a ReplicaSet of another template.
		got, getErr := c.client.AppsV1().ReplicaSets(d.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		if getErr != nil {
			return nil, getErr
		}
		if ref := metav1.GetControllerOf(got); ref != nil && ref.UID == d.UID && equalIgnoreHash(&d.Spec.Template, &got.Spec.Template) {
			created, alreadyExists = got, true
			break
		}
		// The next sync hashes with the incremented count.
		n := int32(0)
		if d.Status.CollisionCount != nil {
			n = *d.Status.CollisionCount
		}
		d.Status.CollisionCount = new(n + 1)
		if werr := c.writeStatus(ctx, d); werr != nil {
			return nil, errors.Join(err, werr)
		}
		return nil, err
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		if !apierrors.IsConflict(err) {
			c.event(d, corev1.EventTypeWarning, ReasonFailedReplicaSetCreate, "%s", msg)
		}
		if hasProgressDeadline(d) && !apierrors.IsConflict(err) {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonFailedReplicaSetCreate, msg, c.now()))
			if werr := c.writeStatus(ctx, d); werr != nil {
				return nil, errors.Join(err, werr)
			}
		}
		return nil, fmt.Errorf("create replicaset %s: %w", rs.Name, err)
	}
	if !alreadyExists && replicasOfRS(created) > 0 {
		c.event(d, corev1.EventTypeNormal, EventReasonScalingReplicaSet, "Scaled up replica set %s from 0 to %d", created.Name, replicasOfRS(created))
	}

	if err := c.writeRevision(ctx, d, created.Annotations[AnnotationRevision]); err != nil {
		return nil, err
	}
	if !alreadyExists && hasProgressDeadline(d) {
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewReplicaSetCreated,
			fmt.Sprintf("Created new replica set %q", created.Name), c.now()))
		if err := c.writeStatus(ctx, d); err != nil {
			return nil, err
		}
	}
	return created, nil
}

// newReplicaSetFor builds the ReplicaSet of d's current template, sized as
// the strategy allows next to oldRSs.
func newReplicaSetFor(d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	hash := templateHash(&d.Spec.Template, d.Status.CollisionCount)
	tmpl := d.Spec.Template.DeepCopy()
	tmpl.Labels = withLabel(tmpl.Labels, LabelPodTemplateHash, hash)
	sel := d.Spec.Selector.DeepCopy()
	sel.MatchLabels = withLabel(sel.MatchLabels, LabelPodTemplateHash, hash)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{*controllerRef(d)},
			Labels:          withLabel(d.Spec.Template.Labels, LabelPodTemplateHash, hash),
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        new(int32(0)),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        sel,
			Template:        *tmpl,
		},
	}
	rs.Spec.Replicas = new(newRSNewReplicas(d, withNew(oldRSs, rs), rs))
	return rs
}

// withLabel returns a copy of m with k=v.
func withLabel(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for mk, mv := range m {
		out[mk] = mv
	}
	out[k] = v
	return out
}

// writeStatus writes d.Status through the status subresource and, on
// success, replaces *d with what the server stored, so that the next
// write in this sync carries the new resourceVersion.
func (c *Controller) writeStatus(ctx context.Context, d *appsv1.Deployment) error {
	out, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	*d = *out
	return nil
}

// writeRevision sets d's revision annotation. kube writes it with the
// status; kiln's status subresource keeps metadata, as the API contract
// says, so it is a merge patch of the main resource with the
// resourceVersion read as precondition. It keeps the status edits made to
// d in memory and not yet written.
func (c *Controller) writeRevision(ctx context.Context, d *appsv1.Deployment, revision string) error {
	if revision == "" || d.Annotations[AnnotationRevision] == revision {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": d.ResourceVersion,
		"annotations":     map[string]string{AnnotationRevision: revision},
	}})
	if err != nil {
		return err
	}
	out, err := c.client.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("set revision: %w", err)
	}
	status := d.Status
	*d = *out
	d.Status = status
	return nil
}

// scaleReplicaSet sets rs's size and its replicas annotations. scaled
// reports a change of size; the returned ReplicaSet is the stored one, or
// rs when nothing was written.
func (c *Controller) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, size int32, d *appsv1.Deployment) (scaled bool, out *appsv1.ReplicaSet, err error) {
	sizeChanged := replicasOfRS(rs) != size
	desired, maxReplicas := replicasOf(d), replicasOf(d)+maxSurge(d)
	if !sizeChanged && !replicasAnnotationsNeedUpdate(rs, desired, maxReplicas) {
		return false, rs, nil
	}
	cp := rs.DeepCopy()
	cp.Spec.Replicas = new(size)
	setReplicasAnnotations(cp, desired, maxReplicas)
	out, err = c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return false, nil, fmt.Errorf("scale replicaset %s to %d: %w", rs.Name, size, err)
	}
	if sizeChanged {
		c.log.Debug("scaled replicaset", logKeyObject, keyOf(d), logKeyReplicaSet, rs.Name, logKeyReplicas, size)
		direction := "up"
		if size < replicasOfRS(rs) {
			direction = "down"
		}
		c.event(d, corev1.EventTypeNormal, EventReasonScalingReplicaSet, "Scaled %s replica set %s from %d to %d", direction, rs.Name, replicasOfRS(rs), size)
	}
	return sizeChanged, out, nil
}

// scale brings the ReplicaSets to spec.replicas without rolling out: the
// only active one (or the newest) takes all; with a saturated new
// ReplicaSet the old ones go to zero; otherwise, in a rolling update, the
// difference is shared in proportion to their sizes.
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) error {
	for _, t := range scaleTargets(d, newRS, oldRSs) {
		if _, _, err := c.scaleReplicaSet(ctx, t.rs, t.size, d); err != nil {
			return err
		}
	}
	return nil
}

// cleanup deletes the oldest scaled-down ReplicaSets beyond
// revisionHistoryLimit.
func (c *Controller) cleanup(ctx context.Context, d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet) error {
	for _, rs := range historyToDelete(d, oldRSs) {
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &rs.UID, ResourceVersion: &rs.ResourceVersion},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete old replicaset %s: %w", rs.Name, err)
		}
	}
	return nil
}

// historyToDelete picks, oldest revision first, the ReplicaSets beyond
// revisionHistoryLimit that are fully scaled down and observed so.
func historyToDelete(d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	if d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	var cleanable []*appsv1.ReplicaSet
	for _, rs := range oldRSs {
		if rs != nil && rs.DeletionTimestamp == nil {
			cleanable = append(cleanable, rs)
		}
	}
	diff := len(cleanable) - int(*d.Spec.RevisionHistoryLimit)
	if diff <= 0 {
		return nil
	}
	sort.SliceStable(cleanable, func(i, j int) bool {
		ri, rj := revisionOf(cleanable[i]), revisionOf(cleanable[j])
		if ri != rj {
			return ri < rj
		}
		return olderFirst(cleanable[i], cleanable[j])
	})
	var out []*appsv1.ReplicaSet
	for _, rs := range cleanable[:diff] {
		if rs.Status.Replicas != 0 || replicasOfRS(rs) != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		out = append(out, rs)
	}
	return out
}
