package dashboard

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	toolscache "k8s.io/client-go/tools/cache"

	"kiln.dev/kiln/reconcile"
)

// Index names of the informer caches.
const (
	indexNode     = "node"     // pods by spec.nodeName
	indexOwner    = "owner"    // objects by their controller's UID
	indexInvolved = "involved" // events by involvedObject kind/namespace/name
	indexService  = "service"  // EndpointSlices by namespace/service
)

// Annotations that hold a whole copy of an object: dropped from the
// caches (memory) and from a Secret's YAML (they would carry its values).
const annotationKubectlLastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// Group kinds the typed informers cover; every other kind a Source
// manages gets a metadata-only dynamic informer.
var (
	gkPod         = schema.GroupKind{Kind: "Pod"}
	gkNode        = schema.GroupKind{Kind: "Node"}
	gkService     = schema.GroupKind{Kind: "Service"}
	gkNamespace   = schema.GroupKind{Kind: "Namespace"}
	gkSecret      = schema.GroupKind{Kind: "Secret"}
	gkDeployment  = schema.GroupKind{Group: "apps", Kind: "Deployment"}
	gkReplicaSet  = schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}
	gkStatefulSet = schema.GroupKind{Group: "apps", Kind: "StatefulSet"}
	gkDaemonSet   = schema.GroupKind{Group: "apps", Kind: "DaemonSet"}
	gkJob         = schema.GroupKind{Group: "batch", Kind: "Job"}
)

// cache holds every informer the dashboard reads. It is filled in New
// (informers registered, not started) and run by run.
type cache struct {
	log      *slog.Logger
	factory  informers.SharedInformerFactory
	srcFact  dynamicinformer.DynamicSharedInformerFactory
	manFact  dynamicinformer.DynamicSharedInformerFactory
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	onChange func()
	// onSource and onPod see every Source and pod (the metrics).
	onSource func(*reconcile.Source)
	onPod    func(*corev1.Pod)
	onDelete func(metav1.Object)

	pods, nodes, services, namespaces, events, slices  toolscache.SharedIndexInformer
	deployments, replicasets, statefulsets, daemonsets toolscache.SharedIndexInformer
	jobs, sources                                      toolscache.SharedIndexInformer
	// typed is the informer of each group kind above.
	typed map[schema.GroupKind]toolscache.SharedIndexInformer

	// kick asks the managed-kinds loop to look at the inventories again.
	kick   chan struct{}
	synced atomic.Bool
	// ready is closed once the informers have synced.
	ready chan struct{}

	mu sync.Mutex
	// mapperReset is when discovery was last read again.
	mapperReset time.Time
	// managed are the informers of the other managed kinds, started as
	// inventories name them.
	managed map[schema.GroupKind]*managedKind
}

// managedKind is the informer of one kind only Sources' inventories name.
type managedKind struct {
	gvr      schema.GroupVersionResource
	informer toolscache.SharedIndexInformer
	// err is why the kind has no informer (not served by the API), as of
	// at.
	err error
	at  time.Time
}

