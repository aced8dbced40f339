package job

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"kiln.dev/kiln/components/controllers/worker"
)

// sync runs one Job a step further and writes its status. It reads
// everything from the caches, so it is idempotent; it creates or deletes
// nothing for parallelism while the expectations say the caches still lag
// its own earlier writes. A finished Job (Complete or Failed) is left
// alone, its finished Pods kept for their logs.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return worker.Terminal(err)
	}
	j, err := c.jobLister.Jobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	if finished(j) {
		c.exp.Forget(key)
		return nil
	}
	satisfied, wait := c.exp.Satisfied(key)
	all, err := c.podLister.Pods(namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	var active []*corev1.Pod
	var succeeded, failed, ready, terminating int32
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != j.UID {
			continue
		}
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			succeeded++
		case p.Status.Phase == corev1.PodFailed:
			failed++
		case p.DeletionTimestamp != nil:
			terminating++
		default:
			active = append(active, p)
			if podReady(p) {
				ready++
			}
		}
	}

	now := c.now()
	job := j.DeepCopy() // the cache's copy is never changed
	st := &job.Status
	suspended := job.Spec.Suspend != nil && *job.Spec.Suspend
	if st.StartTime == nil && !suspended {
		st.StartTime = &metav1.Time{Time: now}
	}
	// Counts never go down: a finished Pod someone deleted stays counted.
	st.Succeeded = max(st.Succeeded, succeeded)
	st.Failed = max(st.Failed, failed)
	st.Ready = &ready
	st.Terminating = &terminating
	st.Active = int32(len(active))

	var remaining time.Duration // until activeDeadlineSeconds, if set
	deadlineExceeded := false
	if d := job.Spec.ActiveDeadlineSeconds; d != nil && st.StartTime != nil && !suspended {
		remaining = st.StartTime.Add(time.Duration(*d) * time.Second).Sub(now)
		deadlineExceeded = remaining <= 0
	}

	switch {
	case st.Failed > backoffLimit(job):
		err = c.finish(ctx, job, active, batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit", now)
	case deadlineExceeded:
		err = c.finish(ctx, job, active, batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline", now)
	case complete(job, len(active)):
		err = c.finish(ctx, job, active, "", "", now)
	default:
		if !satisfied {
			// The watch has not shown our own writes yet; its events
			// enqueue this key. Come back when the expectations expire
			// in case they never do.
			c.queue.AddAfter(key, wait)
		} else {
			var delta int
			delta, err = c.manageActive(ctx, key, job, active, wantActive(job, len(active)))
			st.Active += int32(delta)
		}
		if remaining > 0 {
			c.queue.AddAfter(key, remaining)
		}
	}
	if err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(j.Status, job.Status) {
		return nil
	}
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	_, err = c.client.BatchV1().Jobs(namespace).UpdateStatus(wctx, job, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	// Once the end is stored: a later sync leaves a finished Job alone,
	// so the Event is recorded once.
	for _, cond := range job.Status.Conditions {
		switch {
		case cond.Status != corev1.ConditionTrue:
		case cond.Type == batchv1.JobComplete:
			c.event(job, corev1.EventTypeNormal, EventReasonCompleted, "Job completed")
		case cond.Type == batchv1.JobFailed:
			c.event(job, corev1.EventTypeWarning, cond.Reason, "%s", cond.Message)
		}
	}
	return nil
}

// event records an Event about job, unless the controller records none.
func (c *Controller) event(job *batchv1.Job, eventType, reason, format string, args ...any) {
	if c.recorder != nil {
		c.recorder.Eventf(job, eventType, reason, format, args...)
	}
}

// finish deletes the active Pods of job and records its end in job.Status:
// Failed (after FailureTarget) with reason, or when reason is empty
// Complete (after SuccessCriteriaMet, as kube 1.31+ writes them) with a
// completionTime.
func (c *Controller) finish(ctx context.Context, job *batchv1.Job, active []*corev1.Pod, reason, message string, now time.Time) error {
	var errs []error
	for _, p := range active {
		if err := c.deletePodNow(ctx, job, p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err // status unchanged: the next sync deletes the rest
	}
	st := &job.Status
	st.Active = 0
	zero := int32(0)
	st.Ready = &zero
	*st.Terminating += int32(len(active))
	t := metav1.Time{Time: now}
	if reason == "" {
		st.Conditions = append(st.Conditions,
			condition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached, "Reached expected number of succeeded pods", t),
			condition(batchv1.JobComplete, batchv1.JobReasonCompletionsReached, "Reached expected number of succeeded pods", t))
		st.CompletionTime = &t
		return nil
	}
	st.Conditions = append(st.Conditions,
		condition(batchv1.JobFailureTarget, reason, message, t),
		condition(batchv1.JobFailed, reason, message, t))
	return nil
}

func condition(typ batchv1.JobConditionType, reason, message string, t metav1.Time) batchv1.JobCondition {
	return batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, LastProbeTime: t, LastTransitionTime: t, Reason: reason, Message: message}
}

// manageActive creates or deletes Pods so that want are active. It returns
// how many Pods it added to (positive) or removed from (negative) active.
func (c *Controller) manageActive(ctx context.Context, key string, job *batchv1.Job, active []*corev1.Pod, want int) (int, error) {
	switch diff := want - len(active); {
	case diff > 0:
		diff = min(diff, BurstPods)
		c.exp.ExpectCreations(key, diff)
		created, err := worker.SlowStartBatch(ctx, diff, SlowStartInitialBatchSize, func() error { return c.createPod(ctx, job) })
		if skipped := diff - created; skipped > 0 {
			// Those the watch will never show.
			c.exp.CreationsObserved(key, skipped)
		}
		if err != nil {
			return created, fmt.Errorf("create pods: %w", err)
		}
		return created, nil
	case diff < 0:
		victims := slices.Clone(active)
		slices.SortStableFunc(victims, deleteFirst)
		victims = victims[:min(-diff, BurstPods)]
		names := make([]string, len(victims))
		for i, p := range victims {
			names[i] = podKey(p)
		}
		c.exp.ExpectDeletions(key, names)
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for _, p := range victims {
			wg.Go(func() {
				if err := c.deletePodNow(ctx, job, p); err != nil {
					c.exp.DeletionObserved(key, podKey(p))
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return -(len(victims) - len(errs)), errors.Join(errs...)
	}
	return 0, nil
}

// deleteFirst orders the Pods to delete when parallelism shrinks: the
// ones furthest from running first (unbound, pending, not ready), and
// the newest among equals, as kube's ActivePods does.
func deleteFirst(a, b *corev1.Pod) int {
	rank := func(p *corev1.Pod) int {
		switch {
		case p.Spec.NodeName == "":
			return 0
		case p.Status.Phase == corev1.PodPending:
			return 1
		case !podReady(p):
			return 2
		}
		return 3
	}
	if d := rank(a) - rank(b); d != 0 {
		return d
	}
	return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
}

// finished reports whether job has a Complete or Failed condition.
func finished(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// complete reports whether job has succeeded: completions Pods succeeded,
// or, without completions (a work queue), one did and none still runs.
func complete(job *batchv1.Job, active int) bool {
	if job.Spec.Completions == nil {
		return job.Status.Succeeded > 0 && active == 0
	}
	return job.Status.Succeeded >= *job.Spec.Completions
}

// wantActive is how many Pods should run: parallelism, but no more than
// the completions still missing. Without completions, once one Pod has
// succeeded no new Pod starts and the running ones are left to finish.
func wantActive(job *batchv1.Job, active int) int {
	if job.Spec.Suspend != nil && *job.Spec.Suspend {
		return 0
	}
	parallelism := 1
	if job.Spec.Parallelism != nil {
		parallelism = int(*job.Spec.Parallelism)
	}
	if job.Spec.Completions == nil {
		if job.Status.Succeeded > 0 {
			return min(active, parallelism)
		}
		return parallelism
	}
	return max(0, min(parallelism, int(*job.Spec.Completions-job.Status.Succeeded)))
}

func backoffLimit(job *batchv1.Job) int32 {
	if job.Spec.BackoffLimit == nil {
		return DefaultBackoffLimit
	}
	return *job.Spec.BackoffLimit
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// createPod creates one Pod from the Job's template and records the
// outcome as an Event, as kube's pod control does: none when the
// namespace is going.
func (c *Controller) createPod(ctx context.Context, job *batchv1.Job) error {
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	created, err := c.client.CoreV1().Pods(job.Namespace).Create(wctx, newPod(job), metav1.CreateOptions{})
	switch {
	case err == nil:
		c.event(job, corev1.EventTypeNormal, EventReasonSuccessfulCreate, "Created pod: %s", created.Name)
	case !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		c.event(job, corev1.EventTypeWarning, EventReasonFailedCreate, "Error creating: %v", err)
	}
	return err
}

// newPod is the Job's template with the Job's labels and a controller
// ownerReference; the API names it.
func newPod(job *batchv1.Job) *corev1.Pod {
	t := job.Spec.Template.DeepCopy()
	lbls := maps.Clone(t.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	uid := string(job.UID)
	lbls[LabelControllerUID], lbls[LabelLegacyControllerUID] = uid, uid
	lbls[LabelJobName], lbls[LabelLegacyJobName] = job.Name, job.Name
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    job.Name + "-",
			Namespace:       job.Namespace,
			Labels:          lbls,
			Annotations:     maps.Clone(t.Annotations),
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, controllerKind)},
		},
		Spec: t.Spec,
	}
}

// deletePodNow deletes p, a Pod of job, if it is still the Pod the cache
// showed, and records the outcome as an Event; one already gone counts as
// deleted, without an Event.
func (c *Controller) deletePodNow(ctx context.Context, job *batchv1.Job, p *corev1.Pod) error {
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	err := c.client.CoreV1().Pods(p.Namespace).Delete(wctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	switch {
	case err == nil:
		c.event(job, corev1.EventTypeNormal, EventReasonSuccessfulDelete, "Deleted pod: %s", p.Name)
	case apierrors.IsNotFound(err):
		return nil
	default:
		c.event(job, corev1.EventTypeWarning, EventReasonFailedDelete, "Error deleting: %v", err)
		return fmt.Errorf("delete pod %s: %w", p.Name, err)
	}
	return nil
}
