package deployment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"kiln.dev/kiln/components/controllers/worker"
)

// Controller reconciles Deployments into ReplicaSets. Make one with New
// and start it with Run.
type Controller struct {
	client  kubernetes.Interface
	workers int
	log     *slog.Logger
	// recorder is nil when Config.Events is.
	recorder record.EventRecorder

	dLister   appslisters.DeploymentLister
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced

	// queue is created by Run, so that New starts no goroutines (a
	// workqueue runs its own). Event handlers that fire before it exists
	// drop their key: Run enqueues every Deployment once the caches have
	// synced, which covers them.
	queue atomic.Pointer[keyQueue]

	// now is the clock of conditions and progress deadlines (test seam).
	now func() time.Time

	guard worker.Guard
}

// keyQueue holds namespace/name keys of Deployments.
type keyQueue struct {
	workqueue.TypedRateLimitingInterface[string]
}

// New validates cfg, applies defaults and registers the controller's
// informers and event handlers on cfg.Informers. It starts nothing: start
// the factory and call Run.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil {
		return nil, errors.New("deployment: Config.Client is required")
	}
	if cfg.Informers == nil {
		return nil, errors.New("deployment: Config.Informers is required")
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("deployment: Config.Workers must not be negative, got %d", cfg.Workers)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dInf := cfg.Informers.Apps().V1().Deployments()
	rsInf := cfg.Informers.Apps().V1().ReplicaSets()
	podInf := cfg.Informers.Core().V1().Pods()
	c := &Controller{
		client:    cfg.Client,
		workers:   cfg.Workers,
		log:       cfg.Logger.With(logKeyComponent, "deployment"),
		dLister:   dInf.Lister(),
		rsLister:  rsInf.Lister(),
		podLister: podInf.Lister(),
		now:       time.Now,
	}
	if cfg.Events != nil {
		c.recorder = cfg.Events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent})
	}
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{dInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueDeployment,
			UpdateFunc: func(_, cur any) { c.enqueueDeployment(cur) },
			DeleteFunc: c.enqueueDeployment,
		}},
		{rsInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.addReplicaSet,
			UpdateFunc: c.updateReplicaSet,
			DeleteFunc: c.deleteReplicaSet,
		}},
		{podInf.Informer(), cache.ResourceEventHandlerFuncs{
			DeleteFunc: c.deletePod,
		}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return nil, fmt.Errorf("deployment: add event handler: %w", err)
		}
		c.synced = append(c.synced, h.inf.HasSynced)
	}
	return c, nil
}

// Run waits for the informer caches to sync, then runs the workers until
// ctx is done. It returns nil on a clean stop, after every worker has
// exited, and ErrRunTwice on a second call.
func (c *Controller) Run(ctx context.Context) error {
	if !c.guard.Start() {
		return ErrRunTwice
	}

	q := &keyQueue{workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "deployment"},
	)}
	c.queue.Store(q)
	defer q.ShutDown()

	c.log.Info("waiting for caches")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		// Only a done ctx stops the wait.
		return nil
	}
	ds, err := c.dLister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("deployment: list deployments: %w", err)
	}
	for _, d := range ds {
		c.enqueueDeployment(d)
	}

	c.log.Info("starting workers", logKeyWorkers, c.workers)
	var wg sync.WaitGroup
	for range c.workers {
		wg.Go(func() {
			for c.processNextWorkItem(ctx, q) {
			}
		})
	}
	<-ctx.Done()
	// 1. Stop handing out keys; 2. wait for the syncs in flight, which
	// see ctx done at their next API call.
	q.ShutDown()
	wg.Wait()
	c.log.Info("stopped")
	return nil
}

// processNextWorkItem syncs one key; false means the queue was shut down.
func (c *Controller) processNextWorkItem(ctx context.Context, q *keyQueue) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	err := c.safeSync(ctx, key)
	log := c.log.With(logKeyObject, key)
	switch {
	case err == nil:
		q.Forget(key)
	case ctx.Err() != nil:
		// Shutting down: the error is the cancellation.
	case isTerminal(err):
		q.Forget(key)
		log.Error("sync failed, not retrying", logKeyError, err)
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err), apierrors.IsNotFound(err):
		// A stale cache lost a race; the retry sees the newer object.
		log.Debug("sync raced, retrying", logKeyError, err)
		q.AddRateLimited(key)
	default:
		log.Warn("sync failed, retrying", logKeyError, err)
		q.AddRateLimited(key)
	}
	return true
}

