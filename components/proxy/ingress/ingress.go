package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// indexService indexes EndpointSlices by namespace/service.
const indexService = "kiln-ingress-service"

// Controller serves the Ingresses of its IngressClasses over HTTP and
// HTTPS and writes their status.
type Controller struct {
	client        kubernetes.Interface
	controller    string
	listen        []string // HTTP, HTTPS; "" for none
	listeners     []net.Listener
	statusIPs     []netip.Addr
	shutdownGrace time.Duration
	listenRetry   time.Duration
	minSyncPeriod time.Duration
	log           *slog.Logger

	ingresses  networkinglisters.IngressLister
	classes    networkinglisters.IngressClassLister
	services   corelisters.ServiceLister
	sliceIndex cache.Indexer
	ingressInf cache.SharedIndexInformer
	classInf   cache.SharedIndexInformer
	synced     []cache.InformerSynced
	ownFactory informers.SharedInformerFactory

	proxy       *httputil.ReverseProxy
	defaultCert *tls.Certificate
	// routes and certs are the tables requests read; the sync loop
	// swaps in new ones.
	routes atomic.Pointer[table]
	certs  atomic.Pointer[certTable]
	// secrets watches the TLS Secrets the served Ingresses name; only
	// the sync loop calls it.
	secrets *secretWatches

	// changed wakes the sync loop; it holds at most one token.
	changed chan struct{}
	// status holds the keys of Ingresses whose status may need this
	// node's addresses put in or taken out.
	status workqueue.TypedRateLimitingInterface[string]
	ready  chan struct{}

	mu      sync.Mutex
	started bool
}

// New validates cfg, applies defaults, registers the informers (and the
// EndpointSlice index by Service) and makes the fallback certificate. It
// opens no socket and starts nothing.
func New(cfg Config) (*Controller, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cert, err := selfSignedCert()
	if err != nil {
		return nil, fmt.Errorf("ingress: default certificate: %w", err)
	}
	c := &Controller{
		client:        cfg.Client,
		controller:    cfg.ControllerName,
		listen:        []string{cfg.Listen, cfg.TLSListen},
		listeners:     []net.Listener{cfg.Listener, cfg.TLSListener},
		statusIPs:     cfg.StatusIPs,
		shutdownGrace: cfg.ShutdownGrace,
		listenRetry:   cfg.ListenRetry,
		minSyncPeriod: cfg.MinSyncPeriod,
		log:           cfg.Logger.With(logComponent, "ingress"),
		defaultCert:   cert,
		changed:       make(chan struct{}, 1),
		ready:         make(chan struct{}),
		status: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "ingress-status"}),
	}
	c.routes.Store(newTable(nil))
	c.certs.Store(&certTable{})
	c.secrets = newSecretWatches(cfg.Client, c.wake, c.log)
	c.proxy = c.newReverseProxy(cfg.DialTimeout)

	f := cfg.Informers
	if f == nil {
		f = informers.NewSharedInformerFactory(cfg.Client, 0)
		c.ownFactory = f
	}
	sliceInf := f.Discovery().V1().EndpointSlices().Informer()
	if err := sliceInf.AddIndexers(cache.Indexers{indexService: sliceServiceIndex}); err != nil {
		return nil, fmt.Errorf("ingress: index endpointslices: %w", err)
	}
	c.sliceIndex = sliceInf.GetIndexer()
	svcInf := f.Core().V1().Services().Informer()
	c.services = f.Core().V1().Services().Lister()
	c.ingressInf = f.Networking().V1().Ingresses().Informer()
	c.ingresses = f.Networking().V1().Ingresses().Lister()
	c.classInf = f.Networking().V1().IngressClasses().Informer()
	c.classes = f.Networking().V1().IngressClasses().Lister()
	c.synced = []cache.InformerSynced{sliceInf.HasSynced, svcInf.HasSynced}
	return c, nil
}

func sliceServiceIndex(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
}

// Ready is closed once the caches are filled, the routes built and every
// listener served.
func (c *Controller) Ready() <-chan struct{} { return c.ready }

