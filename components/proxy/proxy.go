package proxy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Proxier keeps the node's Service rules in step with the API's Services
// and EndpointSlices.
type Proxier struct {
	rules         Rules
	log           *slog.Logger
	nodeName      string
	clusterDNS    netip.Addr
	clusterCIDR   netip.Prefix
	nodePortAddrs []netip.Addr
	minSyncPeriod time.Duration
	syncPeriod    time.Duration

	services      corelisters.ServiceLister
	svcInformer   cache.SharedIndexInformer
	sliceInformer cache.SharedIndexInformer
	ownFactory    informers.SharedInformerFactory // nil when the caller's factory is used

	// changed wakes the sync loop; it holds at most one token, so any
	// number of events between two syncs is one wake-up.
	changed chan struct{}
	ready   chan struct{}

	mu      sync.Mutex
	started bool
	// slices is the EndpointSlice cache by Service, kept by the event
	// handlers as kube-proxy's EndpointSliceCache is, so that building
	// one Service's rules never scans the slices of the others.
	slices map[types.NamespacedName]sliceSet
	// dirty are the Services changed since the last sync took them.
	dirty map[types.NamespacedName]struct{}
	stats Stats

	// model is the RuleSet's Services as last built; only the sync loop
	// touches it.
	model map[types.NamespacedName][]ServicePort
}

// Stats describe the syncs so far, for tests, benchmarks and status.
type Stats struct {
	// FullSyncs and PartialSyncs count successful syncs; Failures the
	// failed ones.
	FullSyncs, PartialSyncs, Failures int
	// LastFull and LastPartial are how long the last successful sync of
	// each kind took, from reading the caches to the rules being in
	// place.
	LastFull, LastPartial time.Duration
	// LastSyncAt is when the last successful sync that wrote rules
	// finished: the rules were in place from then on.
	LastSyncAt time.Time
}

// New validates cfg, applies defaults and registers the Service and
// EndpointSlice informers (on cfg.Informers, or on a factory of its own).
// It starts nothing.
func New(cfg Config) (*Proxier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Proxier{
		rules:         cfg.Rules,
		log:           cfg.Logger.With(logComponent, "proxy"),
		nodeName:      cfg.NodeName,
		clusterDNS:    cfg.ClusterDNS,
		clusterCIDR:   cfg.ClusterCIDR,
		minSyncPeriod: cfg.MinSyncPeriod,
		syncPeriod:    cfg.SyncPeriod,
		changed:       make(chan struct{}, 1),
		ready:         make(chan struct{}),
		slices:        map[types.NamespacedName]sliceSet{},
		dirty:         map[types.NamespacedName]struct{}{},
		model:         map[types.NamespacedName][]ServicePort{},
	}
	if len(cfg.NodeIPs) > 0 {
		// NodePorts on localhost too, as kube-proxy serves them with
		// route_localnet; the Rules implementation sets that sysctl.
		p.nodePortAddrs = append(slices.Clone(cfg.NodeIPs), netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	}
	f := cfg.Informers
	if f == nil {
		f = informers.NewSharedInformerFactory(cfg.Client, 0)
		p.ownFactory = f
	}
	p.services = f.Core().V1().Services().Lister()
	p.svcInformer = f.Core().V1().Services().Informer()
	p.sliceInformer = f.Discovery().V1().EndpointSlices().Informer()
	return p, nil
}

// Ready is closed once the first full sync has put every Service's rules
// in place.
func (p *Proxier) Ready() <-chan struct{} { return p.ready }

// Stats returns a copy of the sync counters.
func (p *Proxier) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Run watches Services and EndpointSlices and syncs the rules until ctx
// is done: a full sync once the caches are filled, a partial one after
// each burst of changes, and a full one every SyncPeriod and after a
// failure. A failed sync is logged and retried with backoff; Run returns
// nil on a clean stop and ErrRunTwice on a second call. It leaves the
// rules in place when it returns (Rules.Cleanup removes them).
func (p *Proxier) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return ErrRunTwice
	}
	p.started = true
	p.mu.Unlock()

	svcReg, err := p.svcInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.handleService,
		UpdateFunc: func(_, obj any) { p.handleService(obj) },
		DeleteFunc: p.handleService,
	})
	if err != nil {
		return fmt.Errorf("proxy: add service handler: %w", err)
	}
	defer func() { _ = p.svcInformer.RemoveEventHandler(svcReg) }()
	sliceReg, err := p.sliceInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.handleSlice,
		UpdateFunc: p.handleSliceUpdate,
		DeleteFunc: p.handleSliceDelete,
	})
	if err != nil {
		return fmt.Errorf("proxy: add endpointslice handler: %w", err)
	}
	defer func() { _ = p.sliceInformer.RemoveEventHandler(sliceReg) }()

	if p.ownFactory != nil {
		p.ownFactory.Start(ctx.Done())
		// Shutdown waits for the informers' goroutines, which stop with ctx.
		defer p.ownFactory.Shutdown()
	}
	p.log.Info("waiting for caches")
	if !cache.WaitForCacheSync(ctx.Done(), svcReg.HasSynced, sliceReg.HasSynced) {
		return nil // ctx is done before the caches synced: a clean stop
	}
	p.log.Info("syncing rules", logMinSyncPeriod, p.minSyncPeriod, logSyncPeriod, p.syncPeriod)
	p.loop(ctx)
	p.log.Info("stopped")
	return nil
}