func newCache(client kubernetes.Interface, dyn dynamic.Interface, log *slog.Logger) (*cache, error) {
	c := &cache{
		log:     log,
		factory: informers.NewSharedInformerFactory(client, 0),
		srcFact: dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0),
		// Only labelled objects: a managed kind's informer must not hold
		// every ConfigMap of the cluster.
		manFact: dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, metav1.NamespaceAll,
			func(o *metav1.ListOptions) { o.LabelSelector = reconcile.LabelSource }),
		mapper:  restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery())),
		kick:    make(chan struct{}, 1),
		ready:   make(chan struct{}),
		managed: map[schema.GroupKind]*managedKind{},
	}
	f := c.factory
	c.pods = f.Core().V1().Pods().Informer()
	c.nodes = f.Core().V1().Nodes().Informer()
	c.services = f.Core().V1().Services().Informer()
	c.namespaces = f.Core().V1().Namespaces().Informer()
	c.events = f.Core().V1().Events().Informer()
	c.slices = f.Discovery().V1().EndpointSlices().Informer()
	c.deployments = f.Apps().V1().Deployments().Informer()
	c.replicasets = f.Apps().V1().ReplicaSets().Informer()
	c.statefulsets = f.Apps().V1().StatefulSets().Informer()
	c.daemonsets = f.Apps().V1().DaemonSets().Informer()
	c.jobs = f.Batch().V1().Jobs().Informer()
	c.sources = c.srcFact.ForResource(reconcile.SourceGVR).Informer()
	c.typed = map[schema.GroupKind]toolscache.SharedIndexInformer{
		gkPod: c.pods, gkNode: c.nodes, gkService: c.services, gkNamespace: c.namespaces,
		gkDeployment: c.deployments, gkReplicaSet: c.replicasets, gkStatefulSet: c.statefulsets,
		gkDaemonSet: c.daemonsets, gkJob: c.jobs,
	}

	indexers := []struct {
		inf toolscache.SharedIndexInformer
		idx toolscache.Indexers
	}{
		{c.pods, toolscache.Indexers{indexNode: podNodeIndex, indexOwner: ownerIndex}},
		{c.replicasets, toolscache.Indexers{indexOwner: ownerIndex}},
		{c.jobs, toolscache.Indexers{indexOwner: ownerIndex}},
		{c.events, toolscache.Indexers{indexInvolved: involvedIndex}},
		{c.slices, toolscache.Indexers{indexService: serviceIndex}},
	}
	for _, x := range indexers {
		if err := x.inf.AddIndexers(x.idx); err != nil {
			return nil, fmt.Errorf("dashboard: indexers: %w", err)
		}
	}
	for _, inf := range []toolscache.SharedIndexInformer{c.pods, c.nodes, c.services, c.namespaces, c.events, c.slices,
		c.deployments, c.replicasets, c.statefulsets, c.daemonsets, c.jobs} {
		if err := inf.SetTransform(trimObject); err != nil {
			return nil, fmt.Errorf("dashboard: transform: %w", err)
		}
		if _, err := inf.AddEventHandler(c.handler(nil)); err != nil {
			return nil, fmt.Errorf("dashboard: handler: %w", err)
		}
	}
	if err := c.sources.SetTransform(toSource); err != nil {
		return nil, fmt.Errorf("dashboard: transform: %w", err)
	}
	if _, err := c.sources.AddEventHandler(c.handler(func(o any) {
		if s, ok := o.(*reconcile.Source); ok && c.onSource != nil {
			c.onSource(s)
		}
		select {
		case c.kick <- struct{}{}:
		default:
		}
	})); err != nil {
		return nil, fmt.Errorf("dashboard: handler: %w", err)
	}
	if _, err := c.pods.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.pod(o) },
		UpdateFunc: func(_, o any) { c.pod(o) },
	}); err != nil {
		return nil, fmt.Errorf("dashboard: handler: %w", err)
	}
	return c, nil
}

func (c *cache) pod(o any) {
	if p, ok := o.(*corev1.Pod); ok && c.onPod != nil {
		c.onPod(p)
	}
}

// handler reports every change to onChange, deletions to onDelete, and
// passes added and updated objects to also when set.
func (c *cache) handler(also func(any)) toolscache.ResourceEventHandler {
	changed := func(o any) {
		if also != nil {
			also(o)
		}
		if c.onChange != nil {
			c.onChange()
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    changed,
		UpdateFunc: func(_, o any) { changed(o) },
		DeleteFunc: func(o any) {
			if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if m, err := meta.Accessor(o); err == nil && c.onDelete != nil {
				c.onDelete(m)
			}
			changed(nil)
		},
	}
}

// run starts the informers, marks the cache synced once they are, starts
// informers for the managed kinds as inventories name them, and stops
// everything when ctx is done. It returns once every informer goroutine
// has exited.
func (c *cache) run(ctx context.Context) {
	c.factory.Start(ctx.Done())
	c.srcFact.Start(ctx.Done())
	var wg sync.WaitGroup
	wg.Go(func() {
		synced := []toolscache.InformerSynced{c.sources.HasSynced}
		for _, inf := range c.typed {
			synced = append(synced, inf.HasSynced)
		}
		synced = append(synced, c.events.HasSynced, c.slices.HasSynced)
		if toolscache.WaitForCacheSync(ctx.Done(), synced...) {
			c.synced.Store(true)
			close(c.ready)
			if c.onChange != nil {
				c.onChange()
			}
		}
	})
	wg.Go(func() { c.managedLoop(ctx) })
	<-ctx.Done()
	wg.Wait()
	c.factory.Shutdown()
	c.srcFact.Shutdown()
	c.manFact.Shutdown()
}

// managedRetry is how soon a kind the API did not know is looked up again.
const managedRetry = 30 * time.Second

// managedLoop starts an informer for each kind the inventories name that
// no typed informer covers. It runs until ctx is done.
func (c *cache) managedLoop(ctx context.Context) {
	retry := time.NewTicker(managedRetry)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-retry.C:
		}
		c.ensureManaged(ctx)
	}
}

