package daemonset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
var controllerKind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Controller keeps one Pod of every DaemonSet on each eligible Node.
type Controller struct {
	client  kubernetes.Interface
	log     *slog.Logger
	workers int
	// recorder is nil when Config.Events is.
	recorder record.EventRecorder

	dsLister   appslisters.DaemonSetLister
	podLister  corelisters.PodLister
	nodeLister corelisters.NodeLister
	revLister  appslisters.ControllerRevisionLister
	handlers   worker.Handlers

	queue workqueue.TypedRateLimitingInterface[string]
	exp   *expectations.Tracker

	// Test seams, set in New.
	syncHandler func(ctx context.Context, key string) error
	now         func() time.Time

	guard worker.Guard
}

// New registers the DaemonSet, Pod and Node informers and their handlers
// on cfg.Informers; it starts nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil {
		return nil, errors.New("daemonset: Config.Client is required")
	}
	if cfg.Informers == nil {
		return nil, errors.New("daemonset: Config.Informers is required")
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("daemonset: Config.Workers must not be negative, got %d", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dsInformer := cfg.Informers.Apps().V1().DaemonSets()
	podInformer := cfg.Informers.Core().V1().Pods()
	nodeInformer := cfg.Informers.Core().V1().Nodes()
	revInformer := cfg.Informers.Apps().V1().ControllerRevisions()
	c := &Controller{
		client:     cfg.Client,
		log:        cfg.Logger.With(logKeyComponent, "daemonset"),
		workers:    cfg.Workers,
		dsLister:   dsInformer.Lister(),
		podLister:  podInformer.Lister(),
		nodeLister: nodeInformer.Lister(),
		revLister:  revInformer.Lister(),
		queue:      worker.NewQueue("daemonset"),
		now:        time.Now,
	}
	if cfg.Events != nil {
		c.recorder = cfg.Events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent})
	}
	c.exp = expectations.New(ExpectationsTimeout, func() time.Time { return c.now() })
	c.syncHandler = c.sync
	if err := c.handlers.AddAll(
		worker.On{Informer: dsInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: c.addDS, UpdateFunc: c.updateDS, DeleteFunc: c.deleteDS}},
		worker.On{Informer: podInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: c.addPod, UpdateFunc: c.updatePod, DeleteFunc: c.deletePod}},
		worker.On{Informer: nodeInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: c.addNode, UpdateFunc: c.updateNode, DeleteFunc: c.deleteNode}},
		// A revision deleted or changed by someone else is put right.
		worker.On{Informer: revInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(_, cur any) { c.enqueueRevisionOwner(cur) },
			DeleteFunc: c.enqueueRevisionOwner,
		}},
	); err != nil {
		return nil, fmt.Errorf("daemonset: add event handler: %w", err)
	}
	return c, nil
}

// Run waits for the informers' caches, then syncs DaemonSets with
// Config.Workers workers until ctx is done. Pod writes in flight when ctx
// ends are finished (see worker.WriteContext) before Run returns. Run returns
// nil on a clean stop and ErrRunTwice when called again.
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

func (c *Controller) enqueue(ds *appsv1.DaemonSet) {
	key, err := cache.MetaNamespaceKeyFunc(ds)
	if err != nil {
		return
	}
	c.queue.Add(key)
}

func (c *Controller) enqueueAll() {
	all, err := c.dsLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range all {
		c.enqueue(ds)
	}
}

func (c *Controller) addDS(obj any) {
	if ds, ok := obj.(*appsv1.DaemonSet); ok {
		c.enqueue(ds)
	}
}

func (c *Controller) updateDS(oldObj, curObj any) {
	old, ok1 := oldObj.(*appsv1.DaemonSet)
	cur, ok2 := curObj.(*appsv1.DaemonSet)
	if !ok1 || !ok2 {
		return
	}
	if old.UID != cur.UID {
		c.deleteDS(old)
	}
	c.enqueue(cur)
}

func (c *Controller) deleteDS(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	ds, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(ds)
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
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return // orphans are not adopted
	}
	if ds := c.resolveControllerRef(pod.Namespace, ref); ds != nil {
		key, _ := cache.MetaNamespaceKeyFunc(ds)
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
		// A graceful deletion began: that is the deletion we expected.
		c.deletePod(cur)
		return
	}
	curRef, oldRef := metav1.GetControllerOf(cur), metav1.GetControllerOf(old)
	if !equality.Semantic.DeepEqual(curRef, oldRef) && oldRef != nil {
		if ds := c.resolveControllerRef(old.Namespace, oldRef); ds != nil {
			c.enqueue(ds)
		}
	}
	if curRef != nil {
		if ds := c.resolveControllerRef(cur.Namespace, curRef); ds != nil {
			c.enqueue(ds) // readiness, phase or labels changed
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
		return
	}
	ds := c.resolveControllerRef(pod.Namespace, ref)
	if ds == nil {
		return
	}
	key, _ := cache.MetaNamespaceKeyFunc(ds)
	c.exp.DeletionObserved(key, podKey(pod))
	c.queue.Add(key)
}

// Any Node change that can change eligibility resyncs every DaemonSet;
// sync works out which Nodes need what.

func (c *Controller) addNode(any) { c.enqueueAll() }

func (c *Controller) updateNode(oldObj, curObj any) {
	old, ok1 := oldObj.(*corev1.Node)
	cur, ok2 := curObj.(*corev1.Node)
	if !ok1 || !ok2 {
		return
	}
	if equality.Semantic.DeepEqual(old.Labels, cur.Labels) &&
		equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) &&
		(old.DeletionTimestamp == nil) == (cur.DeletionTimestamp == nil) {
		return // status heartbeats and the like
	}
	c.enqueueAll()
}

func (c *Controller) deleteNode(any) { c.enqueueAll() }

func (c *Controller) enqueueRevisionOwner(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	r, ok := obj.(*appsv1.ControllerRevision)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOf(r); ref != nil {
		if ds := c.resolveControllerRef(r.Namespace, ref); ds != nil {
			c.enqueue(ds)
		}
	}
}

// resolveControllerRef returns the cached DaemonSet ref names, or nil if
// ref is not a DaemonSet or names one that no longer exists.
func (c *Controller) resolveControllerRef(namespace string, ref *metav1.OwnerReference) *appsv1.DaemonSet {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil || gv.Group != controllerKind.Group || ref.Kind != controllerKind.Kind {
		return nil
	}
	ds, err := c.dsLister.DaemonSets(namespace).Get(ref.Name)
	if err != nil || ds.UID != ref.UID {
		return nil
	}
	return ds
}

// podKey names a Pod in the expectations.
func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }
