package endpointslice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Controller keeps the EndpointSlices and Endpoints of Services with
// selectors in step with their pods.
type Controller struct {
	client      kubernetes.Interface
	log         *slog.Logger
	workers     int
	maxPerSlice int
	batchPeriod time.Duration

	services  corelisters.ServiceLister
	pods      corelisters.PodLister
	slices    discoverylisters.EndpointSliceLister
	endpoints corelisters.EndpointsLister
	informers []cache.SharedIndexInformer

	expect *expectations

	mu      sync.Mutex
	started bool
	// queue is made by Run, before the event handlers that feed it are
	// added; workers and handlers only run after that.
	queue workqueue.TypedRateLimitingInterface[string]
}

// New validates cfg, applies defaults and registers the Service, Pod,
// EndpointSlice and Endpoints informers on cfg.Informers, so that
// starting the factory starts them. It starts nothing itself.
func New(cfg Config) (*Controller, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	core, discovery := cfg.Informers.Core().V1(), cfg.Informers.Discovery().V1()
	c := &Controller{
		client:      cfg.Client,
		log:         cfg.Logger.With(logComponent, "endpointslice"),
		workers:     cfg.Workers,
		maxPerSlice: cfg.MaxEndpointsPerSlice,
		batchPeriod: cfg.BatchPeriod,
		services:    core.Services().Lister(),
		pods:        core.Pods().Lister(),
		slices:      discovery.EndpointSlices().Lister(),
		endpoints:   core.Endpoints().Lister(),
		informers: []cache.SharedIndexInformer{
			core.Services().Informer(), core.Pods().Informer(),
			discovery.EndpointSlices().Informer(), core.Endpoints().Informer(),
		},
		expect: newExpectations(time.Now),
	}
	return c, nil
}

// Run adds the event handlers, waits for the caches to sync, and runs the
// workers until ctx is done. Every worker has returned when Run returns;
// the result is nil on a clean stop and ErrRunTwice on a second call.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return ErrRunTwice
	}
	c.started = true
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpointslice"})
	c.mu.Unlock()
	defer c.queue.ShutDown()

	handlers := []cache.ResourceEventHandler{
		cache.ResourceEventHandlerFuncs{AddFunc: c.enqueueService, UpdateFunc: c.handleServiceUpdate, DeleteFunc: c.enqueueService},
		cache.ResourceEventHandlerFuncs{AddFunc: c.handlePod, UpdateFunc: c.handlePodUpdate, DeleteFunc: c.handlePod},
		cache.ResourceEventHandlerFuncs{AddFunc: c.handleSlice, UpdateFunc: c.handleSliceUpdate, DeleteFunc: c.handleSliceDelete},
		cache.ResourceEventHandlerFuncs{AddFunc: c.enqueueService, UpdateFunc: c.handleEndpointsUpdate, DeleteFunc: c.enqueueService},
	}
	synced := make([]cache.InformerSynced, 0, len(handlers))
	for i, inf := range c.informers {
		reg, err := inf.AddEventHandler(handlers[i])
		if err != nil {
			return fmt.Errorf("endpointslice: add event handler: %w", err)
		}
		defer func() { _ = inf.RemoveEventHandler(reg) }()
		synced = append(synced, reg.HasSynced)
	}

	c.log.Info("waiting for caches")
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // ctx is done before the caches synced: a clean stop
	}
	c.log.Info("starting workers", logCount, c.workers)
	var wg sync.WaitGroup
	for range c.workers {
		wg.Go(func() {
			for c.processNextItem(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	c.log.Info("stopped")
	return nil
}

// processNextItem syncs one key; false means the queue is shut down.
func (c *Controller) processNextItem(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	err := c.syncRecover(ctx, key)
	switch {
	case err == nil:
		c.queue.Forget(key)
	case ctx.Err() != nil:
		// Shutting down: the next leader resyncs everything.
	default:
		level := slog.LevelWarn
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			level = slog.LevelDebug // a stale cache; the retry sees the write
		}
		c.log.Log(ctx, level, "sync failed, requeuing", logObject, key, logError, err, logRetries, c.queue.NumRequeues(key))
		c.queue.AddRateLimited(key)
	}
	return true
}

// syncRecover runs sync, turning a panic into an error.
func (c *Controller) syncRecover(ctx context.Context, key string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.sync(ctx, key)
}

// sync brings the slices and Endpoints of the Service key to the state
// its selector and pods call for. It reads everything from the caches,
// so running it again with nothing changed writes nothing.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key this controller made; retrying cannot help
	}
	if wait, ok := c.expect.pending(key, func(x expectation) bool { return c.observed(ns, x) }); ok {
		// The cache is behind this controller's own writes. The write's
		// watch event enqueues the key again; the delay is a backstop.
		c.queue.AddAfter(key, wait)
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return errors.Join(c.syncSlices(ctx, key, ns, name, slicePlan{delete: c.ownedSlices(ns, name)}), c.deleteEndpoints(ctx, key, ns, name))
	}
	if err != nil {
		return err
	}
	if !hasSelector(svc) {
		// User-managed endpoints: remove only slices this controller made
		// while the Service had a selector.
		return c.syncSlices(ctx, key, ns, name, slicePlan{delete: c.ownedSlices(ns, name)})
	}
	pods, err := c.pods.Pods(ns).List(labels.SelectorFromSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	plan := planSlices(svc, desiredGroups(svc, pods), c.ownedSlices(ns, name), c.maxPerSlice)
	return errors.Join(c.syncSlices(ctx, key, ns, name, plan), c.syncEndpoints(ctx, key, svc, pods))
}

// ownedSlices are the slices of the Service name that this controller
// manages, for this Service or an earlier one of the same name.
func (c *Controller) ownedSlices(ns, name string) []*discoveryv1.EndpointSlice {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: ControllerName})
	list, _ := c.slices.EndpointSlices(ns).List(sel) // a cache list fails only on a bad selector
	var out []*discoveryv1.EndpointSlice
	for _, s := range list {
		if ownedByName(s, name) {
			out = append(out, s)
		}
	}
	return out
}

// syncSlices makes the plan's writes and records them as expectations.
func (c *Controller) syncSlices(ctx context.Context, key, ns, name string, plan slicePlan) error {
	if plan.empty() {
		return nil
	}
	api := c.client.DiscoveryV1().EndpointSlices(ns)
	log := c.log.With(logObject, key)
	for _, s := range plan.create {
		out, err := api.Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create endpointslice for %s: %w", name, err)
		}
		c.expect.expect(key, expectation{kind: kindSlice, name: out.Name, resourceVersion: out.ResourceVersion})
		log.Debug("created endpointslice", logSlice, out.Name, logCount, len(out.Endpoints))
	}
	for _, s := range plan.update {
		out, err := api.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update endpointslice %s: %w", s.Name, err)
		}
		c.expect.expect(key, expectation{kind: kindSlice, name: out.Name, resourceVersion: out.ResourceVersion})
		log.Debug("updated endpointslice", logSlice, out.Name, logCount, len(out.Endpoints))
	}
	for _, s := range plan.delete {
		err := c.deleteSlice(ctx, ns, s.Name, s.UID)
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete endpointslice %s: %w", s.Name, err)
		}
		c.expect.expect(key, expectation{kind: kindSlice, name: s.Name, deleted: true, uid: s.UID})
		log.Debug("deleted endpointslice", logSlice, s.Name)
	}
	return nil
}

// deleteSlice deletes a slice if it still has the uid. It sends the
// DeleteOptions itself, as JSON in meta.k8s.io/v1: the typed client sends
// them in the slice's group version (discovery.k8s.io/v1), which
// kube-apiserver accepts but kiln's apiserver refuses today;
// meta.k8s.io/v1 works with both. Go back to the typed Delete once the
// apiserver takes DeleteOptions in every group version.
func (c *Controller) deleteSlice(ctx context.Context, ns, name string, uid types.UID) error {
	body, err := json.Marshal(&metav1.DeleteOptions{
		TypeMeta:      metav1.TypeMeta{Kind: "DeleteOptions", APIVersion: metav1.SchemeGroupVersion.String()},
		Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if err != nil {
		return err
	}
	return c.client.DiscoveryV1().RESTClient().Delete().
		Namespace(ns).Resource("endpointslices").Name(name).
		SetHeader("Content-Type", "application/json").Body(body).
		Do(ctx).Error()
}

// syncEndpoints creates or updates the Service's Endpoints object when it
// differs from the desired one.
func (c *Controller) syncEndpoints(ctx context.Context, key string, svc *corev1.Service, pods []*corev1.Pod) error {
	cur, err := c.endpoints.Endpoints(svc.Namespace).Get(svc.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err != nil {
		cur = nil
	}
	want := desiredEndpoints(svc, pods, cur)
	api := c.client.CoreV1().Endpoints(svc.Namespace)
	var out *corev1.Endpoints
	switch {
	case cur == nil:
		out, err = api.Create(ctx, want, metav1.CreateOptions{})
	case endpointsEqual(cur, want):
		return nil
	default:
		out, err = api.Update(ctx, want, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("write endpoints %s: %w", svc.Name, err)
	}
	c.expect.expect(key, expectation{kind: kindEndpoints, name: out.Name, resourceVersion: out.ResourceVersion})
	return nil
}

// deleteEndpoints deletes the Endpoints object of a Service that is gone,
// if this controller made it.
func (c *Controller) deleteEndpoints(ctx context.Context, key, ns, name string) error {
	cur, err := c.endpoints.Endpoints(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !ownsEndpoints(cur) {
		return nil
	}
	err = c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete endpoints %s: %w", name, err)
	}
	c.expect.expect(key, expectation{kind: kindEndpoints, name: name, deleted: true, uid: cur.UID})
	return nil
}

// observed says whether the cache shows the expected write.
func (c *Controller) observed(ns string, x expectation) bool {
	var obj metav1.Object
	var err error
	switch x.kind {
	case kindSlice:
		var s *discoveryv1.EndpointSlice
		if s, err = c.slices.EndpointSlices(ns).Get(x.name); err == nil {
			obj = s
		}
	case kindEndpoints:
		var ep *corev1.Endpoints
		if ep, err = c.endpoints.Endpoints(ns).Get(x.name); err == nil {
			obj = ep
		}
	}
	if err != nil {
		return x.deleted && apierrors.IsNotFound(err)
	}
	if x.deleted {
		return obj.GetUID() != x.uid
	}
	return versionAtLeast(obj.GetResourceVersion(), x.resourceVersion)
}