func (c *cache) ensureManaged(ctx context.Context) {
	want := map[schema.GroupKind]string{}
	for _, o := range c.sources.GetStore().List() {
		s, ok := o.(*reconcile.Source)
		if !ok {
			continue
		}
		for _, e := range s.Status.Inventory {
			gk := schema.GroupKind{Group: e.Group, Kind: e.Kind}
			if _, typed := c.typed[gk]; !typed {
				want[gk] = e.Version
			}
		}
	}
	started := false
	for gk, version := range want {
		c.mu.Lock()
		mk := c.managed[gk]
		c.mu.Unlock()
		if mk != nil && (mk.err == nil || time.Since(mk.at) < managedRetry) {
			continue
		}
		m, err := c.mapping(gk, version)
		if err != nil {
			c.log.Debug("managed kind not watched", logKeyKind, gk.String(), logKeyErr, err)
			c.mu.Lock()
			c.managed[gk] = &managedKind{err: err, at: time.Now()}
			c.mu.Unlock()
			continue
		}
		inf := c.manFact.ForResource(m.Resource).Informer()
		// SetTransform fails only on a started informer: one shared with
		// another kind of the same resource, already set up.
		if err := inf.SetTransform(trimManaged); err == nil {
			if _, err := inf.AddEventHandler(c.handler(nil)); err != nil {
				c.log.Warn("managed kind not watched", logKeyKind, gk.String(), logKeyErr, err)
				continue
			}
		}
		c.mu.Lock()
		c.managed[gk] = &managedKind{gvr: m.Resource, informer: inf}
		c.mu.Unlock()
		c.log.Debug("watching managed kind", logKeyKind, gk.String(), logKeyResource, m.Resource.String())
		started = true
	}
	if started && ctx.Err() == nil {
		c.manFact.Start(ctx.Done())
	}
}

// mapperResetEvery bounds how often a kind discovery does not know
// makes it read discovery again: /object takes any kind from the URL.
const mapperResetEvery = 10 * time.Second

// mapping finds the resource of a kind; for a kind discovery does not
// know, it reads discovery again (a kind served since), at most once per
// mapperResetEvery. An empty version means the preferred one.
func (c *cache) mapping(gk schema.GroupKind, version string) (*meta.RESTMapping, error) {
	var versions []string
	if version != "" {
		versions = []string{version}
	}
	m, err := c.mapper.RESTMapping(gk, versions...)
	if err == nil || !meta.IsNoMatchError(err) {
		return m, err
	}
	c.mu.Lock()
	reset := time.Since(c.mapperReset) >= mapperResetEvery
	if reset {
		c.mapperReset = time.Now()
	}
	c.mu.Unlock()
	if !reset {
		return nil, err
	}
	c.mapper.Reset()
	return c.mapper.RESTMapping(gk, versions...)
}

