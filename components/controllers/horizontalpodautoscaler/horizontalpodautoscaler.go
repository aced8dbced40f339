package horizontalpodautoscaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"kiln.dev/kiln/components/controllers/worker"
)

// Controller scales the targets of HorizontalPodAutoscalers.
type Controller struct {
	client  kubernetes.Interface
	metrics metricsclient.Interface
	log     *slog.Logger
	cfg     Config
	// recorder is nil when Config.Events is.
	recorder record.EventRecorder

	hpaLister autoscalinglisters.HorizontalPodAutoscalerLister
	podLister corelisters.PodLister
	handlers  worker.Handlers
	queue     workqueue.TypedRateLimitingInterface[string]

	// histories holds each HPA's recommendations and scale events by
	// key. The queue hands a key to one worker at a time, so only the map
	// needs the lock.
	mu        sync.Mutex
	histories map[string]*history

	// now is the clock; a test seam.
	now func() time.Time

	guard worker.Guard
}

// New registers the HPA and Pod informers and their handlers on
// cfg.Informers; it starts nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Metrics == nil || cfg.Informers == nil {
		return nil, errors.New("horizontalpodautoscaler: Config.Client, Config.Metrics and Config.Informers are required")
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"SyncPeriod", cfg.SyncPeriod}, {"DownscaleStabilizationWindow", cfg.DownscaleStabilizationWindow},
		{"CPUInitializationPeriod", cfg.CPUInitializationPeriod}, {"InitialReadinessDelay", cfg.InitialReadinessDelay}} {
		if f.v < 0 {
			return nil, fmt.Errorf("horizontalpodautoscaler: Config.%s must not be negative, got %v", f.name, f.v)
		}
	}
	if cfg.Tolerance < 0 || cfg.Workers < 0 {
		return nil, fmt.Errorf("horizontalpodautoscaler: Config.Tolerance and Config.Workers must not be negative, got %v and %d", cfg.Tolerance, cfg.Workers)
	}
	cfg.SyncPeriod = or(cfg.SyncPeriod, DefaultSyncPeriod)
	cfg.DownscaleStabilizationWindow = or(cfg.DownscaleStabilizationWindow, DefaultDownscaleStabilizationWindow)
	cfg.CPUInitializationPeriod = or(cfg.CPUInitializationPeriod, DefaultCPUInitializationPeriod)
	cfg.InitialReadinessDelay = or(cfg.InitialReadinessDelay, DefaultInitialReadinessDelay)
	cfg.Tolerance = or(cfg.Tolerance, DefaultTolerance)
	cfg.Workers = or(cfg.Workers, DefaultWorkers)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	hpaInformer := cfg.Informers.Autoscaling().V2().HorizontalPodAutoscalers()
	podInformer := cfg.Informers.Core().V1().Pods()
	c := &Controller{
		client:    cfg.Client,
		metrics:   cfg.Metrics,
		log:       cfg.Logger.With(logKeyComponent, "horizontalpodautoscaler"),
		cfg:       cfg,
		hpaLister: hpaInformer.Lister(),
		podLister: podInformer.Lister(),
		// Every retry waits a sync period, as in kube: an HPA whose
		// metrics are missing is looked at again then, not in a
		// tight backoff that floods Events.
		queue: workqueue.NewTypedRateLimitingQueueWithConfig[string](fixedInterval(cfg.SyncPeriod),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "horizontalpodautoscaler"}),
		histories: map[string]*history{},
		now:       time.Now,
	}
	if cfg.Events != nil {
		c.recorder = cfg.Events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent})
	}
	enqueue := func(o any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			c.queue.Add(key)
		}
	}
	funcs := cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		// Only a spec change is news: status changes are the
		// controller's own writes, and the periodic sync sees the rest.
		UpdateFunc: func(oldObj, curObj any) {
			old, ok1 := oldObj.(*autoscalingv2.HorizontalPodAutoscaler)
			cur, ok2 := curObj.(*autoscalingv2.HorizontalPodAutoscaler)
			if ok1 && ok2 && old.Generation != cur.Generation {
				enqueue(cur)
			}
		},
		DeleteFunc: enqueue,
	}
	if err := c.handlers.Add(hpaInformer.Informer(), funcs); err != nil {
		return nil, fmt.Errorf("horizontalpodautoscaler: add event handler: %w", err)
	}
	// The Pod informer only feeds the lister; pods do not trigger syncs.
	if err := c.handlers.Add(podInformer.Informer(), cache.ResourceEventHandlerFuncs{}); err != nil {
		return nil, fmt.Errorf("horizontalpodautoscaler: add event handler: %w", err)
	}
	return c, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Run waits for the informers' caches, then evaluates every HPA each
// Config.SyncPeriod until ctx is done. It returns nil on a clean stop and
// ErrRunTwice when called again.
func (c *Controller) Run(ctx context.Context) error {
	if !c.guard.Start() {
		return ErrRunTwice
	}
	worker.RunQueue(ctx, &c.handlers, c.queue, c.cfg.Workers, c.sync, c.log)
	return nil
}

// sync evaluates one HPA and queues it again for the next period; on an
// error the worker requeues it after the same period.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	hpa, err := c.hpaLister.HorizontalPodAutoscalers(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.histories, key)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.reconcile(ctx, key, hpa); err != nil {
		return err
	}
	c.queue.AddAfter(key, c.cfg.SyncPeriod)
	return nil
}

// historyOf returns the history of the HPA at key, new if there is none.
func (c *Controller) historyOf(key string) *history {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.histories[key]
	if h == nil {
		h = &history{}
		c.histories[key] = h
	}
	return h
}

// event records an Event about hpa when the controller has a recorder.
func (c *Controller) event(hpa *autoscalingv2.HorizontalPodAutoscaler, typ, reason, format string, args ...any) {
	if c.recorder != nil {
		c.recorder.Eventf(hpa, typ, reason, format, args...)
	}
}

// fixedInterval is a rate limiter that always waits one interval: kube's
// FixedItemIntervalRateLimiter for HPAs.
type fixedInterval time.Duration

func (f fixedInterval) When(string) time.Duration { return time.Duration(f) }
func (fixedInterval) Forget(string)               {}
func (fixedInterval) NumRequeues(string) int      { return 0 }