// wake asks the sync loop for a rebuild; it never blocks.
func (c *Controller) wake() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Run opens the listeners, waits for the caches, builds the routes and
// serves until ctx is done; Ingress, IngressClass and Secret changes are
// applied without a restart of the listeners. A listener that cannot be
// opened is logged and tried again every Config.ListenRetry; nil means a clean
// stop, ErrRunTwice a second call. Every goroutine it starts has
// exited when it returns.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return ErrRunTwice
	}
	c.started = true
	c.mu.Unlock()

	lns, err := c.open()
	for err != nil {
		// A port another server holds (a web server on :80) must not
		// stop the node: the rest runs, and the listeners come up once
		// the port is free, as k3s's ingress waits for its ports.
		c.log.Error("ingress listeners not open; retrying (ingressListen, ingressTLSListen: \"\" turns one off)", "err", err, "retry", c.listenRetry)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.listenRetry):
		}
		lns, err = c.open()
	}
	ingReg, err := c.ingressInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.handleIngress,
		UpdateFunc: c.handleIngressUpdate,
		DeleteFunc: c.handleIngress,
	})
	if err != nil {
		closeAll(lns)
		return fmt.Errorf("ingress: add ingress handler: %w", err)
	}
	defer func() { _ = c.ingressInf.RemoveEventHandler(ingReg) }()
	classReg, err := c.classInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.handleClass,
		UpdateFunc: func(_, obj any) { c.handleClass(obj) },
		DeleteFunc: c.handleClass,
	})
	if err != nil {
		closeAll(lns)
		return fmt.Errorf("ingress: add ingressclass handler: %w", err)
	}
	defer func() { _ = c.classInf.RemoveEventHandler(classReg) }()

	if c.ownFactory != nil {
		c.ownFactory.Start(ctx.Done())
		defer c.ownFactory.Shutdown()
	}
	defer c.status.ShutDown()
	c.log.Info("waiting for caches")
	if !cache.WaitForCacheSync(ctx.Done(), append([]cache.InformerSynced{ingReg.HasSynced, classReg.HasSynced}, c.synced...)...) {
		closeAll(lns)
		return nil // ctx is done before the caches synced: a clean stop
	}
	c.sync(ctx)
	defer c.secrets.stopAll()

	// baseCtx is every request's: cancelling it ends the streams and
	// upgraded connections that Shutdown does not wait for.
	baseCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	var handlers sync.WaitGroup
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		c.ServeHTTP(w, r)
	})
	errLog := slog.NewLogLogger(c.log.Handler(), slog.LevelDebug)
	var servers []*http.Server
	var wg sync.WaitGroup
	errc := make(chan error, len(lns)+1)
	for i, ln := range lns {
		if ln == nil {
			continue
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second,
			BaseContext: func(net.Listener) context.Context { return baseCtx }, ErrorLog: errLog}
		servers = append(servers, srv)
		tlsOn := i == 1
		if tlsOn {
			srv.TLSConfig = &tls.Config{GetCertificate: c.certificate, MinVersion: tls.VersionTLS12}
		}
		wg.Go(func() {
			var err error
			if tlsOn {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("ingress: serve %s: %w", ln.Addr(), err)
			}
		})
	}
	c.log.Info("serving", logAddrs, addrs(lns))
	close(c.ready)
	wg.Go(func() {
		for c.syncStatusOne(ctx) {
		}
	})

	runErr := c.loop(ctx, errc)

	// Shutdown: 1. stop accepting and let requests in flight finish for
	// the grace period; 2. cut what is left (streams, upgraded
	// connections) and wait for their handlers; 3. stop the status
	// worker and the Secret watches (deferred).
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.shutdownGrace)
	defer cancel()
	var sd sync.WaitGroup
	for _, srv := range servers {
		sd.Go(func() { _ = srv.Shutdown(sctx) })
	}
	sd.Wait()
	cancelRequests()
	for _, srv := range servers {
		_ = srv.Close()
	}
	handlers.Wait()
	c.status.ShutDown()
	wg.Wait()
	if runErr == nil {
		c.log.Info("stopped")
	}
	return runErr
}