// safeSync runs sync and turns a panic into an error.
func (c *Controller) safeSync(ctx context.Context, key string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in sync: %v\n%s", r, debug.Stack())
		}
	}()
	return c.sync(ctx, key)
}

func (c *Controller) enqueueKey(key string) {
	if q := c.queue.Load(); q != nil {
		q.Add(key)
	}
}

func (c *Controller) enqueueAfter(d *appsv1.Deployment, after time.Duration) {
	if q := c.queue.Load(); q != nil {
		q.AddAfter(keyOf(d), after)
	}
}

// event records an Event about d, unless the controller records none.
func (c *Controller) event(d *appsv1.Deployment, eventType, reason, format string, args ...any) {
	if c.recorder != nil {
		c.recorder.Eventf(d, eventType, reason, format, args...)
	}
}

func keyOf(d *appsv1.Deployment) string { return d.Namespace + "/" + d.Name }

// enqueueDeployment takes a Deployment or a tombstone of one.
func (c *Controller) enqueueDeployment(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if d, ok := obj.(*appsv1.Deployment); ok {
		c.enqueueKey(keyOf(d))
	}
}

// deploymentForRef resolves a controller reference to a cached
// Deployment, or nil when it names none (another kind, or a Deployment
// recreated under the same name).
func (c *Controller) deploymentForRef(ns string, ref *metav1.OwnerReference) *appsv1.Deployment {
	if ref == nil || ref.Kind != "Deployment" {
		return nil
	}
	d, err := c.dLister.Deployments(ns).Get(ref.Name)
	if err != nil || d.UID != ref.UID {
		return nil
	}
	return d
}

// deploymentsSelecting lists the Deployments whose selector matches an
// orphaned ReplicaSet, which may adopt it.
func (c *Controller) deploymentsSelecting(rs *appsv1.ReplicaSet) []*appsv1.Deployment {
	if len(rs.Labels) == 0 {
		return nil
	}
	ds, err := c.dLister.Deployments(rs.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*appsv1.Deployment
	for _, d := range ds {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(rs.Labels)) {
			continue
		}
		out = append(out, d)
	}
	return out
}

func (c *Controller) addReplicaSet(obj any) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	if rs.DeletionTimestamp != nil {
		c.deleteReplicaSet(rs)
		return
	}
	if ref := metav1.GetControllerOf(rs); ref != nil {
		if d := c.deploymentForRef(rs.Namespace, ref); d != nil {
			c.enqueueDeployment(d)
		}
		return
	}
	for _, d := range c.deploymentsSelecting(rs) {
		c.enqueueDeployment(d)
	}
}

func (c *Controller) updateReplicaSet(oldObj, curObj any) {
	old, ok1 := oldObj.(*appsv1.ReplicaSet)
	cur, ok2 := curObj.(*appsv1.ReplicaSet)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		// A resync: Deployments resync on their own.
		return
	}
	curRef, oldRef := metav1.GetControllerOf(cur), metav1.GetControllerOf(old)
	refChanged := !equalRefs(curRef, oldRef)
	if refChanged && oldRef != nil {
		// The old owner lost it.
		if d := c.deploymentForRef(old.Namespace, oldRef); d != nil {
			c.enqueueDeployment(d)
		}
	}
	if curRef != nil {
		if d := c.deploymentForRef(cur.Namespace, curRef); d != nil {
			c.enqueueDeployment(d)
		}
		return
	}
	if refChanged || !labels.Equals(old.Labels, cur.Labels) {
		// An orphan that may now match someone.
		for _, d := range c.deploymentsSelecting(cur) {
			c.enqueueDeployment(d)
		}
	}
}

func equalRefs(a, b *metav1.OwnerReference) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.UID == b.UID
}

func (c *Controller) deleteReplicaSet(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	if d := c.deploymentForRef(rs.Namespace, metav1.GetControllerOf(rs)); d != nil {
		c.enqueueDeployment(d)
	}
}

// deletePod wakes a Recreate Deployment whose old pods are going: it
// waits for the last of them before scaling up the new ReplicaSet.
func (c *Controller) deletePod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	rs, err := c.rsLister.ReplicaSets(pod.Namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	d := c.deploymentForRef(rs.Namespace, metav1.GetControllerOf(rs))
	if d != nil && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		c.enqueueDeployment(d)
	}
}
