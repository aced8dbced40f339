package daemonset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

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
	cur, owned, err := history.Sync(ctx, c.client, c.revLister, history.Owner{
		Object: ds, Kind: controllerKind, Template: &ds.Spec.Template, Hash: hash,
		BumpCollisionCount: func(ctx context.Context) error {
			cp := ds.DeepCopy()
			cp.Status.CollisionCount = ptr.To(ptr.Deref(cp.Status.CollisionCount, 0) + 1)
			_, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
			return err
		},
	})
	if err != nil {
		return "", err
	}
	limit := DefaultRevisionHistoryLimit
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = int(*ds.Spec.RevisionHistoryLimit)
	}
	live := map[string]bool{hash: true}
	for _, ps := range pods {
		for _, p := range ps {
			live[p.Labels[LabelRevisionHash]] = true
		}
	}
	return hash, history.Prune(ctx, c.client, owned, limit, func(r *appsv1.ControllerRevision) bool {
		return r.Name == cur.Name || live[r.Labels[LabelRevisionHash]]
	})
}
