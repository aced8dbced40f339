package daemonset

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"kiln.dev/kiln/components/controllers/history"
)

// DefaultRevisionHistoryLimit is how many old ControllerRevisions are kept
// when spec.revisionHistoryLimit is unset (the API's default).
const DefaultRevisionHistoryLimit = 10

// ControllerRevisions, as kube's DaemonSet controller keeps them (its
// constructHistory and cleanupHistory): one per template the DaemonSet
// has had, named <name>-<hash>, labelled with the template's labels and
// the controller-revision-hash, owned by the DaemonSet, its data the
// strategic merge patch that restores the template and its revision
// number increasing. `kubectl rollout history ds/x` lists them and
// `kubectl rollout undo ds/x` applies one.

// syncHistory makes sure the ControllerRevision of ds's current template
// exists and has the highest revision number, and deletes old ones beyond
// spec.revisionHistoryLimit whose hash no Pod of ds carries. It returns
// the current template's hash.
func (c *Controller) syncHistory(ctx context.Context, ds *appsv1.DaemonSet, pods map[string][]*corev1.Pod) (string, error) {
	hash := templateHash(ds)
	data, err := history.TemplatePatch(&ds.Spec.Template)
	if err != nil {
		return "", err
	}
	all, err := c.revLister.ControllerRevisions(ds.Namespace).List(labels.Everything())
	if err != nil {
		return "", err
	}
	var owned []*appsv1.ControllerRevision
	var cur *appsv1.ControllerRevision
	maxRevision := int64(0)
	for _, r := range all {
		if ref := metav1.GetControllerOf(r); ref == nil || ref.UID != ds.UID {
			continue // not ours; orphans are not adopted, as with Pods
		}
		owned = append(owned, r)
		maxRevision = max(maxRevision, r.Revision)
		if r.Labels[LabelRevisionHash] == hash && history.SameData(r.Data.Raw, data) {
			cur = r
		}
	}
	switch {
	case cur == nil:
		if cur, err = c.createRevision(ctx, ds, hash, data, maxRevision+1); err != nil {
			return "", err
		}
		owned = append(owned, cur)
	case cur.Revision < maxRevision:
		// Back to an earlier template (a rollback): its revision becomes
		// the newest, as kube renumbers it.
		cp := cur.DeepCopy()
		cp.Revision = maxRevision + 1
		wctx, cancel := writeContext(ctx)
		defer cancel()
		if cur, err = c.client.AppsV1().ControllerRevisions(ds.Namespace).Update(wctx, cp, metav1.UpdateOptions{}); err != nil {
			return "", fmt.Errorf("renumber controllerrevision %s: %w", cp.Name, err)
		}
	}
	return hash, c.cleanupHistory(ctx, ds, owned, cur, pods)
}

// createRevision stores the ControllerRevision of ds's current template.
// Found already there (a cache behind our own create) and the same, it is
// used; a different one by that name is a hash collision, which bumps
// status.collisionCount so that the next sync hashes differently.
func (c *Controller) createRevision(ctx context.Context, ds *appsv1.DaemonSet, hash string, data []byte, revision int64) (*appsv1.ControllerRevision, error) {
	lbls := maps.Clone(ds.Spec.Template.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[LabelRevisionHash] = hash
	rev := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:            history.Name(ds.Name, hash),
			Namespace:       ds.Namespace,
			Labels:          lbls,
			Annotations:     maps.Clone(ds.Annotations), // kubernetes.io/change-cause, for rollout history
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, controllerKind)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
	revs := c.client.AppsV1().ControllerRevisions(ds.Namespace)
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
	if ref := metav1.GetControllerOf(got); ref != nil && ref.UID == ds.UID && history.SameData(got.Data.Raw, data) {
		return got, nil
	}
	cp := ds.DeepCopy()
	n := int32(0)
	if cp.Status.CollisionCount != nil {
		n = *cp.Status.CollisionCount
	}
	n++
	cp.Status.CollisionCount = &n
	if _, uerr := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(wctx, cp, metav1.UpdateOptions{}); uerr != nil {
		return nil, errors.Join(err, fmt.Errorf("bump collisionCount: %w", uerr))
	}
	return nil, fmt.Errorf("controllerrevision %s: hash collision, collisionCount now %d", rev.Name, n)
}

// cleanupHistory deletes the oldest of ds's ControllerRevisions beyond
// spec.revisionHistoryLimit, never the current one nor one whose hash a
// Pod of ds still carries.
func (c *Controller) cleanupHistory(ctx context.Context, ds *appsv1.DaemonSet, owned []*appsv1.ControllerRevision, cur *appsv1.ControllerRevision, pods map[string][]*corev1.Pod) error {
	limit := DefaultRevisionHistoryLimit
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = int(*ds.Spec.RevisionHistoryLimit)
	}
	live := map[string]bool{cur.Labels[LabelRevisionHash]: true}
	for _, ps := range pods {
		for _, p := range ps {
			live[p.Labels[LabelRevisionHash]] = true
		}
	}
	var old []*appsv1.ControllerRevision
	for _, r := range owned {
		if r.Name != cur.Name && !live[r.Labels[LabelRevisionHash]] {
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
