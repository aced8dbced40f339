package routes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Routes keeps this host's routes to other Nodes' pod CIDRs.
type Routes struct {
	cfg Config
	log *slog.Logger

	// kick has room for one pending sync: handlers never block, and
	// changes that arrive during a sync are covered by the next one.
	kick chan struct{}

	// skipped is the reason each Node got no route, as last logged; owned
	// by the Run goroutine, so a skip is logged when it starts or changes,
	// not at every sync.
	skipped map[string]string

	mu      sync.Mutex
	started bool
}

// New validates cfg and applies defaults; it starts nothing.
func New(cfg Config) (*Routes, error) {
	if cfg.Client == nil {
		return nil, errors.New("routes: Config.Client is required")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("routes: Config.NodeName is required")
	}
	if cfg.ResyncPeriod < 0 {
		return nil, fmt.Errorf("routes: Config.ResyncPeriod %s is negative", cfg.ResyncPeriod)
	}
	if cfg.ResyncPeriod == 0 {
		cfg.ResyncPeriod = DefaultResyncPeriod
	}
	if cfg.IPBinary == "" {
		cfg.IPBinary = DefaultIPBinary
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Routes{
		cfg:     cfg,
		log:     cfg.Logger.With(logKeyComponent, "routes"),
		kick:    make(chan struct{}, 1),
		skipped: map[string]string{},
	}, nil
}

// Run watches Nodes and keeps the routes until ctx is done, then returns
// nil and leaves the routes in place: pods keep reaching other nodes while
// the agent restarts. A failed sync is logged and retried with backoff;
// Run returns an error only when called twice.
func (r *Routes) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return ErrRunTwice
	}
	r.started = true
	r.mu.Unlock()

	// Only Nodes, only the fields routes are made of, and no resync of the
	// informer: the agent's memory budget is small (a Node's status
	// carries its image list), and the periodic check below is of the
	// kernel, not the cache.
	factory := informers.NewSharedInformerFactoryWithOptions(r.cfg.Client, 0, informers.WithTransform(slimNode))
	inf := factory.Core().V1().Nodes()
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { r.enqueue() },
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*corev1.Node)
			c, ok2 := cur.(*corev1.Node)
			// Status heartbeats change nothing routed.
			if ok1 && ok2 && o.Spec.PodCIDR == c.Spec.PodCIDR && internalIP(o) == internalIP(c) {
				return
			}
			r.enqueue()
		},
		DeleteFunc: func(any) { r.enqueue() },
	}); err != nil {
		return fmt.Errorf("routes: node handler: %w", err)
	}
	lister := inf.Lister()
	factory.Start(ctx.Done())
	// Shutdown waits for the informer's goroutines, so none outlives Run.
	defer factory.Shutdown()
	r.log.Info("starting", logKeyNode, r.cfg.NodeName)
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return nil
	}

	retry := time.Duration(0)
	timer := time.NewTimer(0) // the first sync right away
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			r.log.Info("stopped; routes left in place")
			return nil
		case <-r.kick:
		case <-timer.C:
		}
		err := r.sync(ctx, lister)
		next := r.cfg.ResyncPeriod
		if err != nil && ctx.Err() == nil {
			retry = min(max(2*retry, minRetry), maxRetry)
			next = retry
			r.log.Warn("sync failed; retrying", logKeyError, err, logKeyRetryIn, retry)
		} else {
			retry = 0
		}
		timer.Reset(next)
	}
}

