package cronjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"kiln.dev/kiln/components/controllers/worker"
)

// DefaultWorkers is how many CronJobs are synced at once.
const DefaultWorkers = 2

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("cronjob: Run called twice")

// annotationScheduledTimestamp records on a Job the time it was scheduled
// for, as kube does.
const annotationScheduledTimestamp = "batch.kubernetes.io/cronjob-scheduled-timestamp"

// maxMissed bounds the scheduled times looked at between two syncs; past
// it only the newest counts (kube: "too many missed start times").
const maxMissed = 100

// controllerKind is what the ownerReferences of owned Jobs name.
var controllerKind = batchv1.SchemeGroupVersion.WithKind("CronJob")

// Config configures the controller.
type Config struct {
	// Client creates and deletes Jobs and writes CronJob status. Required.
	Client kubernetes.Interface
	// Informers is the shared factory the controller registers its
	// CronJob and Job informers on; the caller starts it. Required.
	Informers informers.SharedInformerFactory
	// Workers is how many CronJobs are synced at once; zero means
	// DefaultWorkers.
	Workers int
	// Logger receives lifecycle and per-item messages; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Controller creates the Jobs of CronJobs.
type Controller struct {
	client     kubernetes.Interface
	log        *slog.Logger
	workers    int
	cronLister batchlisters.CronJobLister
	jobLister  batchlisters.JobLister
	handlers   worker.Handlers
	queue      workqueue.TypedRateLimitingInterface[string]

	// now is the clock; a test seam.
	now func() time.Time

	guard worker.Guard
}

// New registers the CronJob and Job informers and their handlers on
// cfg.Informers; it starts nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Informers == nil {
		return nil, errors.New("cronjob: Config.Client and Config.Informers are required")
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("cronjob: Config.Workers must not be negative, got %d", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cronInformer := cfg.Informers.Batch().V1().CronJobs()
	jobInformer := cfg.Informers.Batch().V1().Jobs()
	c := &Controller{
		client:     cfg.Client,
		log:        cfg.Logger.With("component", "cronjob"),
		workers:    cfg.Workers,
		cronLister: cronInformer.Lister(),
		jobLister:  jobInformer.Lister(),
		queue:      worker.NewQueue("cronjob"),
		now:        time.Now,
	}
	enqueueCron := func(o any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			c.queue.Add(key)
		}
	}
	// A Job's change (it finished, it was deleted) may let its CronJob
	// run or clean up.
	enqueueOwner := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		j, ok := o.(*batchv1.Job)
		if !ok {
			return
		}
		if ref := metav1.GetControllerOf(j); ref != nil && ref.Kind == controllerKind.Kind {
			c.queue.Add(j.Namespace + "/" + ref.Name)
		}
	}
	if err := c.handlers.AddAll(
		worker.On{Informer: cronInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: enqueueCron, UpdateFunc: func(_, o any) { enqueueCron(o) }, DeleteFunc: enqueueCron}},
		worker.On{Informer: jobInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: enqueueOwner, UpdateFunc: func(_, o any) { enqueueOwner(o) }, DeleteFunc: enqueueOwner}},
	); err != nil {
		return nil, fmt.Errorf("cronjob: add event handler: %w", err)
	}
	return c, nil
}

// Run waits for the informers' caches, then syncs CronJobs until ctx is
// done. It returns nil on a clean stop and ErrRunTwice when called again.
func (c *Controller) Run(ctx context.Context) error {
	if !c.guard.Start() {
		return ErrRunTwice
	}
	worker.RunQueue(ctx, &c.handlers, c.queue, c.workers, c.sync, c.log)
	return nil
}

