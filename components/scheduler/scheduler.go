package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"
)

// Scheduler places pods on nodes. See the package documentation.
type Scheduler struct {
	client      kubernetes.Interface
	log         *slog.Logger
	name        string
	identity    string
	bindWorkers int

	cache    *cache
	queue    *queue
	volumes  volumeListers
	algo     *algorithm
	snap     *snapshot
	reporter *reporter

	synced   []toolscache.InformerSynced
	handlers []handlerRegistration

	// events carries Scheduled events to their writer; full means drop.
	events     chan *corev1.Event
	eventLimit flowcontrol.RateLimiter

	// Test seams, set in New.
	bind func(ctx context.Context, b *corev1.Binding) error
	now  func() time.Time

	mu      sync.Mutex
	started bool
}

type handlerRegistration struct {
	informer toolscache.SharedIndexInformer
	reg      toolscache.ResourceEventHandlerRegistration
}

// New applies defaults, validates cfg and registers the Pod, Node,
// Namespace, PersistentVolumeClaim, PersistentVolume and StorageClass
// informers and their handlers on cfg.Informers; it starts nothing.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Client == nil {
		return nil, errors.New("scheduler: Config.Client is required")
	}
	if cfg.Informers == nil {
		return nil, errors.New("scheduler: Config.Informers is required")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"Parallelism", cfg.Parallelism}, {"BindWorkers", cfg.BindWorkers}, {"PercentageOfNodesToScore", cfg.PercentageOfNodesToScore}} {
		if f.v < 0 {
			return nil, fmt.Errorf("scheduler: Config.%s must not be negative, got %d", f.name, f.v)
		}
	}
	if cfg.PercentageOfNodesToScore > 100 {
		return nil, fmt.Errorf("scheduler: Config.PercentageOfNodesToScore must be at most 100, got %d", cfg.PercentageOfNodesToScore)
	}
	if cfg.SchedulerName == "" {
		cfg.SchedulerName = DefaultSchedulerName
	}
	if cfg.Parallelism == 0 {
		cfg.Parallelism = DefaultParallelism
	}
	if cfg.BindWorkers == 0 {
		cfg.BindWorkers = DefaultBindWorkers
	}
	if cfg.Identity == "" {
		cfg.Identity, _ = os.Hostname()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Scheduler{
		client:      cfg.Client,
		log:         cfg.Logger.With(logKeyComponent, "scheduler"),
		name:        cfg.SchedulerName,
		identity:    cfg.Identity,
		bindWorkers: cfg.BindWorkers,
		cache:       newCache(),
		snap:        newSnapshot(),
		algo: &algorithm{parallelism: cfg.Parallelism, percentage: cfg.PercentageOfNodesToScore,
			rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))},
		events:     make(chan *corev1.Event, eventQueueSize),
		eventLimit: flowcontrol.NewTokenBucketRateLimiter(scheduledEventsPerSecond, scheduledEventsBurst),
		now:        time.Now,
	}
	s.queue = newQueue(func() time.Time { return s.now() })
	s.reporter = &reporter{s: s, records: map[string]*eventRecord{}}
	s.bind = func(ctx context.Context, b *corev1.Binding) error {
		return s.client.CoreV1().Pods(b.Namespace).Bind(ctx, b, metav1.CreateOptions{})
	}
	core := cfg.Informers.Core().V1()
	classes := cfg.Informers.Storage().V1().StorageClasses()
	s.volumes = volumeListers{claims: core.PersistentVolumeClaims().Lister(), volumes: core.PersistentVolumes().Lister(), classes: classes.Lister()}
	volumeEvents := toolscache.ResourceEventHandlerFuncs{AddFunc: s.volumesChanged, UpdateFunc: func(_, obj any) { s.volumesChanged(obj) }}
	for _, h := range []struct {
		informer toolscache.SharedIndexInformer
		funcs    toolscache.ResourceEventHandlerFuncs
	}{
		{core.Nodes().Informer(), toolscache.ResourceEventHandlerFuncs{AddFunc: s.addNode, UpdateFunc: s.updateNode, DeleteFunc: s.deleteNode}},
		{core.Namespaces().Informer(), toolscache.ResourceEventHandlerFuncs{AddFunc: s.setNamespace,
			UpdateFunc: func(_, obj any) { s.setNamespace(obj) }, DeleteFunc: s.deleteNamespace}},
		{core.Pods().Informer(), toolscache.ResourceEventHandlerFuncs{AddFunc: s.addPod, UpdateFunc: s.updatePod, DeleteFunc: s.deletePod}},
		{core.PersistentVolumeClaims().Informer(), volumeEvents},
		{core.PersistentVolumes().Informer(), volumeEvents},
		{classes.Informer(), volumeEvents},
	} {
		reg, err := h.informer.AddEventHandler(h.funcs)
		if err != nil {
			s.removeHandlers()
			return nil, fmt.Errorf("scheduler: add event handler: %w", err)
		}
		s.handlers = append(s.handlers, handlerRegistration{h.informer, reg})
		s.synced = append(s.synced, h.informer.HasSynced, reg.HasSynced)
	}
	return s, nil
}

