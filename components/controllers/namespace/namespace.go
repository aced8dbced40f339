package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"kiln.dev/kiln/components/controllers/worker"
)

// Controller empties and finalizes deleted namespaces.
type Controller struct {
	cfg      Config
	log      *slog.Logger
	informer cache.SharedIndexInformer

	guard worker.Guard

	// queue holds namespace names; it is made in Run (a workqueue starts
	// a goroutine) before the event handler that feeds it is added.
	queue workqueue.TypedRateLimitingInterface[string]

	// now stamps condition transitions; a test seam.
	now func() time.Time
}

// New validates cfg, applies defaults and registers the Namespace
// informer on cfg.Informers; it starts nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MinRetry == 0 {
		cfg.MinRetry = DefaultMinRetry
	}
	if cfg.MaxRetry == 0 {
		cfg.MaxRetry = DefaultMaxRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.Client == nil:
		return nil, errors.New("namespace: Client is required")
	case cfg.Dynamic == nil:
		return nil, errors.New("namespace: Dynamic is required")
	case cfg.Informers == nil:
		return nil, errors.New("namespace: Informers is required")
	case cfg.Workers < 0:
		return nil, fmt.Errorf("namespace: Workers must not be negative, got %d", cfg.Workers)
	case cfg.MinRetry < 0 || cfg.MaxRetry < cfg.MinRetry:
		return nil, fmt.Errorf("namespace: MinRetry (%v) and MaxRetry (%v) must satisfy 0 <= MinRetry <= MaxRetry", cfg.MinRetry, cfg.MaxRetry)
	}
	if cfg.Discovery == nil {
		cfg.Discovery = cfg.Client.Discovery()
	}
	return &Controller{
		cfg:      cfg,
		log:      cfg.Logger.With(logKeyComponent, "namespace-controller"),
		informer: cfg.Informers.Core().V1().Namespaces().Informer(),
		now:      time.Now,
	}, nil
}

// Run processes deleted namespaces until ctx is done and returns nil then.
// The caller starts the informer factory; Run waits for its cache. Every
// goroutine Run starts has exited when it returns.
func (c *Controller) Run(ctx context.Context) error {
	if !c.guard.Start() {
		return ErrRunTwice
	}

	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](c.cfg.MinRetry, c.cfg.MaxRetry),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespace"})
	defer c.queue.ShutDown()
	reg, err := c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueNamespace,
		UpdateFunc: func(_, obj any) { c.enqueueNamespace(obj) },
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return nil // the factory stopped with ctx before Run got here
	case err != nil:
		return fmt.Errorf("namespace: add event handler: %w", err)
	}
	defer func() { _ = c.informer.RemoveEventHandler(reg) }()
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return nil // ctx is done
	}

	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	// Shutting the queue down wakes idle workers; busy ones see ctx.
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// enqueueNamespace queues a namespace that is being deleted.
func (c *Controller) enqueueNamespace(obj any) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok || ns.DeletionTimestamp == nil {
		return
	}
	c.queue.Add(ns.Name)
}

// processNext syncs one key; false means the queue is shut down.
func (c *Controller) processNext(ctx context.Context) bool {
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)
	err := c.syncSafe(ctx, name)
	var remaining *contentRemainingError
	switch {
	case err == nil:
		c.queue.Forget(name)
	case ctx.Err() != nil:
		// Stopping: the next leader starts over.
	case errors.As(err, &remaining):
		c.log.Debug("waiting for namespace content", logKeyNamespace, name, logKeyError, err)
		c.queue.AddRateLimited(name)
	default:
		c.log.Warn("sync namespace", logKeyNamespace, name, logKeyError, err)
		c.queue.AddRateLimited(name)
	}
	return true
}

// syncSafe runs sync and turns a panic into an error, so one bad
// namespace cannot take the controller manager down.
func (c *Controller) syncSafe(ctx context.Context, name string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.sync(ctx, name)
}