// sync brings one CronJob up to date and queues it again for its next
// scheduled time.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cj, err := c.cronLister.CronJobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // its Jobs go with it (garbage collector)
	}
	if err != nil {
		return err
	}
	if cj.DeletionTimestamp != nil {
		return nil
	}
	all, err := c.jobLister.Jobs(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var jobs []*batchv1.Job
	for _, j := range all {
		if ref := metav1.GetControllerOf(j); ref != nil && ref.UID == cj.UID {
			jobs = append(jobs, j)
		}
	}
	status := cj.Status.DeepCopy()
	status.Active = nil
	var finished []*batchv1.Job
	for _, j := range jobs {
		done, _ := finishedState(j)
		if !done {
			status.Active = append(status.Active, jobRef(j))
			continue
		}
		finished = append(finished, j)
		if t := j.Status.CompletionTime; t != nil && (status.LastSuccessfulTime == nil || t.After(status.LastSuccessfulTime.Time)) {
			status.LastSuccessfulTime = t.DeepCopy()
		}
	}
	if err := c.pruneHistory(ctx, cj, finished); err != nil {
		return err
	}

	sched, err := parseSchedule(cj)
	if err != nil {
		c.log.Warn("unparseable schedule", "cronjob", key, "schedule", cj.Spec.Schedule, "err", err)
		return c.writeStatus(ctx, cj, status) // never runs; validation lets little through
	}
	now := c.now()
	due, next := dueTime(cj, sched, now)
	if due != nil && !suspended(cj) && !pastDeadline(cj, *due, now) {
		created, err := c.run(ctx, cj, *due, status)
		if err != nil {
			return err
		}
		if created != nil {
			status.Active = append(status.Active, jobRef(created))
		}
		if created != nil || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
			status.LastScheduleTime = &metav1.Time{Time: *due}
		}
	}
	if err := c.writeStatus(ctx, cj, status); err != nil {
		return err
	}
	if !suspended(cj) {
		c.queue.AddAfter(key, next.Sub(now)+100*time.Millisecond)
	}
	return nil
}

// run starts the Job for scheduled time due, as concurrencyPolicy allows;
// nil when it may not run now (Forbid with a Job running).
func (c *Controller) run(ctx context.Context, cj *batchv1.CronJob, due time.Time, status *batchv1.CronJobStatus) (*batchv1.Job, error) {
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(status.Active) > 0 {
			return nil, nil
		}
	case batchv1.ReplaceConcurrent:
		for _, ref := range status.Active {
			if err := c.deleteJob(ctx, cj.Namespace, ref.Name); err != nil {
				return nil, err
			}
		}
		status.Active = nil
	}
	job := jobFor(cj, due)
	created, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, job, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil, nil // this time ran already
	}
	if err != nil {
		return nil, fmt.Errorf("create job %s/%s: %w", cj.Namespace, job.Name, err)
	}
	c.log.Info("created job", "cronjob", cj.Namespace+"/"+cj.Name, "job", created.Name, "scheduled", due.UTC().Format(time.RFC3339))
	return created, nil
}

// jobFor is the Job of cj for scheduled time due.
func jobFor(cj *batchv1.CronJob, due time.Time) *batchv1.Job {
	tmpl := cj.Spec.JobTemplate
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            cj.Name + "-" + strconv.FormatInt(due.Unix()/60, 10),
			Namespace:       cj.Namespace,
			Labels:          maps.Clone(tmpl.Labels),
			Annotations:     maps.Clone(tmpl.Annotations),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, controllerKind)},
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}
	if j.Annotations == nil {
		j.Annotations = map[string]string{}
	}
	j.Annotations[annotationScheduledTimestamp] = due.UTC().Format(time.RFC3339)
	return j
}

// dueTime is the newest scheduled time after the last one (or the
// CronJob's creation) and not after now, nil if none, and the next
// scheduled time after now.
func dueTime(cj *batchv1.CronJob, sched cron.Schedule, now time.Time) (*time.Time, time.Time) {
	since := cj.CreationTimestamp.Time
	if t := cj.Status.LastScheduleTime; t != nil {
		since = t.Time
	}
	var due time.Time
	t := sched.Next(since)
	for i := 0; !t.After(now); i++ {
		due = t
		if i >= maxMissed {
			// Too many missed times: the newest is the one before the
			// next after now.
			for u := sched.Next(due); !u.After(now); u = sched.Next(u) {
				due = u
			}
			break
		}
		t = sched.Next(t)
	}
	if due.IsZero() {
		return nil, sched.Next(now)
	}
	return &due, sched.Next(now)
}

// parseSchedule reads spec.schedule in spec.timeZone (or local time).
func parseSchedule(cj *batchv1.CronJob) (cron.Schedule, error) {
	spec := cj.Spec.Schedule
	if tz := cj.Spec.TimeZone; tz != nil && *tz != "" {
		spec = "CRON_TZ=" + *tz + " " + spec
	}
	return cron.ParseStandard(spec)
}

func suspended(cj *batchv1.CronJob) bool { return cj.Spec.Suspend != nil && *cj.Spec.Suspend }

// pastDeadline reports whether a run scheduled for due may no longer
// start (startingDeadlineSeconds).
func pastDeadline(cj *batchv1.CronJob, due, now time.Time) bool {
	d := cj.Spec.StartingDeadlineSeconds
	return d != nil && now.Sub(due) > time.Duration(*d)*time.Second
}

// pruneHistory deletes the oldest finished Jobs beyond the history limits.
func (c *Controller) pruneHistory(ctx context.Context, cj *batchv1.CronJob, finished []*batchv1.Job) error {
	var ok, failed []*batchv1.Job
	for _, j := range finished {
		if _, succeeded := finishedState(j); succeeded {
			ok = append(ok, j)
		} else {
			failed = append(failed, j)
		}
	}
	for _, set := range []struct {
		jobs  []*batchv1.Job
		limit *int32
		def   int32
	}{{ok, cj.Spec.SuccessfulJobsHistoryLimit, 3}, {failed, cj.Spec.FailedJobsHistoryLimit, 1}} {
		limit := set.def
		if set.limit != nil {
			limit = *set.limit
		}
		jobs := set.jobs
		if int32(len(jobs)) <= limit {
			continue
		}
		slices.SortFunc(jobs, func(a, b *batchv1.Job) int {
			if c := scheduledTime(a).Compare(scheduledTime(b)); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
		for _, j := range jobs[:int32(len(jobs))-limit] {
			if err := c.deleteJob(ctx, j.Namespace, j.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// scheduledTime is when j was scheduled to run (its annotation), else
// when it was created: the order of a CronJob's history. Creation times
// have whole seconds, so two Jobs made in one second would tie.
func scheduledTime(j *batchv1.Job) time.Time {
	if t, err := time.Parse(time.RFC3339, j.Annotations[annotationScheduledTimestamp]); err == nil {
		return t
	}
	return j.CreationTimestamp.Time
}

// deleteJob deletes a Job and, in the background, its Pods.
func (c *Controller) deleteJob(ctx context.Context, ns, name string) error {
	policy := metav1.DeletePropagationBackground
	err := c.client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete job %s/%s: %w", ns, name, err)
	}
	return nil
}

// writeStatus writes status if it changed.
func (c *Controller) writeStatus(ctx context.Context, cj *batchv1.CronJob, status *batchv1.CronJobStatus) error {
	slices.SortFunc(status.Active, func(a, b corev1.ObjectReference) int { return strings.Compare(a.Name, b.Name) })
	if statusEqual(&cj.Status, status) {
		return nil
	}
	next := cj.DeepCopy()
	next.Status = *status
	_, err := c.client.BatchV1().CronJobs(cj.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err // a conflict retries with the newer CronJob
}

func statusEqual(a, b *batchv1.CronJobStatus) bool {
	if len(a.Active) != len(b.Active) {
		return false
	}
	for i := range a.Active {
		if a.Active[i].UID != b.Active[i].UID {
			return false
		}
	}
	return timeEqual(a.LastScheduleTime, b.LastScheduleTime) && timeEqual(a.LastSuccessfulTime, b.LastSuccessfulTime)
}

func timeEqual(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Time.Truncate(time.Second).Equal(b.Time.Truncate(time.Second))
}

// finishedState reports whether j finished, and whether it succeeded.
func finishedState(j *batchv1.Job) (done, succeeded bool) {
	for _, cond := range j.Status.Conditions {
		if cond.Status != corev1.ConditionTrue {
			continue
		}
		switch cond.Type {
		case batchv1.JobComplete:
			return true, true
		case batchv1.JobFailed:
			return true, false
		}
	}
	return false, false
}

func jobRef(j *batchv1.Job) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Job", APIVersion: "batch/v1", Namespace: j.Namespace, Name: j.Name,
		UID: j.UID, ResourceVersion: j.ResourceVersion}
}
