package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"kiln.dev/kiln/components/controllers/expectations"
	"kiln.dev/kiln/components/controllers/worker"
)

// controllerKind is what the ownerReferences of owned Pods name.
var controllerKind = batchv1.SchemeGroupVersion.WithKind("Job")

// Controller runs every Job's Pods to completion (a NonIndexed subset of
// kube's Job controller; see doc.go).
type Controller struct {
	client  kubernetes.Interface
	log     *slog.Logger
	workers int
	// recorder is nil when Config.Events is.
	recorder record.EventRecorder

	jobLister batchlisters.JobLister
	podLister corelisters.PodLister
	handlers  worker.Handlers

	queue workqueue.TypedRateLimitingInterface[string]
	exp   *expectations.Tracker

	// Test seams, set in New.
	syncHandler func(ctx context.Context, key string) error
	now         func() time.Time

	guard worker.Guard
}

// New registers the Job and Pod informers and their handlers on
// cfg.Informers; it starts nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil {
		return nil, errors.New("job: Config.Client is required")
	}
	if cfg.Informers == nil {
		return nil, errors.New("job: Config.Informers is required")
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("job: Config.Workers must not be negative, got %d", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	jobInformer := cfg.Informers.Batch().V1().Jobs()
	podInformer := cfg.Informers.Core().V1().Pods()
	c := &Controller{
		client:    cfg.Client,
		log:       cfg.Logger.With(logKeyComponent, "job"),
		workers:   cfg.Workers,
		jobLister: jobInformer.Lister(),
		podLister: podInformer.Lister(),
		queue:     worker.NewQueue("job"),
		now:       time.Now,
	}
	if cfg.Events != nil {
		c.recorder = cfg.Events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent})
	}
	c.exp = expectations.New(ExpectationsTimeout, func() time.Time { return c.now() })
	c.syncHandler = c.sync
	if err := c.handlers.AddAll(
		worker.On{Informer: jobInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: c.addJob, UpdateFunc: c.updateJob, DeleteFunc: c.deleteJob}},
		worker.On{Informer: podInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: c.addPod, UpdateFunc: c.updatePod, DeleteFunc: c.deletePod}},
	); err != nil {
		return nil, fmt.Errorf("job: add event handler: %w", err)
	}
	return c, nil
}

// Run waits for the informers' caches, then syncs Jobs with
// Config.Workers workers until ctx is done. It returns only after every
// worker has (a sync in progress finishes its Pod writes, see
// worker.WriteContext). Run returns nil on a clean stop and ErrRunTwice when
// called again.
func (c *Controller) Run(ctx context.Context) error {
	if !c.guard.Start() {
		return ErrRunTwice
	}
	// The closure reads syncHandler per key, as the test seam expects.
	worker.RunQueue(ctx, &c.handlers, c.queue, c.workers, func(ctx context.Context, key string) error { return c.syncHandler(ctx, key) }, c.log)
	return nil
}

// Event handlers. They only enqueue keys and record what the watch shows
// against the expectations; sync does the work.

func (c *Controller) enqueue(j *batchv1.Job) {
	key, err := cache.MetaNamespaceKeyFunc(j)
	if err != nil {
		return
	}
	c.queue.Add(key)
}

func (c *Controller) addJob(obj any) {
	if j, ok := obj.(*batchv1.Job); ok {
		c.enqueue(j)
	}
}

func (c *Controller) updateJob(oldObj, curObj any) {
	old, ok1 := oldObj.(*batchv1.Job)
	cur, ok2 := curObj.(*batchv1.Job)
	if !ok1 || !ok2 {
		return
	}
	if old.UID != cur.UID {
		c.deleteJob(old)
	}
	c.enqueue(cur)
}

func (c *Controller) deleteJob(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(j)
	if err != nil {
		return
	}
	c.exp.Forget(key)
	c.queue.Add(key)
}

func (c *Controller) addPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if pod.DeletionTimestamp != nil {
		c.deletePod(pod)
		return
	}
	if j := c.ownerJob(pod); j != nil {
		key, _ := cache.MetaNamespaceKeyFunc(j)
		c.exp.CreationsObserved(key, 1)
		c.queue.Add(key)
	}
}

func (c *Controller) updatePod(oldObj, curObj any) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := curObj.(*corev1.Pod)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		return // a resync: nothing changed
	}
	if cur.DeletionTimestamp != nil {
		c.deletePod(cur)
		return
	}
	if j := c.ownerJob(cur); j != nil {
		c.enqueue(j)
	}
}

func (c *Controller) deletePod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	j := c.ownerJob(pod)
	if j == nil {
		return
	}
	key, _ := cache.MetaNamespaceKeyFunc(j)
	c.exp.DeletionObserved(key, podKey(pod))
	c.queue.Add(key)
}

// ownerJob returns the cached Job that controls pod, or nil.
func (c *Controller) ownerJob(pod *corev1.Pod) *batchv1.Job {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return nil
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil || gv.Group != controllerKind.Group || ref.Kind != controllerKind.Kind {
		return nil
	}
	j, err := c.jobLister.Jobs(pod.Namespace).Get(ref.Name)
	if err != nil || j.UID != ref.UID {
		return nil
	}
	return j
}

// podKey names a Pod in the expectations.
func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }
