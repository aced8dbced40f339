package nodelifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"kiln.dev/kiln/components/controllers/worker"
)

// nodeNameIndex indexes cached Pods by spec.nodeName.
const nodeNameIndex = "nodelifecycle.kiln.dev/nodeName"

// Controller marks unresponsive Nodes and evicts their Pods.
type Controller struct {
	client        kubernetes.Interface
	log           *slog.Logger
	grace         time.Duration
	monitorPeriod time.Duration
	// nodeEvents and evictionEvents are nil when Config.Events is.
	nodeEvents, evictionEvents record.EventRecorder

	nodeLister  corelisters.NodeLister
	leaseLister coordlisters.LeaseLister
	podIndexer  cache.Indexer
	handlers    worker.Handlers

	queue workqueue.TypedRateLimitingInterface[string]

	// health records, per Node, the last Lease renewTime and Ready
	// heartbeat seen and when (on this controller's clock) either changed.
	healthMu sync.Mutex
	health   map[string]health
	// startedAt stands in for the timeAdded of a taint that has none.
	startedAt time.Time

	// Test seams, set in New.
	now func() time.Time

	mu      sync.Mutex
	started bool
}

type health struct {
	renew, heartbeat time.Time // as the kubelet wrote them
	probed           time.Time // local time either last changed
}

// New validates cfg, applies defaults and registers the Node, Lease and
// Pod informers and their handlers on cfg.Informers; it starts nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil {
		return nil, errors.New("nodelifecycle: Config.Client is required")
	}
	if cfg.Informers == nil {
		return nil, errors.New("nodelifecycle: Config.Informers is required")
	}
	if cfg.GracePeriod < 0 {
		return nil, fmt.Errorf("nodelifecycle: Config.GracePeriod must not be negative, got %v", cfg.GracePeriod)
	}
	if cfg.MonitorPeriod < 0 {
		return nil, fmt.Errorf("nodelifecycle: Config.MonitorPeriod must not be negative, got %v", cfg.MonitorPeriod)
	}
	if cfg.GracePeriod == 0 {
		cfg.GracePeriod = DefaultGracePeriod
	}
	if cfg.MonitorPeriod == 0 {
		cfg.MonitorPeriod = DefaultMonitorPeriod
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	nodeInf := cfg.Informers.Core().V1().Nodes()
	leaseInf := cfg.Informers.Coordination().V1().Leases()
	podInf := cfg.Informers.Core().V1().Pods()
	c := &Controller{
		client:        cfg.Client,
		log:           cfg.Logger.With(logKeyComponent, "nodelifecycle"),
		grace:         cfg.GracePeriod,
		monitorPeriod: cfg.MonitorPeriod,
		nodeLister:    nodeInf.Lister(),
		leaseLister:   leaseInf.Lister(),
		podIndexer:    podInf.Informer().GetIndexer(),
		queue:         worker.NewQueue("nodelifecycle"),
		health:        map[string]health{},
		now:           time.Now,
	}
	if cfg.Events != nil {
		c.nodeEvents = cfg.Events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponentNode})
		c.evictionEvents = cfg.Events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponentEviction})
	}
	if _, exists := c.podIndexer.GetIndexers()[nodeNameIndex]; !exists {
		err := podInf.Informer().AddIndexers(cache.Indexers{nodeNameIndex: func(obj any) ([]string, error) {
			if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
				return []string{p.Spec.NodeName}, nil
			}
			return nil, nil
		}})
		if err != nil {
			return nil, fmt.Errorf("nodelifecycle: add pod index: %w", err)
		}
	}
	if err := c.handlers.AddAll(
		worker.On{Informer: nodeInf.Informer(), Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueNode,
			UpdateFunc: func(_, cur any) { c.enqueueNode(cur) },
			DeleteFunc: c.enqueueNode,
		}},
		worker.On{Informer: leaseInf.Informer(), Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueLease,
			UpdateFunc: func(_, cur any) { c.enqueueLease(cur) },
		}},
		worker.On{Informer: podInf.Informer(), Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueuePodNode,
			UpdateFunc: func(_, cur any) { c.enqueuePodNode(cur) },
		}},
	); err != nil {
		return nil, fmt.Errorf("nodelifecycle: add event handler: %w", err)
	}
	return c, nil
}

// Run waits for the caches, then checks every Node each MonitorPeriod
// and on every change of a Node, its Lease or its Pods, until ctx is
// done. It returns nil on a clean stop and ErrRunTwice when called again.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return ErrRunTwice
	}
	c.started = true
	c.mu.Unlock()

	// Shutdown, in order: 1. the queue stops handing out keys; 2. the
	// monitor and the workers exit; 3. handlers stop feeding the queue,
	// since the factory may outlive this controller.
	defer c.handlers.Remove()
	defer c.queue.ShutDown()

	c.log.Info("waiting for caches")
	if !cache.WaitForCacheSync(ctx.Done(), c.handlers.Synced()...) {
		return nil
	}
	c.startedAt = c.now()
	c.log.Info("starting", "gracePeriod", c.grace, "monitorPeriod", c.monitorPeriod)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c.processNextWorkItem(ctx) {
			}
		})
	}
	wg.Go(func() {
		tick := time.NewTicker(c.monitorPeriod)
		defer tick.Stop()
		for {
			c.enqueueAll()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	c.log.Info("stopped")
	return nil
}

// processNextWorkItem syncs one Node; it returns false once the queue is
// shut down. It is the only place that logs sync errors.
func (c *Controller) processNextWorkItem(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	err := recovered(func() error { return c.sync(ctx, key) })
	switch {
	case err == nil:
		c.queue.Forget(key)
	case ctx.Err() != nil:
	case apierrors.IsConflict(err):
		// The cache was behind our own write; the watch catches up.
		c.queue.AddRateLimited(key)
		c.log.Debug("sync conflict, retrying", logKeyNode, key, logKeyError, err)
	default:
		c.queue.AddRateLimited(key)
		c.log.Warn("sync failed, retrying", logKeyNode, key, logKeyError, err)
	}
	return true
}

// recovered runs fn and turns a panic into an error.
func recovered(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return fn()
}

func (c *Controller) enqueueAll() {
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, n := range nodes {
		c.queue.Add(n.Name)
	}
}

func (c *Controller) enqueueNode(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) enqueueLease(obj any) {
	if l, ok := obj.(*coordinationv1.Lease); ok && l.Namespace == corev1.NamespaceNodeLease {
		c.queue.Add(l.Name)
	}
}

func (c *Controller) enqueuePodNode(obj any) {
	if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		c.queue.Add(p.Spec.NodeName)
	}
}
