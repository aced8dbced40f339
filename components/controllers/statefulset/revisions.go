package statefulset

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/components/controllers/history"
)

// defaultRevisionHistoryLimit is how many old ControllerRevisions are kept
// when spec.revisionHistoryLimit is unset (the API's default).
const defaultRevisionHistoryLimit = 10

// revisions finds or makes set's ControllerRevisions, as kube's
// getStatefulSetRevisions does: update is the one of the current template
// (made, or renumbered newest on a rollback, when needed); current is the
// one status.currentRevision names, or update when none does. owned is
// every revision set controls.
func (c *Controller) revisions(ctx context.Context, set *appsv1.StatefulSet) (current, update *appsv1.ControllerRevision, owned []*appsv1.ControllerRevision, err error) {
	data, err := history.TemplatePatch(&set.Spec.Template)
	if err != nil {
		return nil, nil, nil, err
	}
	update, owned, err = history.Sync(ctx, c.client, c.revLister, history.Owner{
		Object: set, Kind: controllerKind, Template: &set.Spec.Template, Hash: history.Hash(data, set.Status.CollisionCount),
		BumpCollisionCount: func(ctx context.Context) error {
			cp := set.DeepCopy()
			cp.Status.CollisionCount = ptr.To(ptr.Deref(cp.Status.CollisionCount, 0) + 1)
			_, err := c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
			return err
		},
	})
	if err != nil {
		return nil, nil, nil, err
	}
	current = update
	for _, r := range owned {
		if r.Name == set.Status.CurrentRevision {
			current = r
		}
	}
	return current, update, owned, nil
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
// spec.revisionHistoryLimit, never a live one (current, update, or one a
// Pod of set was made from).
func (c *Controller) cleanupHistory(ctx context.Context, set *appsv1.StatefulSet, owned []*appsv1.ControllerRevision, live map[string]bool) error {
	limit := defaultRevisionHistoryLimit
	if set.Spec.RevisionHistoryLimit != nil {
		limit = int(*set.Spec.RevisionHistoryLimit)
	}
	return history.Prune(ctx, c.client, owned, limit, func(r *appsv1.ControllerRevision) bool { return live[r.Name] })
}