// loop is the single goroutine that syncs. It owns the timers and
// p.model.
func (p *Proxier) loop(ctx context.Context) {
	// debounce is armed by the first change after a sync, retry by a
	// failure; both start stopped.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	resync := time.NewTimer(p.syncPeriod)
	defer debounce.Stop()
	defer retry.Stop()
	defer resync.Stop()

	armed := false
	needFull := true
	backoff := retryMin
	run := func(full bool) {
		armed = false
		if err := p.sync(ctx, full || needFull); err != nil {
			if ctx.Err() != nil {
				return
			}
			needFull = true
			p.log.Warn("sync failed, retrying", logError, err, logRetryIn, backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, retryMax)
			return
		}
		if full || needFull {
			resync.Reset(p.syncPeriod)
		}
		needFull = false
		backoff = retryMin
	}

	run(true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.changed:
			if !armed {
				armed = true
				debounce.Reset(p.minSyncPeriod)
			}
		case <-debounce.C:
			run(false)
		case <-retry.C:
			run(true)
		case <-resync.C:
			run(true)
		}
	}
}

// sync builds the RuleSet from the caches and writes it: all of it, or
// only the Services changed since the last sync.
func (p *Proxier) sync(ctx context.Context, full bool) error {
	start := time.Now()
	p.mu.Lock()
	dirty := p.dirty
	p.dirty = map[types.NamespacedName]struct{}{}
	p.mu.Unlock()

	var changed []types.NamespacedName
	var err error
	if full {
		err = p.syncFull(ctx)
	} else {
		changed, err = p.syncChanged(ctx, dirty)
	}
	d := time.Since(start)

	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		// The next (full) sync rebuilds everything, but keep the keys so
		// that a change is never lost.
		for k := range dirty {
			p.dirty[k] = struct{}{}
		}
		p.stats.Failures++
		return err
	}
	switch {
	case full:
		p.stats.LastSyncAt = time.Now()
		p.stats.FullSyncs++
		p.stats.LastFull = d
		p.log.Debug("synced all rules", logServices, len(p.model), logDuration, d)
		select {
		case <-p.ready:
		default:
			close(p.ready)
		}
	case len(changed) > 0:
		p.stats.LastSyncAt = time.Now()
		p.stats.PartialSyncs++
		p.stats.LastPartial = d
		p.log.Debug("synced changed services", logServices, len(changed), logDuration, d)
	}
	return nil
}

// syncFull rebuilds the whole model and writes all of it.
func (p *Proxier) syncFull(ctx context.Context) error {
	svcs, err := p.services.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	model := make(map[types.NamespacedName][]ServicePort, len(svcs))
	p.mu.Lock()
	for _, svc := range svcs {
		key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		if ports := p.servicePorts(svc, p.slices[key]); len(ports) > 0 {
			model[key] = ports
		}
	}
	p.mu.Unlock()
	p.model = model
	if err := p.rules.Sync(ctx, p.ruleSet()); err != nil {
		return fmt.Errorf("sync rules: %w", err)
	}
	return nil
}

// syncChanged rebuilds the dirty Services and writes those whose ports or
// endpoints really changed; it returns them.
func (p *Proxier) syncChanged(ctx context.Context, dirty map[types.NamespacedName]struct{}) ([]types.NamespacedName, error) {
	var changed []types.NamespacedName
	next := map[types.NamespacedName][]ServicePort{}
	p.mu.Lock()
	for key := range dirty {
		var ports []ServicePort
		svc, err := p.services.Services(key.Namespace).Get(key.Name)
		if err == nil {
			ports = p.servicePorts(svc, p.slices[key])
		}
		// A resourceVersion bump or a change of a field the rules do
		// not use writes nothing.
		if !reflect.DeepEqual(ports, p.model[key]) && (len(ports) > 0 || len(p.model[key]) > 0) {
			changed = append(changed, key)
			next[key] = ports
		}
	}
	p.mu.Unlock()
	if len(changed) == 0 {
		return nil, nil
	}
	slices.SortFunc(changed, func(a, b types.NamespacedName) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	for _, key := range changed {
		if ports := next[key]; len(ports) > 0 {
			p.model[key] = ports
		} else {
			delete(p.model, key)
		}
	}
	// After a failure the caller's next sync is full and rebuilds the
	// model from the caches, so the model need not be rolled back.
	if err := p.rules.SyncServices(ctx, p.ruleSet(), changed); err != nil {
		return nil, fmt.Errorf("sync %d services: %w", len(changed), err)
	}
	return changed, nil
}

// ruleSet wraps the model with the node-wide settings. The Rules
// implementation must not keep it (see Rules).
func (p *Proxier) ruleSet() *RuleSet {
	return &RuleSet{ClusterCIDR: p.clusterCIDR, NodePortAddresses: p.nodePortAddrs, Services: p.model}
}

// markDirty records that the Service key changed and wakes the loop.
func (p *Proxier) markDirty(keys ...types.NamespacedName) {
	p.mu.Lock()
	for _, k := range keys {
		p.dirty[k] = struct{}{}
	}
	p.mu.Unlock()
	select {
	case p.changed <- struct{}{}:
	default:
	}
}