func (r *Routes) enqueue() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// sync makes this host's kiln routes what the Nodes in lister want.
func (r *Routes) sync(ctx context.Context, lister corelisters.NodeLister) error {
	nodes, err := lister.List(labels.Everything())
	if err != nil {
		return err
	}
	locals, nets, err := r.addrs(ctx)
	if err != nil {
		return err
	}
	all, err := r.routes(ctx)
	if err != nil {
		return err
	}
	have := map[string]string{}    // our routes: dst to gateway
	foreign := map[string]string{} // others' routes: dst to protocol
	for _, rt := range all {
		dst := normalizeDst(rt.Dst)
		if rt.ours() {
			have[dst] = rt.Gateway
		} else {
			foreign[dst] = rt.Protocol
		}
	}

	want := map[string]string{}
	skipped := map[string]string{}
	for _, n := range nodes {
		if n.Name == r.cfg.NodeName {
			continue
		}
		dst, via, reason := r.wanted(n, locals, nets)
		if reason == "" {
			if p, ok := foreign[dst]; ok {
				reason = "pod CIDR already routed by protocol " + p
			} else if prev, ok := want[dst]; ok && prev != via {
				reason = "pod CIDR also claimed by another node"
			}
		}
		if reason != "" {
			skipped[n.Name] = reason
			if r.skipped[n.Name] != reason {
				r.log.Warn("no route to node's pods", logKeyNode, n.Name, logKeyCIDR, n.Spec.PodCIDR, logKeyReason, reason)
			}
			continue
		}
		if dst != "" {
			want[dst] = via
		}
	}
	r.skipped = skipped

	var errs []error
	for dst := range have {
		if _, ok := want[dst]; ok {
			continue
		}
		if err := r.del(ctx, dst); err != nil {
			errs = append(errs, err)
			continue
		}
		r.log.Info("route removed", logKeyCIDR, dst, logKeyGateway, have[dst])
	}
	for dst, via := range want {
		if have[dst] == via {
			continue
		}
		if err := r.replace(ctx, dst, via); err != nil {
			errs = append(errs, err)
			continue
		}
		r.log.Info("route set", logKeyCIDR, dst, logKeyGateway, via)
	}
	return errors.Join(errs...)
}

// wanted is the route n wants, as (dst, via), or the reason it gets none;
// a Node without a pod CIDR or address yet wants nothing, silently (it is
// joining, and will be synced again when it has them).
func (r *Routes) wanted(n *corev1.Node, locals []net.IP, nets []*net.IPNet) (dst, via, reason string) {
	addr := internalIP(n)
	if n.Spec.PodCIDR == "" || addr == "" {
		return "", "", ""
	}
	_, cidr, err := net.ParseCIDR(n.Spec.PodCIDR)
	if err != nil || cidr.IP.To4() == nil {
		return "", "", "pod CIDR is not an IPv4 CIDR"
	}
	gw := net.ParseIP(addr).To4()
	if gw == nil {
		return "", "", "InternalIP " + addr + " is not IPv4"
	}
	for _, l := range locals {
		if l.Equal(gw) {
			return "", "", "InternalIP " + addr + " is this host's"
		}
	}
	for _, n := range nets {
		if n.Contains(gw) {
			return cidr.String(), gw.String(), ""
		}
	}
	// host-gw routes through the peer itself, which must be on a link of
	// ours: as flannel's host-gw, no route rather than a dead one.
	return "", "", "InternalIP " + addr + " is not on a directly connected subnet"
}

// CleanupAll removes every route of kiln's protocol from the main table
// of this machine (`--cleanup-network`), without a Routes to run.
func CleanupAll(ctx context.Context, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	r := &Routes{cfg: Config{IPBinary: DefaultIPBinary}, log: log}
	return r.Cleanup(ctx)
}

// Cleanup removes every route of kiln's protocol from the main table
// (a node taken out of service); others' routes stay.
func (r *Routes) Cleanup(ctx context.Context) error {
	all, err := r.routes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	n := 0
	for _, rt := range all {
		if !rt.ours() {
			continue
		}
		if err := r.del(ctx, normalizeDst(rt.Dst)); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	r.log.Info("routes cleaned up", logKeyCount, n)
	return errors.Join(errs...)
}

// slimNode keeps of a Node what routes need: its name, pod CIDR and
// addresses.
func slimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion},
		Spec:       corev1.NodeSpec{PodCIDR: n.Spec.PodCIDR},
		Status:     corev1.NodeStatus{Addresses: n.Status.Addresses},
	}, nil
}

// internalIP is the Node's first InternalIP, or "".
func internalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// normalizeDst makes ip's route destination comparable with a CIDR's
// String: ip prints a host route without its /32.
func normalizeDst(dst string) string {
	if _, n, err := net.ParseCIDR(dst); err == nil {
		return n.String()
	}
	if ip := net.ParseIP(dst); ip != nil && ip.To4() != nil {
		return ip.String() + "/32"
	}
	return dst
}
