package replicaset

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"kiln.dev/kiln/components/controllers/worker"
)

// sync brings one ReplicaSet's Pods to spec.replicas and writes its
// status. It reads everything from the caches, so it is idempotent; it
// creates or deletes nothing while the expectations say the caches still
// lag its own earlier writes.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return worker.Terminal(err)
	}
	rs, err := c.rsLister.ReplicaSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	needsSync, wait := c.exp.Satisfied(key)
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		return worker.Terminal(fmt.Errorf("invalid selector: %w", err))
	}
	if selector.Empty() {
		// The API refuses it; were one stored anyway, it must not
		// adopt every Pod of the namespace.
		return worker.Terminal(errors.New("empty selector"))
	}
	// All Pods of the namespace, not just the matching ones: owned Pods
	// that stopped matching must be found to be released.
	all, err := c.podLister.Pods(namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	var active []*corev1.Pod
	terminating := 0
	for _, p := range all {
		switch {
		case podFinished(p):
		case p.DeletionTimestamp != nil:
			if ref := metav1.GetControllerOf(p); ref != nil && ref.UID == rs.UID && selector.Matches(labels.Set(p.Labels)) {
				terminating++
			}
		default:
			active = append(active, p)
		}
	}
	// The Pods are the cache's: never changed, only read.
	pods, err := c.claimPods(ctx, rs, selector, active)
	if err != nil {
		return err
	}

	var manageErr error
	switch {
	case !needsSync:
		// The watch has not shown all of our writes yet; those events
		// enqueue this key. Come back when the expectations expire in
		// case they never do.
		c.queue.AddAfter(key, wait)
	case rs.DeletionTimestamp == nil:
		manageErr = c.manageReplicas(ctx, key, rs, pods)
	}
	if ctx.Err() != nil {
		return ctx.Err() // stopping: no status from a half-done sync
	}
	status, availableIn := calculateStatus(rs, pods, terminating, manageErr, c.now())
	if err := c.updateStatus(ctx, rs, status); err != nil {
		return errors.Join(manageErr, fmt.Errorf("update status: %w", err))
	}
	if manageErr == nil && availableIn > 0 {
		// No event marks a Pod becoming available: look again once the
		// first ready Pod has been ready for minReadySeconds.
		c.queue.AddAfter(key, availableIn)
	}
	return manageErr
}

// podFinished reports whether the Pod has stopped for good (Succeeded or
// Failed); such Pods are not replicas.
func podFinished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func replicas(rs *appsv1.ReplicaSet) int {
	if rs.Spec.Replicas == nil {
		return 1 // the API defaults it; be safe without
	}
	return int(*rs.Spec.Replicas)
}

// manageReplicas creates or deletes Pods so that len(pods) moves to
// spec.replicas, at most BurstReplicas per call.
func (c *Controller) manageReplicas(ctx context.Context, key string, rs *appsv1.ReplicaSet, pods []*corev1.Pod) error {
	diff := len(pods) - replicas(rs)
	switch {
	case diff < 0:
		n := min(-diff, BurstReplicas)
		c.exp.ExpectCreations(key, n)
		created, err := worker.SlowStartBatch(ctx, n, SlowStartInitialBatchSize, func() error { return c.createPod(ctx, rs) })
		if skipped := n - created; skipped > 0 {
			// Failed or never attempted: the watch will not show these.
			c.exp.CreationsObserved(key, skipped)
		}
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil // nothing can be created; the namespace goes anyway
		}
		if err != nil {
			return fmt.Errorf("create pods: created %d of %d: %w", created, n, err)
		}
		return nil
	case diff > 0:
		n := min(diff, BurstReplicas)
		victims := podsToDelete(slices.Clone(pods), n)
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = podKey(p)
		}
		c.exp.ExpectDeletions(key, keys)
		errs := make([]error, len(victims))
		var wg sync.WaitGroup
		for i, p := range victims {
			wg.Go(func() {
				err := worker.Recover(func() error { return c.deletePodNow(ctx, rs, p) })
				if err != nil {
					c.exp.DeletionObserved(key, keys[i])
					if !apierrors.IsNotFound(err) {
						errs[i] = err
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("delete pods: %w", err)
		}
	}
	return nil
}

// createPod creates one Pod from the ReplicaSet's template and records
// the outcome as an Event, as kube's pod control does: none when the
// namespace is going, since nothing can be created there.
func (c *Controller) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	pod := newPod(rs)
	if len(pod.Labels) == 0 {
		return errors.New("pod template has no labels")
	}
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	created, err := c.client.CoreV1().Pods(rs.Namespace).Create(wctx, pod, metav1.CreateOptions{})
	switch {
	case err == nil:
		c.event(rs, corev1.EventTypeNormal, EventReasonSuccessfulCreate, "Created pod: %s", created.Name)
	case !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		c.event(rs, corev1.EventTypeWarning, EventReasonFailedCreate, "Error creating: %v", err)
	}
	return err
}

// maxGenerateNameLength is how much of generateName kube's name generator
// keeps, leaving room for the random suffix.
const maxGenerateNameLength = 58

// newPod builds a Pod from the ReplicaSet's template, owned by it.
func newPod(rs *appsv1.ReplicaSet) *corev1.Pod {
	t := &rs.Spec.Template
	prefix := rs.Name + "-"
	if len(prefix) > maxGenerateNameLength {
		prefix = prefix[:maxGenerateNameLength]
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    prefix,
			Namespace:       rs.Namespace,
			Labels:          maps.Clone(t.Labels),
			Annotations:     maps.Clone(t.Annotations),
			Finalizers:      slices.Clone(t.Finalizers),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, controllerKind)},
		},
		Spec: *t.Spec.DeepCopy(),
	}
}

