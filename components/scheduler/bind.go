package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Reasons of the Events the scheduler records, kube's.
const (
	eventReasonScheduled        = "Scheduled"
	eventReasonFailedScheduling = "FailedScheduling"
)

// bindPod writes the Binding of an assumed pod, after the selected-node
// of its unbound WaitForFirstConsumer claims. The API server refuses a
// pod that already has a node (409) or is gone (404): another scheduler
// or a restarted one won the race, the informer will show the truth, and
// the pod is not retried. Any other error forgets the assumption and
// backs the pod off. Either way the room the assumption held is free
// again, which may let a waiting pod fit, so waiting pods are retried
// (as kube does after a failed bind).
func (s *Scheduler) bindPod(ctx context.Context, qp *queuedPod, node string, claims []*corev1.PersistentVolumeClaim) {
	pod := qp.pod
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if len(claims) > 0 {
		// The claims' volumes are made on the node before the pod is
		// bound there; a failed write backs the pod off, unbound.
		if err := s.selectNode(ctx, claims, node); err != nil {
			s.cache.forget(pod.UID)
			s.queue.requeue(qp, false, 0)
			s.queue.move(nil)
			s.log.Warn("select node for claims", logKeyPod, qp.key, logKeyNode, node, logKeyError, err)
			return
		}
	}
	err := s.bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	})
	switch {
	case err == nil:
		s.queue.done(qp)
		s.log.Debug("bound", logKeyPod, qp.key, logKeyNode, node)
		s.recordScheduled(pod, node)
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		s.cache.forget(pod.UID)
		s.queue.done(qp)
		s.queue.move(nil)
		s.log.Debug("bind refused", logKeyPod, qp.key, logKeyNode, node, logKeyError, err)
	default:
		s.cache.forget(pod.UID)
		s.queue.requeue(qp, false, 0)
		s.queue.move(nil)
		s.log.Warn("bind", logKeyPod, qp.key, logKeyNode, node, logKeyError, err)
	}
}

func (s *Scheduler) newEvent(pod *corev1.Pod, typ, reason, action, msg string) *corev1.Event {
	now := metav1.NewTime(s.now())
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", pod.Name, now.UnixNano()), Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: "v1", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name,
			UID: pod.UID, ResourceVersion: pod.ResourceVersion,
		},
		Reason: reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: s.name},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: s.name, ReportingInstance: s.identity, Action: action,
	}
}

// recordScheduled queues the Scheduled event kube records for every bind.
// It never waits: beyond scheduledEventsPerSecond, or when the writer
// lags, the event is dropped, since an event is worth less than the next
// bind.
func (s *Scheduler) recordScheduled(pod *corev1.Pod, node string) {
	if !s.eventLimit.TryAccept() {
		return
	}
	ev := s.newEvent(pod, corev1.EventTypeNormal, eventReasonScheduled, "Binding",
		fmt.Sprintf("Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, node))
	select {
	case s.events <- ev:
	default:
	}
}

// writeEvents writes queued events until the channel closes; once ctx is
// done the rest are dropped so that Run returns promptly.
func (s *Scheduler) writeEvents(ctx context.Context) {
	for ev := range s.events {
		if ctx.Err() != nil {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		if _, err := s.client.CoreV1().Events(ev.Namespace).Create(wctx, ev, metav1.CreateOptions{}); err != nil {
			s.log.Debug("record event", logKeyPod, ev.InvolvedObject.Name, logKeyError, err)
		}
		cancel()
	}
}

// reporter tells users why a pod waits: the PodScheduled=False condition
// and a FailedScheduling event. Repeats of one message for one pod bump
// the event's count instead of adding events, as kube's event correlator
// does, so that kubectl describe shows "(x5 over 2m)".
type reporter struct {
	s       *Scheduler
	mu      sync.Mutex
	records map[string]*eventRecord // by pod UID
}

type eventRecord struct {
	name, message string
	count         int32
}

// forget drops the event record of a pod that was bound or deleted.
func (r *reporter) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.records, string(uid))
}

// failed records that no node fits pod, for msg. Errors are logged here:
// this runs on a writer goroutine, and nothing retries a report, since
// the pod's next failure reports again.
func (r *reporter) failed(ctx context.Context, pod *corev1.Pod, msg string) {
	s := r.s
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	log := s.log.With(logKeyPod, podKey(pod))
	if err := s.setUnschedulable(ctx, pod, msg); err != nil && !apierrors.IsNotFound(err) {
		log.Warn("write PodScheduled condition", logKeyError, err)
	}
	if err := r.event(ctx, pod, msg); err != nil && !apierrors.IsNotFound(err) {
		log.Warn("record event", logKeyError, err)
	}
}

func (r *reporter) event(ctx context.Context, pod *corev1.Pod, msg string) error {
	events := r.s.client.CoreV1().Events(pod.Namespace)
	r.mu.Lock()
	rec := r.records[string(pod.UID)]
	var name string
	var count int32
	if rec != nil && rec.message == msg {
		rec.count++
		name, count = rec.name, rec.count
	}
	r.mu.Unlock()
	if name != "" {
		patch, err := json.Marshal(map[string]any{"count": count, "lastTimestamp": metav1.NewTime(r.s.now())})
		if err != nil {
			return err
		}
		_, err = events.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		if !apierrors.IsNotFound(err) {
			return err
		}
		// The event expired; start a new one.
	}
	ev := r.s.newEvent(pod, corev1.EventTypeWarning, eventReasonFailedScheduling, "Scheduling", msg)
	if _, err := events.Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return err
	}
	r.mu.Lock()
	r.records[string(pod.UID)] = &eventRecord{name: ev.Name, message: msg, count: 1}
	r.mu.Unlock()
	return nil
}

// setUnschedulable sets PodScheduled=False, reason Unschedulable, with
// msg, by a strategic merge patch of the status (the condition list
// merges by type), unless the pod already says so.
func (s *Scheduler) setUnschedulable(ctx context.Context, pod *corev1.Pod, msg string) error {
	since := metav1.NewTime(s.now())
	for _, c := range pod.Status.Conditions {
		if c.Type != corev1.PodScheduled || c.Status != corev1.ConditionFalse {
			continue
		}
		if c.Reason == corev1.PodReasonUnschedulable && c.Message == msg {
			return nil
		}
		since = c.LastTransitionTime // still False: the transition was then
	}
	cond := map[string]any{
		"type": corev1.PodScheduled, "status": corev1.ConditionFalse,
		"reason": corev1.PodReasonUnschedulable, "message": msg,
		"lastProbeTime": nil, "lastTransitionTime": since,
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []any{cond}}})
	if err != nil {
		return err
	}
	_, err = s.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}
