// Package podgc is kiln's pod garbage collector, after kube's: every
// Config.Interval it force-deletes (grace period 0) the Pods bound to
// Nodes that no longer exist, terminating or not, and the terminating
// Pods never bound to any Node, then deletes the oldest terminated
// (Succeeded or Failed) Pods beyond Config.TerminatedThreshold.
//
// A Node missing from the cache is checked against the API before its
// Pods are deleted, so a Node the watch has not shown yet never costs
// its Pods.
//
//	gc, err := podgc.New(podgc.Config{Client: cs, Informers: f})
//	f.Start(ctx.Done())
//	err = gc.Run(ctx) // blocks until ctx is done
package podgc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("podgc: Run called twice")

// Collector deletes orphaned and surplus terminated Pods.
type Collector struct {
	client    kubernetes.Interface
	log       *slog.Logger
	threshold int
	interval  time.Duration

	podLister  corelisters.PodLister
	nodeLister corelisters.NodeLister
	synced     []cache.InformerSynced

	// Test seam, set in New.
	gcHandler func(ctx context.Context) error

	mu      sync.Mutex
	started bool
}

// New registers the Pod and Node informers on cfg.Informers; it starts
// nothing.
func New(cfg Config) (*Collector, error) {
	if cfg.Client == nil {
		return nil, errors.New("podgc: Config.Client is required")
	}
	if cfg.Informers == nil {
		return nil, errors.New("podgc: Config.Informers is required")
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("podgc: Config.Interval must not be negative, got %v", cfg.Interval)
	}
	if cfg.TerminatedThreshold == 0 {
		cfg.TerminatedThreshold = DefaultTerminatedThreshold
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	pods := cfg.Informers.Core().V1().Pods()
	nodes := cfg.Informers.Core().V1().Nodes()
	gc := &Collector{
		client:     cfg.Client,
		log:        cfg.Logger.With(logKeyComponent, "podgc"),
		threshold:  cfg.TerminatedThreshold,
		interval:   cfg.Interval,
		podLister:  pods.Lister(),
		nodeLister: nodes.Lister(),
		synced:     []cache.InformerSynced{pods.Informer().HasSynced, nodes.Informer().HasSynced},
	}
	gc.gcHandler = gc.gc
	return gc, nil
}

// Run waits for the caches, then collects at once and every
// Config.Interval until ctx is done. A failed collection is logged and
// retried at the next tick. Run returns nil on a clean stop and
// ErrRunTwice when called again.
func (gc *Collector) Run(ctx context.Context) error {
	gc.mu.Lock()
	if gc.started {
		gc.mu.Unlock()
		return ErrRunTwice
	}
	gc.started = true
	gc.mu.Unlock()

	gc.log.Info("waiting for caches")
	if !cache.WaitForCacheSync(ctx.Done(), gc.synced...) {
		return nil
	}
	gc.log.Info("started", logKeyInterval, gc.interval, logKeyThreshold, gc.threshold)
	tick := time.NewTicker(gc.interval)
	defer tick.Stop()
	for {
		if err := recovered(func() error { return gc.gcHandler(ctx) }); err != nil && ctx.Err() == nil {
			gc.log.Warn("collection failed", logKeyError, err)
		}
		select {
		case <-ctx.Done():
			gc.log.Info("stopped")
			return nil
		case <-tick.C:
		}
	}
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

// gc runs one collection over the cached Pods.
func (gc *Collector) gc(ctx context.Context) error {
	pods, err := gc.podLister.List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	deleted := map[string]bool{}
	// 1. Orphans: Pods on Nodes that are gone.
	gone := map[string]bool{}
	for _, p := range pods {
		node := p.Spec.NodeName
		if node == "" {
			continue
		}
		missing, ok := gone[node]
		if !ok {
			missing, err = gc.nodeGone(ctx, node)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			gone[node] = missing
		}
		if missing {
			errs = append(errs, gc.forceDelete(ctx, p, "orphaned: node "+node+" is gone"))
			deleted[podKey(p)] = true
		}
	}
	// 2. Terminating Pods that were never bound: no kubelet will finish them.
	for _, p := range pods {
		if p.Spec.NodeName == "" && p.DeletionTimestamp != nil {
			errs = append(errs, gc.forceDelete(ctx, p, "terminating and unscheduled"))
			deleted[podKey(p)] = true
		}
	}
	// 3. Terminated Pods beyond the threshold, oldest first.
	if gc.threshold > 0 {
		var terminated []*corev1.Pod
		for _, p := range pods {
			if !deleted[podKey(p)] && p.DeletionTimestamp == nil &&
				(p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
				terminated = append(terminated, p)
			}
		}
		if excess := len(terminated) - gc.threshold; excess > 0 {
			slices.SortFunc(terminated, oldestFirst)
			for _, p := range terminated[:excess] {
				errs = append(errs, gc.forceDelete(ctx, p, "terminated pods beyond threshold"))
			}
		}
	}
	return errors.Join(errs...)
}

// oldestFirst orders Pods by creation, then name, as kube's
// byEvictionAndCreationTimestamp (less the eviction part).
func oldestFirst(a, b *corev1.Pod) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// nodeGone reports whether node no longer exists: absent from the cache
// and, asked live, from the API.
func (gc *Collector) nodeGone(ctx context.Context, node string) (bool, error) {
	if _, err := gc.nodeLister.Get(node); err == nil {
		return false, nil
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	_, err := gc.client.CoreV1().Nodes().Get(wctx, node, metav1.GetOptions{})
	switch {
	case err == nil:
		return false, nil
	case apierrors.IsNotFound(err):
		return true, nil
	}
	return false, fmt.Errorf("get node %s: %w", node, err)
}

// forceDelete deletes p with grace period 0, if it is still the Pod the
// cache showed; one already gone counts as deleted.
func (gc *Collector) forceDelete(ctx context.Context, p *corev1.Pod, why string) error {
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	zero := int64(0)
	err := gc.client.CoreV1().Pods(p.Namespace).Delete(wctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s: %w", podKey(p), err)
	}
	if err == nil {
		gc.log.Info("deleted pod", logKeyObject, podKey(p), logKeyReason, why)
	}
	return nil
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }
