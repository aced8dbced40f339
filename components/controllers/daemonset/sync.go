package daemonset

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"kiln.dev/kiln/components/controllers/worker"
)

// sync brings one DaemonSet's Pods in line with the Nodes and writes its
// status. It reads everything from the caches, so it is idempotent; it
// creates or deletes nothing while the expectations say the caches still
// lag its own earlier writes.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return worker.Terminal(err)
	}
	ds, err := c.dsLister.DaemonSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return worker.Terminal(fmt.Errorf("invalid selector: %w", err))
	}
	if selector.Empty() {
		return worker.Terminal(errors.New("empty selector"))
	}
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return err
	}
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
	pods, err := c.podLister.Pods(namespace).List(selector)
	if err != nil {
		return err
	}
	// The Pods are the cache's: never changed, only read.
	nodeToPods := map[string][]*corev1.Pod{}
	for _, p := range pods {
		if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != ds.UID {
			continue // not ours; orphans are not adopted
		}
		n := podNodeName(p)
		nodeToPods[n] = append(nodeToPods[n], p)
	}
	for _, ps := range nodeToPods {
		slices.SortFunc(ps, olderFirst)
	}
	hash := templateHash(ds)
	if ds.DeletionTimestamp == nil {
		if hash, err = c.syncHistory(ctx, ds, nodeToPods); err != nil {
			return fmt.Errorf("revisions: %w", err)
		}
	}
	now := c.now()

	var manageErr error
	satisfied, wait := c.exp.Satisfied(key)
	switch {
	case !satisfied:
		// The watch has not shown all of our writes yet; those events
		// enqueue this key. Come back when the expectations expire in
		// case they never do.
		c.queue.AddAfter(key, wait)
	case ds.DeletionTimestamp == nil:
		create, del := manage(ds, nodes, nodeToPods)
		if len(create) == 0 && len(del) == 0 && ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
			del = rollingUpdate(ds, nodes, nodeToPods, hash, now)
		}
		manageErr = c.syncNodes(ctx, key, ds, hash, create, del)
	}
	if ctx.Err() != nil {
		return ctx.Err() // stopping: no status from a half-done sync
	}
	status, availableIn := calculateStatus(ds, nodes, nodeToPods, hash, now)
	if err := c.updateStatus(ctx, ds, status); err != nil {
		return errors.Join(manageErr, fmt.Errorf("update status: %w", err))
	}
	if manageErr == nil && availableIn > 0 {
		// No event marks a Pod becoming available: look again once the
		// first ready Pod has been ready for minReadySeconds.
		c.queue.AddAfter(key, availableIn)
	}
	return manageErr
}

// podNodeName is the Node the Pod is on or meant for: spec.nodeName, else
// the metadata.name In [node] of its required node affinity.
func podNodeName(p *corev1.Pod) string {
	if p.Spec.NodeName != "" {
		return p.Spec.NodeName
	}
	if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, f := range t.MatchFields {
				if f.Key == nodeNameField && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
					return f.Values[0]
				}
			}
		}
	}
	return ""
}

func olderFirst(a, b *corev1.Pod) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return cmp.Compare(a.Name, b.Name)
}

func podFinished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// livePods are the Pods neither terminating nor finished.
func livePods(pods []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && !podFinished(p) {
			out = append(out, p)
		}
	}
	return out
}

// manage is kube's podsShouldBeOnNode over every Node: the Nodes that
// need a Pod and the Pods to delete. A Node whose only Pods are
// terminating gets its new Pod once they are gone.
func manage(ds *appsv1.DaemonSet, nodes []*corev1.Node, nodeToPods map[string][]*corev1.Pod) (create []string, del []*corev1.Pod) {
	seen := map[string]bool{}
	for _, node := range nodes {
		seen[node.Name] = true
		shouldRun, shouldContinue := nodeShouldRunDaemonPod(node, ds)
		pods := nodeToPods[node.Name]
		switch {
		case shouldRun && len(pods) == 0:
			create = append(create, node.Name)
		case shouldContinue:
			var running []*corev1.Pod
			for _, p := range pods {
				switch {
				case p.DeletionTimestamp != nil:
				case podFinished(p):
					// Restarted by deleting it; the next sync after it
					// is gone creates its successor.
					del = append(del, p)
				default:
					running = append(running, p)
				}
			}
			if len(running) > 1 {
				del = append(del, running[1:]...) // keep the oldest
			}
		default:
			del = append(del, livePodsOrFinished(pods)...)
		}
	}
	for name, pods := range nodeToPods {
		if !seen[name] {
			del = append(del, livePodsOrFinished(pods)...) // no such Node
		}
	}
	return create, del
}

