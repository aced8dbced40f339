package garbagecollector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Controller is the garbage collector.
type Controller struct {
	cfg    Config
	log    *slog.Logger
	cached discovery.CachedDiscoveryInterface
	// mapper resolves an ownerReference's apiVersion and kind to a
	// resource; discovery refreshes it, and a miss refreshes it once.
	mapper *restmapper.DeferredDiscoveryRESTMapper
	graph  *graph
	absent *absentCache

	mu      sync.Mutex
	started bool

	// queue holds UIDs of objects to settle; made in Run, before any
	// informer that feeds it starts.
	queue workqueue.TypedRateLimitingInterface[types.UID]

	monMu    sync.Mutex
	monitors map[schema.GroupVersionResource]*monitor
	monWG    sync.WaitGroup
}

// New validates cfg and applies defaults; it starts nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.DiscoveryPeriod == 0 {
		cfg.DiscoveryPeriod = DefaultDiscoveryPeriod
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Discovery == nil && cfg.Client != nil {
		cfg.Discovery = cfg.Client.Discovery()
	}
	switch {
	case cfg.Dynamic == nil:
		return nil, errors.New("garbagecollector: Dynamic is required")
	case cfg.Discovery == nil:
		return nil, errors.New("garbagecollector: Client or Discovery is required")
	case cfg.Workers < 0:
		return nil, fmt.Errorf("garbagecollector: Workers must not be negative, got %d", cfg.Workers)
	case cfg.DiscoveryPeriod < 0:
		return nil, fmt.Errorf("garbagecollector: DiscoveryPeriod must not be negative, got %v", cfg.DiscoveryPeriod)
	}
	cached := memory.NewMemCacheClient(cfg.Discovery)
	return &Controller{
		cfg:      cfg,
		log:      cfg.Logger.With(logKeyComponent, "garbagecollector"),
		cached:   cached,
		mapper:   restmapper.NewDeferredDiscoveryRESTMapper(cached),
		graph:    newGraph(),
		absent:   newAbsentCache(absentOwners),
		monitors: map[schema.GroupVersionResource]*monitor{},
	}, nil
}

// Run watches, collects and finalizes until ctx is done, and returns nil
// then. Discovery failures are retried every DiscoveryPeriod, not
// returned. Every informer and worker has exited when Run returns.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return ErrRunTwice
	}
	c.started = true
	c.mu.Unlock()

	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[types.UID](),
		workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: "garbagecollector"})
	// Shutdown, in order: 1. the queue, which wakes idle workers; 2. the
	// workers (busy ones see ctx); 3. the informers, which feed the queue.
	var wg sync.WaitGroup
	defer func() {
		c.queue.ShutDown()
		wg.Wait()
		c.stopMonitors()
	}()

	if err := c.resyncMonitors(ctx); err != nil {
		c.log.Warn("discover resources", logKeyError, err)
	}
	for range c.cfg.Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	c.log.Info("started", logKeyWorkers, c.cfg.Workers)
	wg.Go(func() {
		// Log once the graph is whole; orphaning and foreground deletion
		// wait for it. WaitForCacheSync returns when ctx is done.
		if checks := c.hasSyncedChecks(); len(checks) > 0 && cache.WaitForCacheSync(ctx.Done(), checks...) {
			c.log.Info("informers synced")
		}
	})

	t := time.NewTicker(c.cfg.DiscoveryPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := c.resyncMonitors(ctx); err != nil {
				c.log.Warn("discover resources", logKeyError, err)
			}
		}
	}
}

// processNext settles one object; false means the queue is shut down.
func (c *Controller) processNext(ctx context.Context) bool {
	uid, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(uid)
	err := c.syncSafe(ctx, uid)
	switch {
	case err == nil:
		c.queue.Forget(uid)
	case ctx.Err() != nil:
		// Stopping: the next leader starts over.
	case errors.Is(err, errNotSynced):
		c.queue.AddAfter(uid, notSyncedRetry)
	default:
		c.log.Warn("sync object", logKeyObject, c.describe(uid), logKeyError, err)
		c.queue.AddRateLimited(uid)
	}
	return true
}

// syncSafe runs sync and turns a panic into an error.
func (c *Controller) syncSafe(ctx context.Context, uid types.UID) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.sync(ctx, uid)
}

func (c *Controller) describe(uid types.UID) string {
	if n := c.graph.node(uid); n != nil {
		return n.String()
	}
	return string(uid)
}
