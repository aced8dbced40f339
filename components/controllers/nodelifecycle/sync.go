package nodelifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/controllers/worker"
)

// Condition reasons and messages, as kube's.
const (
	reasonNodeStatusUnknown      = "NodeStatusUnknown"
	reasonNodeStatusNeverUpdated = "NodeStatusNeverUpdated"
	msgStopped                   = "Kubelet stopped posting node status."
	msgNever                     = "Kubelet never posted node status."
)

// kubeletConditions are set to Unknown with Ready, as kube does.
var kubeletConditions = []corev1.NodeConditionType{
	corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure,
}

// managedTaints are the taints this controller adds and removes.
var managedTaints = []string{corev1.TaintNodeUnreachable, corev1.TaintNodeNotReady}

// sync brings one Node's Ready condition, taints and Pods in line with
// its kubelet's last sign of life. It re-reads everything from the
// caches and is idempotent.
func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodeLister.Get(name)
	if apierrors.IsNotFound(err) {
		c.healthMu.Lock()
		delete(c.health, name)
		c.healthMu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	now := c.now()
	stale := c.observe(node, now)

	ready := readyCondition(node)
	if stale && (ready == nil || ready.Status != corev1.ConditionUnknown) {
		if node, err = c.markUnknown(ctx, node, now); err != nil {
			return err
		}
		ready = readyCondition(node)
	}

	var want string // the managed taint the Node should carry, if any
	if ready != nil {
		switch ready.Status {
		case corev1.ConditionUnknown:
			want = corev1.TaintNodeUnreachable
		case corev1.ConditionFalse:
			want = corev1.TaintNodeNotReady
		}
	}
	if node, err = c.setTaint(ctx, node, want, now); err != nil {
		return err
	}

	pods, err := c.podIndexer.ByIndex(nodeNameIndex, name)
	if err != nil {
		return err
	}
	var errs []error
	if ready != nil && ready.Status != corev1.ConditionTrue {
		errs = append(errs, c.markPodsNotReady(ctx, pods, now))
	}
	errs = append(errs, c.evict(ctx, node, pods, now))
	return errors.Join(errs...)
}

// observe records the Node's Lease renewTime and Ready heartbeat and
// reports whether neither has changed for longer than the grace period.
// A Node seen for the first time starts a full grace period.
func (c *Controller) observe(node *corev1.Node, now time.Time) (stale bool) {
	var h health
	if l, err := c.leaseLister.Leases(corev1.NamespaceNodeLease).Get(node.Name); err == nil && l.Spec.RenewTime != nil {
		h.renew = l.Spec.RenewTime.Time
	}
	if r := readyCondition(node); r != nil {
		h.heartbeat = r.LastHeartbeatTime.Time
	}
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	old, seen := c.health[node.Name]
	if !seen || !old.renew.Equal(h.renew) || !old.heartbeat.Equal(h.heartbeat) {
		h.probed = now
		c.health[node.Name] = h
		return false
	}
	return now.Sub(old.probed) > c.grace
}

func readyCondition(node *corev1.Node) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == corev1.NodeReady {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}

// markUnknown sets the kubelet's conditions to Unknown and returns the
// updated Node.
func (c *Controller) markUnknown(ctx context.Context, node *corev1.Node, now time.Time) (*corev1.Node, error) {
	node = node.DeepCopy()
	t := metav1.NewTime(now)
	for _, typ := range kubeletConditions {
		var cond *corev1.NodeCondition
		for i := range node.Status.Conditions {
			if node.Status.Conditions[i].Type == typ {
				cond = &node.Status.Conditions[i]
			}
		}
		switch {
		case cond == nil && typ == corev1.NodeReady:
			node.Status.Conditions = append(node.Status.Conditions, corev1.NodeCondition{
				Type: typ, Status: corev1.ConditionUnknown, Reason: reasonNodeStatusNeverUpdated,
				Message: msgNever, LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: t,
			})
		case cond == nil, cond.Status == corev1.ConditionUnknown:
		default:
			cond.Status, cond.Reason, cond.Message, cond.LastTransitionTime = corev1.ConditionUnknown, reasonNodeStatusUnknown, msgStopped, t
		}
	}
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	out, err := c.client.CoreV1().Nodes().UpdateStatus(wctx, node, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("mark node Unknown: %w", err)
	}
	c.log.Warn("node stopped posting status; marked Ready=Unknown", logKeyNode, node.Name, "gracePeriod", c.grace)
	if c.nodeEvents != nil {
		// kube's RecordNodeStatusChange: a Node's Events name it by
		// its name as UID, as the kubelet's do, which is what kubectl
		// describe node looks for.
		ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: types.UID(node.Name)}
		c.nodeEvents.Eventf(ref, corev1.EventTypeNormal, EventReasonNodeNotReady, "Node %s status is now: %s", node.Name, EventReasonNodeNotReady)
	}
	return out, nil
}

// setTaint makes want (or none, if empty) the only managed taint of the
// Node, with both effects, as kube's node lifecycle controller does: the
// NoExecute one evicts the Pods that do not tolerate it, the NoSchedule
// one keeps the scheduler from placing new Pods there (every Pod
// tolerates the NoExecute one for a while, the API's default). A taint
// already there keeps its timeAdded.
func (c *Controller) setTaint(ctx context.Context, node *corev1.Node, want string, now time.Time) (*corev1.Node, error) {
	var taints []corev1.Taint
	has := map[corev1.TaintEffect]bool{}
	changed := false
	for _, t := range node.Spec.Taints {
		managed := (t.Effect == corev1.TaintEffectNoExecute || t.Effect == corev1.TaintEffectNoSchedule) &&
			(t.Key == managedTaints[0] || t.Key == managedTaints[1])
		switch {
		case managed && t.Key == want:
			has[t.Effect] = true
		case managed:
			changed = true
			continue
		}
		taints = append(taints, t)
	}
	if want != "" && !has[corev1.TaintEffectNoSchedule] {
		taints = append(taints, corev1.Taint{Key: want, Effect: corev1.TaintEffectNoSchedule})
		changed = true
	}
	if want != "" && !has[corev1.TaintEffectNoExecute] {
		ta := metav1.NewTime(now)
		taints = append(taints, corev1.Taint{Key: want, Effect: corev1.TaintEffectNoExecute, TimeAdded: &ta})
		changed = true
	}
	if !changed {
		return node, nil
	}
	node = node.DeepCopy()
	node.Spec.Taints = taints
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	out, err := c.client.CoreV1().Nodes().Update(wctx, node, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set node taints: %w", err)
	}
	if want != "" {
		c.log.Warn("tainted node", logKeyNode, node.Name, logKeyTaint, want)
	} else {
		c.log.Info("node is back; removed its taints", logKeyNode, node.Name)
	}
	return out, nil
}

// markPodsNotReady sets the Ready condition of the Node's running Pods to
// False, as kube's MarkPodsNotReady.
func (c *Controller) markPodsNotReady(ctx context.Context, objs []any, now time.Time) error {
	var errs []error
	for _, obj := range objs {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		i := -1
		for j := range pod.Status.Conditions {
			if pod.Status.Conditions[j].Type == corev1.PodReady {
				i = j
			}
		}
		if i >= 0 && pod.Status.Conditions[i].Status == corev1.ConditionFalse {
			continue
		}
		pod = pod.DeepCopy()
		cond := corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "NodeNotReady", LastTransitionTime: metav1.NewTime(now)}
		if i >= 0 {
			pod.Status.Conditions[i] = cond
		} else {
			pod.Status.Conditions = append(pod.Status.Conditions, cond)
		}
		wctx, cancel := worker.WriteContext(ctx)
		_, err := c.client.CoreV1().Pods(pod.Namespace).UpdateStatus(wctx, pod, metav1.UpdateOptions{})
		cancel()
		switch {
		case err == nil && c.nodeEvents != nil:
			// After the write, as kube: the Pod still exists.
			c.nodeEvents.Event(pod, corev1.EventTypeWarning, EventReasonNodeNotReady, "Node is not ready")
		case err != nil && !apierrors.IsNotFound(err):
			errs = append(errs, fmt.Errorf("mark pod %s/%s not ready: %w", pod.Namespace, pod.Name, err))
		}
	}
	return errors.Join(errs...)
}

// evict deletes the Pods whose toleration of the Node's NoExecute taints
// has run out, and requeues the Node for the earliest one still pending.
func (c *Controller) evict(ctx context.Context, node *corev1.Node, objs []any, now time.Time) error {
	taints := noExecute(node.Spec.Taints)
	if len(taints) == 0 {
		return nil
	}
	var next time.Time
	var errs []error
	for _, obj := range objs {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.DeletionTimestamp != nil {
			continue
		}
		at, ok := evictionTime(taints, pod.Spec.Tolerations, c.startedAt)
		if !ok {
			continue
		}
		if at.After(now) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		// The resourceVersion precondition makes a second eviction of a
		// Pod a conflict rather than a no-op that looks like a success:
		// the next sync may run before the watch shows the first one.
		// A conflict with any other write is retried when the watch
		// shows that write, which enqueues the Node.
		uid, rv := pod.UID, pod.ResourceVersion
		wctx, cancel := worker.WriteContext(ctx)
		err := c.client.CoreV1().Pods(pod.Namespace).Delete(wctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		cancel()
		switch {
		case err == nil:
			c.log.Warn("evicted pod from NoExecute-tainted node", logKeyNode, node.Name, logKeyPod, pod.Namespace+"/"+pod.Name)
			if c.evictionEvents != nil {
				c.evictionEvents.Eventf(pod, corev1.EventTypeNormal, EventReasonTaintManagerEviction, "Marking for deletion Pod %s/%s", pod.Namespace, pod.Name)
			}
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		default:
			errs = append(errs, fmt.Errorf("evict pod %s/%s: %w", pod.Namespace, pod.Name, err))
		}
	}
	if !next.IsZero() {
		c.queue.AddAfter(node.Name, next.Sub(now))
	}
	return errors.Join(errs...)
}
