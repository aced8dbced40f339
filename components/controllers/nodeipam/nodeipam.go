package nodeipam

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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"kiln.dev/kiln/components/controllers/worker"
)

// Event reason of a Node that got no CIDR, as kube's.
const reasonCIDRNotAvailable = "CIDRNotAvailable"

// Controller allocates pod CIDRs to Nodes.
type Controller struct {
	client kubernetes.Interface
	log    *slog.Logger

	nodeLister corelisters.NodeLister
	synced     []cache.InformerSynced
	informer   cache.SharedIndexInformer
	reg        cache.ResourceEventHandlerRegistration

	queue workqueue.TypedRateLimitingInterface[string]

	// Owned by the single worker (and by Run before the worker starts).
	alloc    *allocator
	reported map[string]bool // Nodes with a CIDRNotAvailable Event

	// Test seams, set in New.
	now func() time.Time

	guard worker.Guard
}

// New validates cfg, applies defaults and registers the Node informer and
// its handler on cfg.Informers; it starts nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil {
		return nil, errors.New("nodeipam: Config.Client is required")
	}
	if cfg.Informers == nil {
		return nil, errors.New("nodeipam: Config.Informers is required")
	}
	if cfg.ClusterCIDR == "" {
		cfg.ClusterCIDR = DefaultClusterCIDR
	}
	if cfg.NodeMaskSize == 0 {
		cfg.NodeMaskSize = DefaultNodeMaskSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	alloc, err := newAllocator(cfg.ClusterCIDR, cfg.NodeMaskSize)
	if err != nil {
		return nil, err
	}
	inf := cfg.Informers.Core().V1().Nodes()
	c := &Controller{
		client:     cfg.Client,
		log:        cfg.Logger.With(logKeyComponent, "nodeipam"),
		nodeLister: inf.Lister(),
		informer:   inf.Informer(),
		queue:      worker.NewQueue("nodeipam"),
		alloc:      alloc,
		reported:   map[string]bool{},
		now:        time.Now,
	}
	c.reg, err = c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	})
	if err != nil {
		return nil, fmt.Errorf("nodeipam: add event handler: %w", err)
	}
	c.synced = []cache.InformerSynced{c.informer.HasSynced, c.reg.HasSynced}
	return c, nil
}

// Run waits for the Node cache, marks every CIDR the cached Nodes hold,
// then allocates with one worker until ctx is done. It returns nil on a
// clean stop and ErrRunTwice when called again.
func (c *Controller) Run(ctx context.Context) error {
	if !c.guard.Start() {
		return ErrRunTwice
	}

	// Shutdown, in order: 1. the queue stops handing out keys; 2. the
	// worker finishes its sync and exits; 3. the handler stops feeding the
	// queue, since the factory may outlive this controller.
	defer func() { _ = c.informer.RemoveEventHandler(c.reg) }()
	defer c.queue.ShutDown()

	c.log.Info("waiting for caches", logKeyRange, c.alloc.rng.String())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return nil // ctx ended first
	}
	// Every block in use is marked before the first allocation, so a new
	// Node never gets a block an existing one holds.
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("nodeipam: list nodes: %w", err)
	}
	for _, n := range nodes {
		c.markExisting(n)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for c.processNextWorkItem(ctx) {
		}
	})
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	c.log.Info("stopped")
	return nil
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.queue.Add(key)
}

// processNextWorkItem syncs one key; it returns false once the queue is
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

// podCIDR returns the Node's (first) pod CIDR.
func podCIDR(n *corev1.Node) string {
	if n.Spec.PodCIDR != "" {
		return n.Spec.PodCIDR
	}
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs[0]
	}
	return ""
}

// markExisting records the CIDR a Node already holds, replacing any block
// reserved for it before; it reports false if the Node has none.
func (c *Controller) markExisting(n *corev1.Node) bool {
	cidr := podCIDR(n)
	if cidr == "" {
		return false
	}
	if held, ok := c.alloc.held(n.Name); ok && held != cidr {
		c.alloc.release(n.Name)
	}
	conflicts, ok := c.alloc.mark(n.Name, cidr)
	switch {
	case !ok:
		c.log.Warn("node's pod CIDR is outside the cluster CIDR; leaving it", logKeyNode, n.Name, logKeyCIDR, cidr, logKeyRange, c.alloc.rng.String())
	case len(conflicts) > 0:
		c.log.Error("node's pod CIDR overlaps another node's", logKeyNode, n.Name, logKeyCIDR, cidr, "others", conflicts)
	}
	return true
}

// sync gives the Node a CIDR if it has none, or records the one it has;
// a Node that is gone releases its block. It is idempotent: a Node whose
// patch is not yet in the cache gets the same block patched again.
func (c *Controller) sync(ctx context.Context, name string) error {
	n, err := c.nodeLister.Get(name)
	if apierrors.IsNotFound(err) {
		delete(c.reported, name)
		if c.alloc.release(name) {
			c.log.Info("released pod CIDR of deleted node", logKeyNode, name)
			c.requeueWaiting()
		}
		return nil
	}
	if err != nil {
		return err
	}
	if c.markExisting(n) {
		delete(c.reported, name)
		return nil
	}
	cidr, ok := c.alloc.held(name)
	if !ok {
		if cidr, ok = c.alloc.allocate(name); !ok {
			c.reportFull(ctx, n)
			return ErrRangeFull
		}
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"podCIDR": cidr, "podCIDRs": []string{cidr}}})
	if err != nil {
		return err
	}
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	if _, err := c.client.CoreV1().Nodes().Patch(wctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // the delete event releases the block
		}
		return fmt.Errorf("patch pod CIDR %s: %w", cidr, err)
	}
	delete(c.reported, name)
	c.log.Info("allocated pod CIDR", logKeyNode, name, logKeyCIDR, cidr)
	return nil
}

// requeueWaiting queues every Node still without a CIDR, after a block
// was released.
func (c *Controller) requeueWaiting() {
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, n := range nodes {
		if podCIDR(n) == "" {
			c.queue.Add(n.Name)
		}
	}
}

// reportFull logs and records one CIDRNotAvailable Event per Node until it
// gets a CIDR.
func (c *Controller) reportFull(ctx context.Context, n *corev1.Node) {
	if c.reported[n.Name] {
		return
	}
	c.log.Error("no pod CIDR available for node", logKeyNode, n.Name, logKeyRange, c.alloc.rng.String())
	now := metav1.NewTime(c.now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", n.Name, now.UnixNano()), Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID,
		},
		Reason:         reasonCIDRNotAvailable,
		Message:        fmt.Sprintf("Node %s status is now: %s (cluster CIDR %s is full)", n.Name, reasonCIDRNotAvailable, c.alloc.rng),
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "nodeipam"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	if _, err := c.client.CoreV1().Events(ev.Namespace).Create(wctx, ev, metav1.CreateOptions{}); err != nil {
		c.log.Warn("record event", logKeyNode, n.Name, logKeyError, err)
		return
	}
	c.reported[n.Name] = true
}