// open opens the configured listeners: [HTTP, HTTPS], nil for none.
func (c *Controller) open() ([]net.Listener, error) {
	lns := make([]net.Listener, 2)
	for i := range lns {
		switch {
		case c.listeners[i] != nil:
			lns[i] = c.listeners[i]
		case c.listen[i] != "":
			ln, err := net.Listen("tcp", c.listen[i])
			if err != nil {
				// Close what this call opened; given listeners stay for
				// the next try.
				for j := range i {
					if c.listeners[j] == nil {
						closeAll(lns[j : j+1])
					}
				}
				return nil, fmt.Errorf("ingress: %w", err)
			}
			lns[i] = ln
		}
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		if ln != nil {
			ln.Close()
		}
	}
}

func addrs(lns []net.Listener) []string {
	var out []string
	for i, ln := range lns {
		if ln != nil {
			out = append(out, []string{"http/", "https/"}[i]+ln.Addr().String())
		}
	}
	return out
}

// loop is the single goroutine that rebuilds the routes, after each burst
// of changes. It returns nil when ctx is done, or a listener's error.
func (c *Controller) loop(ctx context.Context, errc <-chan error) error {
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-c.changed:
			debounce.Reset(c.minSyncPeriod)
		case <-debounce.C:
			c.sync(ctx)
		}
	}
}

func (c *Controller) handleIngress(obj any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.status.Add(key)
	}
	c.wake()
}

// handleIngressUpdate rebuilds the routes only when what they are made of
// changed: not for a status write, which every node makes.
func (c *Controller) handleIngressUpdate(oldObj, obj any) {
	old, ok1 := oldObj.(*networkingv1.Ingress)
	ing, ok2 := obj.(*networkingv1.Ingress)
	if ok1 && ok2 && old.Generation == ing.Generation && old.Generation != 0 &&
		maps.Equal(old.Annotations, ing.Annotations) {
		c.status.Add(ing.Namespace + "/" + ing.Name)
		return
	}
	c.handleIngress(obj)
}

// handleClass re-checks every Ingress: a class changing its controller
// or default mark changes which Ingresses are served.
func (c *Controller) handleClass(any) {
	if ings, err := c.ingresses.List(labels.Everything()); err == nil {
		for _, ing := range ings {
			c.status.Add(ing.Namespace + "/" + ing.Name)
		}
	}
	c.wake()
}

// sync builds the routes and certificates of the served Ingresses and
// swaps them in, and sets the Secret watches to the Secrets they name.
func (c *Controller) sync(ctx context.Context) {
	ings := c.served()
	c.routes.Store(newTable(ings))
	c.secrets.set(ctx, tlsSecrets(ings))
	c.certs.Store(c.newCertTable(ings))
	c.log.Debug("routes synced", logRoutes, len(ings))
}

// served returns the Ingresses of this controller's classes.
func (c *Controller) served() []*networkingv1.Ingress {
	all, err := c.ingresses.List(labels.Everything())
	if err != nil {
		return nil // a lister over a cache does not fail
	}
	cls := c.ourClasses()
	var out []*networkingv1.Ingress
	for _, ing := range all {
		if cls.serves(ing) {
			out = append(out, ing)
		}
	}
	return out
}

// ourClasses are the names of the IngressClasses of this controller and
// whether one of them is the cluster's default.
type ourClasses struct {
	names      map[string]bool
	hasDefault bool
}

func (c *Controller) ourClasses() ourClasses {
	cls := ourClasses{names: map[string]bool{}}
	list, _ := c.classes.List(labels.Everything())
	for _, ic := range list {
		if ic.Spec.Controller != c.controller {
			continue
		}
		cls.names[ic.Name] = true
		if ic.Annotations[networkingv1.AnnotationIsDefaultIngressClass] == "true" {
			cls.hasDefault = true
		}
	}
	return cls
}

// legacyClassAnnotation names an Ingress's class before ingressClassName
// existed; kube still honours it.
const legacyClassAnnotation = "kubernetes.io/ingress.class"

// serves reports whether ing is of one of the classes: by
// ingressClassName, else by the legacy annotation, else (no class at
// all) when one of them is the default class, which kube's admission
// would have set on create.
func (cls ourClasses) serves(ing *networkingv1.Ingress) bool {
	if n := ing.Spec.IngressClassName; n != nil {
		return cls.names[*n]
	}
	if n, ok := ing.Annotations[legacyClassAnnotation]; ok {
		return cls.names[n]
	}
	return cls.hasDefault
}