// informerFor is the informer that holds objects of gk, nil if none.
func (c *cache) informerFor(gk schema.GroupKind) toolscache.SharedIndexInformer {
	if inf := c.typed[gk]; inf != nil {
		return inf
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if mk := c.managed[gk]; mk != nil {
		return mk.informer
	}
	return nil
}

// get returns the cached object of gk at namespace/name. known is false
// when no synced informer holds gk, so absence means nothing.
func (c *cache) get(gk schema.GroupKind, namespace, name string) (obj any, known bool) {
	inf := c.informerFor(gk)
	if inf == nil || !inf.HasSynced() {
		return nil, false
	}
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	o, exists, err := inf.GetIndexer().GetByKey(key)
	if err != nil || !exists {
		return nil, true
	}
	return o, true
}

// source returns the cached Source called name.
func (c *cache) source(name string) *reconcile.Source {
	o, ok, _ := c.sources.GetStore().GetByKey(name)
	if !ok {
		return nil
	}
	s, _ := o.(*reconcile.Source)
	return s
}

// sourceList is every cached Source, in no order.
func (c *cache) sourceList() []*reconcile.Source {
	items := c.sources.GetStore().List()
	out := make([]*reconcile.Source, 0, len(items))
	for _, o := range items {
		if s, ok := o.(*reconcile.Source); ok {
			out = append(out, s)
		}
	}
	return out
}

// byIndex lists the objects of inf under index name and value.
func byIndex[T any](inf toolscache.SharedIndexInformer, index, value string) []T {
	items, err := inf.GetIndexer().ByIndex(index, value)
	if err != nil {
		return nil
	}
	out := make([]T, 0, len(items))
	for _, o := range items {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// list lists every object of inf.
func list[T any](inf toolscache.SharedIndexInformer) []T {
	items := inf.GetStore().List()
	out := make([]T, 0, len(items))
	for _, o := range items {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

func podNodeIndex(o any) ([]string, error) {
	p, ok := o.(*corev1.Pod)
	if !ok || p.Spec.NodeName == "" {
		return nil, nil
	}
	return []string{p.Spec.NodeName}, nil
}

func ownerIndex(o any) ([]string, error) {
	m, err := meta.Accessor(o)
	if err != nil {
		return nil, nil
	}
	if ref := metav1.GetControllerOf(m); ref != nil {
		return []string{string(ref.UID)}, nil
	}
	return nil, nil
}

func involvedIndex(o any) ([]string, error) {
	e, ok := o.(*corev1.Event)
	if !ok {
		return nil, nil
	}
	return []string{involvedKey(e.InvolvedObject.Kind, e.InvolvedObject.Namespace, e.InvolvedObject.Name)}, nil
}

func involvedKey(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

func serviceIndex(o any) ([]string, error) {
	s, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	svc := s.Labels[discoveryv1.LabelServiceName]
	if svc == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + svc}, nil
}

// trimObject drops what the pages never show from a cached object:
// managed fields and whole copies of the object in annotations. It is
// idempotent, as a transform must be.
func trimObject(o any) (any, error) {
	if m, err := meta.Accessor(o); err == nil {
		m.SetManagedFields(nil)
		// Unstructured returns a copy, hence the Set.
		if a := m.GetAnnotations(); a != nil {
			delete(a, reconcile.AnnotationLastApplied)
			delete(a, annotationKubectlLastApplied)
			m.SetAnnotations(a)
		}
	}
	return o, nil
}

// trimManaged keeps a managed object of another kind without its
// payload: Secret and ConfigMap values never enter the dashboard's
// memory, and the rest (spec, status) is kept for the health rules.
func trimManaged(o any) (any, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return o, nil
	}
	for _, f := range []string{"data", "stringData", "binaryData"} {
		delete(u.Object, f)
	}
	return trimObject(u)
}

// toSource converts a Source from the dynamic informer to its Go type
// once, so the pages do not convert 1,000-entry inventories per request.
func toSource(o any) (any, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return o, nil
	}
	s := &reconcile.Source{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, s); err != nil {
		// A status the dashboard cannot read still names the Source.
		s = &reconcile.Source{}
		s.ObjectMeta = metav1.ObjectMeta{Name: u.GetName(), UID: u.GetUID(), ResourceVersion: u.GetResourceVersion(),
			CreationTimestamp: u.GetCreationTimestamp()}
		s.Status.Conditions = []metav1.Condition{{Type: reconcile.ConditionReady, Status: metav1.ConditionUnknown,
			Reason: "Unreadable", Message: "the dashboard cannot read this Source's status: " + err.Error()}}
	}
	s.ManagedFields = nil
	return s, nil
}