// Run waits for the informers' caches, then schedules pods until ctx is
// done. Decisions are made one pod at a time, each over a fresh snapshot;
// binds run on Config.BindWorkers goroutines so that the next decision
// need not wait for the API. Binds in flight when ctx ends are finished
// (they are not cancelled) before Run returns, so a successor started
// afterwards lists every pod this instance bound and never places a pod
// onto room this one already used. Run returns nil on a clean stop and
// ErrRunTwice when called again.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrRunTwice
	}
	s.started = true
	s.mu.Unlock()
	defer s.removeHandlers()

	s.log.Info("waiting for caches")
	if !toolscache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return nil // ctx ended first
	}
	nodes, pods := s.cache.counts()
	s.log.Info("starting", logKeyNodes, nodes, logKeyPods, pods, logKeyWorkers, s.bindWorkers)

	// Shutdown, in order: 1. ctx ends and the queue closes, so the
	// scheduling loop returns; 2. the writers finish the binds and
	// reports already handed to them (with a context of their own) and
	// exit; 3. the event writer drops what is left and exits.
	stopQueue := context.AfterFunc(ctx, s.queue.close)
	defer stopQueue()
	writes := make(chan write, s.bindWorkers)
	wctx := context.WithoutCancel(ctx)
	var writers, others sync.WaitGroup
	for range s.bindWorkers {
		writers.Go(func() {
			for w := range writes {
				if err := recovered(func() { w.run(wctx) }); err != nil {
					s.recoverPod(w.qp, "write", err)
				}
			}
		})
	}
	others.Go(func() { s.writeEvents(ctx) })
	others.Go(func() {
		t := time.NewTicker(MaxUnschedulableDuration / 10)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.queue.flushUnschedulable()
			}
		}
	})

	for {
		qp := s.queue.pop(ctx)
		if qp == nil {
			break
		}
		if err := recovered(func() { s.scheduleOne(qp, writes) }); err != nil {
			s.recoverPod(qp, "schedule", err)
		}
	}
	close(writes)
	writers.Wait()
	close(s.events)
	others.Wait()
	s.log.Info("stopped")
	return nil
}

// write is an API write for one pod, run by a writer goroutine.
type write struct {
	qp  *queuedPod
	run func(ctx context.Context)
}

// recovered runs fn and returns a panic in it as an error, so that one
// bad pod cannot stop the scheduler.
func recovered(fn func()) (err error) {
	defer recoverInto(&err)
	fn()
	return nil
}

// recoverPod logs a panic while handling a pod and backs the pod off, so
// it is neither lost in flight nor held on a node it was not bound to.
func (s *Scheduler) recoverPod(qp *queuedPod, stage string, err error) {
	s.log.Error(stage, logKeyPod, qp.key, logKeyError, err)
	s.cache.forget(qp.pod.UID)
	s.queue.requeue(qp, false, 0)
	s.queue.move(nil)
}

func (s *Scheduler) removeHandlers() {
	for _, h := range s.handlers {
		_ = h.informer.RemoveEventHandler(h.reg) // fails only once the informer has stopped
	}
	s.handlers = nil
}

// scheduleOne decides one pod and hands its bind, or its failure report,
// to the writers.
func (s *Scheduler) scheduleOne(qp *queuedPod, writes chan<- write) {
	pod := qp.pod
	if pod.DeletionTimestamp != nil || s.cache.isAssumed(pod.UID) {
		s.queue.done(qp)
		return
	}
	s.cache.update(s.snap)
	vf, msg := s.volumes.newVolumeFilter(s.snap, pod)
	var d decision
	var err error
	if msg != "" {
		err = &FitError{NumAllNodes: len(s.snap.nodes), preFilter: msg, plugins: pluginVolumeBinding}
	} else {
		d, err = s.algo.scheduleWith(s.snap, pod, vf)
	}
	if err != nil {
		var fe *FitError
		var plugins plugin
		switch {
		case errors.As(err, &fe):
			plugins = fe.plugins
		case errors.Is(err, errNoNodes):
		default:
			s.log.Error("schedule", logKeyPod, qp.key, logKeyError, err)
			s.queue.requeue(qp, false, 0)
			return
		}
		msg := err.Error()
		s.log.Debug("unschedulable", logKeyPod, qp.key, logKeyReason, msg, logKeyAttempts, qp.attempts)
		// The pod stays in flight until its report is written, so that a
		// later attempt's bind cannot land before this attempt's
		// PodScheduled=False and leave a bound pod marked unschedulable.
		writes <- write{qp, func(ctx context.Context) {
			s.reporter.failed(ctx, pod, msg)
			s.queue.requeue(qp, true, plugins)
		}}
		return
	}
	s.cache.assume(d.pi, d.node)
	var claims []*corev1.PersistentVolumeClaim
	if vf != nil {
		claims = vf.toSelect
	}
	writes <- write{qp, func(ctx context.Context) { s.bindPod(ctx, qp, d.node, claims) }}
}