// deletePodNow deletes one Pod of rs, gracefully, if it is still the one
// that was chosen, and records the outcome as an Event (none for a Pod
// already gone).
func (c *Controller) deletePodNow(ctx context.Context, rs *appsv1.ReplicaSet, p *corev1.Pod) error {
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	err := c.client.CoreV1().Pods(p.Namespace).Delete(wctx, p.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(p.UID))})
	switch {
	case err == nil:
		c.event(rs, corev1.EventTypeNormal, EventReasonSuccessfulDelete, "Deleted pod: %s", p.Name)
	case apierrors.IsConflict(err):
		// Another Pod by that name: the chosen one is gone.
		return apierrors.NewNotFound(corev1.Resource("pods"), p.Name)
	case !apierrors.IsNotFound(err):
		c.event(rs, corev1.EventTypeWarning, EventReasonFailedDelete, "Error deleting: %v", err)
	}
	return err
}

// claimPods returns the Pods that belong to rs: those it controls that
// match its selector, plus matching orphans it adopts. Controlled Pods that
// no longer match are released. Nothing is adopted or released while rs
// is being deleted.
func (c *Controller) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, selector labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	// Before the first adoption, check with a live read that rs is still
	// there and not being deleted: the cache may be older than the
	// orphan (kubernetes#42639).
	var checked bool
	var adoptErr error
	canAdopt := func() error {
		if !checked {
			checked = true
			fresh, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
			switch {
			case err != nil:
				adoptErr = err
			case fresh.UID != rs.UID:
				adoptErr = fmt.Errorf("replicaset was replaced (uid %s, want %s)", fresh.UID, rs.UID)
			case fresh.DeletionTimestamp != nil:
				adoptErr = errors.New("replicaset is being deleted")
			}
		}
		return adoptErr
	}
	var claimed []*corev1.Pod
	var errs []error
	for _, p := range pods {
		matches := selector.Matches(labels.Set(p.Labels))
		ref := metav1.GetControllerOf(p)
		switch {
		case ref != nil && ref.UID != rs.UID:
			// Someone else's.
		case ref != nil && matches:
			claimed = append(claimed, p)
		case ref != nil:
			if rs.DeletionTimestamp != nil {
				continue
			}
			if err := c.release(ctx, rs, p); err != nil {
				errs = append(errs, fmt.Errorf("release pod %s: %w", p.Name, err))
			}
		case !matches || rs.DeletionTimestamp != nil || p.DeletionTimestamp != nil:
			// An orphan that is not ours to adopt.
		default:
			if err := canAdopt(); err != nil {
				errs = append(errs, fmt.Errorf("adopt pod %s: %w", p.Name, err))
				continue
			}
			err := c.adopt(ctx, rs, p)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("adopt pod %s: %w", p.Name, err))
				continue
			}
			claimed = append(claimed, p)
		}
	}
	return claimed, errors.Join(errs...)
}

// adopt makes rs the Pod's controller. The patch names the Pod's UID, so
// it fails rather than adopt a new Pod by the same name.
func (c *Controller) adopt(ctx context.Context, rs *appsv1.ReplicaSet, p *corev1.Pod) error {
	ref := metav1.NewControllerRef(rs, controllerKind)
	patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":%q,"kind":%q,"name":%q,"uid":%q,"controller":true,"blockOwnerDeletion":true}],"uid":%q}}`,
		ref.APIVersion, ref.Kind, ref.Name, ref.UID, p.UID)
	return c.patchPod(ctx, p, patch)
}

// release removes rs from the Pod's ownerReferences.
func (c *Controller) release(ctx context.Context, rs *appsv1.ReplicaSet, p *corev1.Pod) error {
	patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"$patch":"delete","uid":%q}],"uid":%q}}`, rs.UID, p.UID)
	err := c.patchPod(ctx, p, patch)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || apierrors.IsInvalid(err) {
		// Gone, replaced by another Pod of that name (the UID
		// precondition), or no longer owned: nothing to release.
		return nil
	}
	return err
}

func (c *Controller) patchPod(ctx context.Context, p *corev1.Pod, patch string) error {
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	_, err := c.client.CoreV1().Pods(p.Namespace).Patch(wctx, p.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}