// livePodsOrFinished are the Pods not already terminating.
func livePodsOrFinished(pods []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// maxUnavailable is spec.updateStrategy.rollingUpdate.maxUnavailable
// scaled to desired (a percentage rounds up), at least 1.
func maxUnavailable(ds *appsv1.DaemonSet, desired int) int {
	v := intstr.FromInt32(1)
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		v = *ru.MaxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, desired, true)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// rollingUpdate is kube's rollingUpdate without surge: the out-of-date
// Pods to delete now. Old Pods already unavailable go regardless; the
// rest go while fewer than maxUnavailable Nodes that should run a Pod
// lack an available one. Called only when manage has nothing to do, so
// every such Node has at most one live Pod.
func rollingUpdate(ds *appsv1.DaemonSet, nodes []*corev1.Node, nodeToPods map[string][]*corev1.Pod, hash string, now time.Time) []*corev1.Pod {
	minReady := time.Duration(ds.Spec.MinReadySeconds) * time.Second
	desired := 0
	unavailable := 0
	var replace, candidates []*corev1.Pod
	for _, node := range nodes {
		shouldRun, shouldContinue := nodeShouldRunDaemonPod(node, ds)
		if shouldRun {
			desired++
		}
		if !shouldContinue {
			continue
		}
		live := livePods(nodeToPods[node.Name])
		if len(live) != 1 {
			if shouldRun {
				unavailable++ // no Pod yet, or one too many: manage's job
			}
			continue
		}
		p := live[0]
		ok, _ := podAvailable(p, minReady, now)
		switch {
		case p.Labels[LabelRevisionHash] == hash:
			if !ok {
				unavailable++
			}
		case !ok:
			replace = append(replace, p)
		default:
			candidates = append(candidates, p)
		}
	}
	budget := max(0, maxUnavailable(ds, desired)-unavailable-len(replace))
	return append(replace, candidates[:min(budget, len(candidates))]...)
}

// syncNodes creates a Pod on each named Node and deletes the given Pods,
// at most BurstReplicas of each, recording both in the expectations first.
func (c *Controller) syncNodes(ctx context.Context, key string, ds *appsv1.DaemonSet, hash string, create []string, del []*corev1.Pod) error {
	if len(create) == 0 && len(del) == 0 {
		return nil
	}
	create = create[:min(len(create), BurstReplicas)]
	del = del[:min(len(del), BurstReplicas)]
	delKeys := make([]string, len(del))
	for i, p := range del {
		delKeys[i] = podKey(p)
	}
	c.exp.Expect(key, len(create), delKeys)

	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, p := range del {
		wg.Go(func() {
			err := worker.Recover(func() error { return c.deletePodNow(ctx, ds, p) })
			if err != nil {
				c.exp.DeletionObserved(key, delKeys[i])
				if !apierrors.IsNotFound(err) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("delete pod %s: %w", p.Name, err))
					mu.Unlock()
				}
			}
		})
	}
	next := 0
	created, err := worker.SlowStartBatch(ctx, len(create), SlowStartInitialBatchSize, func() error {
		mu.Lock()
		node := create[next]
		next++
		mu.Unlock()
		return c.createPod(ctx, ds, node, hash)
	})
	if skipped := len(create) - created; skipped > 0 {
		// Failed or never attempted: the watch will not show these.
		c.exp.CreationsObserved(key, skipped)
	}
	wg.Wait()
	if err != nil && !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		errs = append(errs, fmt.Errorf("create pods: created %d of %d: %w", created, len(create), err))
	}
	return errors.Join(errs...)
}

// createPod creates ds's Pod for node and records the outcome as an
// Event, as kube's pod control does: none when the namespace is going.
func (c *Controller) createPod(ctx context.Context, ds *appsv1.DaemonSet, node, hash string) error {
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	created, err := c.client.CoreV1().Pods(ds.Namespace).Create(wctx, newPod(ds, node, hash), metav1.CreateOptions{})
	switch {
	case err == nil:
		c.event(ds, corev1.EventTypeNormal, EventReasonSuccessfulCreate, "Created pod: %s", created.Name)
	case !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		c.event(ds, corev1.EventTypeWarning, EventReasonFailedCreate, "Error creating: %v", err)
	}
	return err
}

// deletePodNow deletes one Pod of ds, gracefully, if it is still the one
// that was chosen, and records the outcome as an Event (none for a Pod
// already gone).
func (c *Controller) deletePodNow(ctx context.Context, ds *appsv1.DaemonSet, p *corev1.Pod) error {
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	err := c.client.CoreV1().Pods(p.Namespace).Delete(wctx, p.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(p.UID))})
	switch {
	case err == nil:
		c.event(ds, corev1.EventTypeNormal, EventReasonSuccessfulDelete, "Deleted pod: %s", p.Name)
	case apierrors.IsConflict(err):
		return apierrors.NewNotFound(corev1.Resource("pods"), p.Name)
	case !apierrors.IsNotFound(err):
		c.event(ds, corev1.EventTypeWarning, EventReasonFailedDelete, "Error deleting: %v", err)
	}
	return err
}

// event records an Event about ds, unless the controller records none.
func (c *Controller) event(ds *appsv1.DaemonSet, eventType, reason, format string, args ...any) {
	if c.recorder != nil {
		c.recorder.Eventf(ds, eventType, reason, format, args...)
	}
}
