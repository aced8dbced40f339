package replicaset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"kiln.dev/kiln/components/controllers/expectations"
	"kiln.dev/kiln/components/controllers/worker"
)

// controllerKind is what the ownerReferences of owned Pods name.
var controllerKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// Controller keeps the Pods of every ReplicaSet at spec.replicas.
type Controller struct {
	client  kubernetes.Interface
	log     *slog.Logger
	workers int
	// recorder is nil when Config.Events is.
	recorder record.EventRecorder

	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	handlers  worker.Handlers

	queue workqueue.TypedRateLimitingInterface[string]
	exp   *expectations.Tracker

	// Test seams, set in New.
	syncHandler func(ctx context.Context, key string) error
	now         func() time.Time

	mu    sync.Mutex
	guard worker.Guard
}

// New registers the ReplicaSet and Pod informers and their handlers on
// cfg.Informers; it starts nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil {
		return nil, errors.New("replicaset: Config.Client is required")
	}
	if cfg.Informers == nil {
		return nil, errors.New("replicaset: Config.Informers is required")
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("replicaset: Config.Workers must not be negative, got %d", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rsInformer := cfg.Informers.Apps().V1().ReplicaSets()
	podInformer := cfg.Informers.Core().V1().Pods()
	c := &Controller{
		client:    cfg.Client,
		log:       cfg.Logger.With(logKeyComponent, "replicaset"),
		workers:   cfg.Workers,
		rsLister:  rsInformer.Lister(),
		podLister: podInformer.Lister(),
		queue:     worker.NewQueue("replicaset"),
		now:       time.Now,
	}
	if cfg.Events != nil {
		c.recorder = cfg.Events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent})
	}
	c.exp = expectations.New(ExpectationsTimeout, func() time.Time { return c.now() })
	c.syncHandler = c.sync
	if err := c.handlers.AddAll(
		worker.On{Informer: rsInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: c.addRS, UpdateFunc: c.updateRS, DeleteFunc: c.deleteRS}},
		worker.On{Informer: podInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: c.addPod, UpdateFunc: c.updatePod, DeleteFunc: c.deletePod}},
	); err != nil {
		return nil, fmt.Errorf("replicaset: add event handler: %w", err)
	}
	return c, nil
}

// Run waits for the informers' caches, then syncs ReplicaSets with
// Config.Workers workers until ctx is done. A sync in progress when ctx
// ends finishes its current batch of Pod writes (they are not cancelled,
// see writeContext) and Run returns only after every worker has, so a
// successor started afterwards sees every Pod this instance created. Run
// returns nil on a clean stop and ErrRunTwice when called again.
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

func (c *Controller) enqueue(rs *appsv1.ReplicaSet) {
	key, err := cache.MetaNamespaceKeyFunc(rs)
	if err != nil {
		return // only for objects without metadata
	}
	c.queue.Add(key)
}

func (c *Controller) addRS(obj any) {
	if rs, ok := obj.(*appsv1.ReplicaSet); ok {
		c.enqueue(rs)
	}
}

func (c *Controller) updateRS(oldObj, curObj any) {
	old, ok1 := oldObj.(*appsv1.ReplicaSet)
	cur, ok2 := curObj.(*appsv1.ReplicaSet)
	if !ok1 || !ok2 {
		return
	}
	if old.UID != cur.UID {
		// Deleted and recreated between two watch events: the old
		// one's expectations must not hold up the new one.
		c.deleteRS(old)
	}
	c.enqueue(cur)
}

func (c *Controller) deleteRS(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(rs)
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
		// First seen already terminating (e.g. after a restart): that
		// is a deletion to observe, not a creation.
		c.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		if rs := c.resolveControllerRef(pod.Namespace, ref); rs != nil {
			key, _ := cache.MetaNamespaceKeyFunc(rs)
			c.exp.CreationsObserved(key, 1)
			c.queue.Add(key)
		}
		return
	}
	// An orphan: every matching ReplicaSet may want to adopt it. No
	// creation is observed, since no ReplicaSet created it.
	for _, rs := range c.matchingReplicaSets(pod) {
		c.enqueue(rs)
	}
}

func (c *Controller) updatePod(oldObj, curObj any) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := curObj.(*corev1.Pod)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		return // a resync: nothing changed
	}
	labelsChanged := !equality.Semantic.DeepEqual(old.Labels, cur.Labels)
	if cur.DeletionTimestamp != nil {
		// A graceful deletion began: the ReplicaSet replaces the Pod now,
		// not when the kubelet finally removes it.
		c.deletePod(cur)
		if labelsChanged {
			c.deletePod(old)
		}
		return
	}
	curRef, oldRef := metav1.GetControllerOf(cur), metav1.GetControllerOf(old)
	refChanged := !equality.Semantic.DeepEqual(curRef, oldRef)
	if refChanged && oldRef != nil {
		if rs := c.resolveControllerRef(old.Namespace, oldRef); rs != nil {
			c.enqueue(rs)
		}
	}
	if curRef != nil {
		if rs := c.resolveControllerRef(cur.Namespace, curRef); rs != nil {
			c.enqueue(rs)
		}
		return
	}
	if labelsChanged || refChanged {
		for _, rs := range c.matchingReplicaSets(cur) {
			c.enqueue(rs)
		}
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
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return // nobody waits for an orphan to go
	}
	rs := c.resolveControllerRef(pod.Namespace, ref)
	if rs == nil {
		return
	}
	key, _ := cache.MetaNamespaceKeyFunc(rs)
	c.exp.DeletionObserved(key, podKey(pod))
	c.queue.Add(key)
}

// resolveControllerRef returns the cached ReplicaSet ref names, or nil if
// ref is not a ReplicaSet or names one that no longer exists (same name,
// other UID).
func (c *Controller) resolveControllerRef(namespace string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil || gv.Group != controllerKind.Group || ref.Kind != controllerKind.Kind {
		return nil
	}
	rs, err := c.rsLister.ReplicaSets(namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return nil
	}
	return rs
}

// matchingReplicaSets returns the cached ReplicaSets of the Pod's
// namespace whose selector matches its labels.
func (c *Controller) matchingReplicaSets(pod *corev1.Pod) []*appsv1.ReplicaSet {
	if len(pod.Labels) == 0 {
		return nil
	}
	all, err := c.rsLister.ReplicaSets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, rs)
	}
	return out
}

// event records an Event about rs, unless the controller records none.
func (c *Controller) event(rs *appsv1.ReplicaSet, eventType, reason, format string, args ...any) {
	if c.recorder != nil {
		c.recorder.Eventf(rs, eventType, reason, format, args...)
	}
}

// podKey names a Pod in the expectations.
func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }
