package statefulset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"kiln.dev/kiln/components/controllers/history"
)

// defaultRevisionHistoryLimit is how many old ControllerRevisions are kept
// when spec.revisionHistoryLimit is unset (the API's default).
const defaultRevisionHistoryLimit = 10

// revisions finds or makes set's ControllerRevisions, as kube's
// getStatefulSetRevisions does: update is the one of the current
// template (made, or renumbered newest on a rollback, when needed);
// current is the one status.currentRevision names, or update when none
// does. owned is every revision set controls.
func (c *Controller) revisions(ctx context.Context, set *appsv1.StatefulSet) (current, update *appsv1.ControllerRevision, owned []*appsv1.ControllerRevision, err error) {
	data, err := history.TemplatePatch(&set.Spec.Template)
	if err != nil {
		return nil, nil, nil, err
	}
	hash := history.Hash(data, set.Status.CollisionCount)
	all, err := c.revLister.ControllerRevisions(set.Namespace).List(labels.Everything())
	if err != nil {
		return nil, nil, nil, err
	}
	maxRevision := int64(0)
	for _, r := range all {
		if ref := metav1.GetControllerOf(r); ref == nil || ref.UID != set.UID {
			continue
		}
		owned = append(owned, r)
		maxRevision = max(maxRevision, r.Revision)
		if history.SameData(r.Data.Raw, data) {
			update = r
		}
	}
	switch {
	case update == nil:
		if update, err = c.createRevision(ctx, set, hash, data, maxRevision+1); err != nil {
			return nil, nil, nil, err
		}
		owned = append(owned, update)
	case update.Revision < maxRevision:
		cp := update.DeepCopy()
		cp.Revision = maxRevision + 1
		wctx, cancel := writeContext(ctx)
		defer cancel()
		if update, err = c.client.AppsV1().ControllerRevisions(set.Namespace).Update(wctx, cp, metav1.UpdateOptions{}); err != nil {
			return nil, nil, nil, fmt.Errorf("renumber controllerrevision %s: %w", cp.Name, err)
		}
	}
	current = update
	for _, r := range owned {
		if r.Name == set.Status.CurrentRevision {
			current = r
		}
	}
	return current, update, owned, nil
}

// createRevision stores the ControllerRevision of set's current template.
// Found already there and the same (a cache behind our own create), it is
// used; a different one by that name is a hash collision, which bumps
// status.collisionCount so that the next sync hashes differently.
func (c *Controller) createRevision(ctx context.Context, set *appsv1.StatefulSet, hash string, data []byte, revision int64) (*appsv1.ControllerRevision, error) {
	lbls := maps.Clone(set.Spec.Template.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[appsv1.ControllerRevisionHashLabelKey] = hash
	rev := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:            history.Name(set.Name, hash),
			Namespace:       set.Namespace,
			Labels:          lbls,
			Annotations:     maps.Clone(set.Annotations), // kubernetes.io/change-cause, for rollout history
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(set, controllerKind)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
	revs := c.client.AppsV1().ControllerRevisions(set.Namespace)
	wctx, cancel := writeContext(ctx)
	defer cancel()
	created, err := revs.Create(wctx, rev, metav1.CreateOptions{})
	if err == nil {
		return created, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create controllerrevision %s: %w", rev.Name, err)
	}
	got, gerr := revs.Get(wctx, rev.Name, metav1.GetOptions{})
	if gerr != nil {
		return nil, fmt.Errorf("get controllerrevision %s: %w", rev.Name, gerr)
	}
	if ref := metav1.GetControllerOf(got); ref != nil && ref.UID == set.UID && history.SameData(got.Data.Raw, data) {
		return got, nil
	}
	cp := set.DeepCopy()
	n := int32(0)
	if cp.Status.CollisionCount != nil {
		n = *cp.Status.CollisionCount
	}
	n++
	cp.Status.CollisionCount = &n
	if _, uerr := c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(wctx, cp, metav1.UpdateOptions{}); uerr != nil {
		return nil, errors.Join(err, fmt.Errorf("bump collisionCount: %w", uerr))
	}
	return nil, fmt.Errorf("controllerrevision %s: hash collision, collisionCount now %d", rev.Name, n)
}

// fromRevision is set with the template rev recorded, as kube's
// ApplyRevision restores it.
func fromRevision(set *appsv1.StatefulSet, rev *appsv1.ControllerRevision) (*appsv1.StatefulSet, error) {
	b, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	patched, err := strategicpatch.StrategicMergePatch(b, rev.Data.Raw, set)
	if err != nil {
		return nil, fmt.Errorf("controllerrevision %s: %w", rev.Name, err)
	}
	out := &appsv1.StatefulSet{}
	if err := json.Unmarshal(patched, out); err != nil {
		return nil, fmt.Errorf("controllerrevision %s: %w", rev.Name, err)
	}
	return out, nil
}

// cleanupHistory deletes the oldest of set's ControllerRevisions beyond
// spec.revisionHistoryLimit, never the current or update one nor one a
// Pod of set was made from.
func (c *Controller) cleanupHistory(ctx context.Context, set *appsv1.StatefulSet, owned []*appsv1.ControllerRevision, live map[string]bool) error {
	limit := defaultRevisionHistoryLimit
	if set.Spec.RevisionHistoryLimit != nil {
		limit = int(*set.Spec.RevisionHistoryLimit)
	}
	var old []*appsv1.ControllerRevision
	for _, r := range owned {
		if !live[r.Name] {
			old = append(old, r)
		}
	}
	if len(old) <= limit {
		return nil
	}
	slices.SortFunc(old, func(a, b *appsv1.ControllerRevision) int { return int(a.Revision - b.Revision) })
	var errs []error
	for _, r := range old[:len(old)-limit] {
		wctx, cancel := writeContext(ctx)
		err := c.client.AppsV1().ControllerRevisions(r.Namespace).Delete(wctx, r.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(r.UID))})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete controllerrevision %s: %w", r.Name, err))
		}
	}
	return errors.Join(errs...)
}
