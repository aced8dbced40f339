// Package serviceaccount gives every namespace what its pods' service
// accounts need, as kube's serviceaccounts-controller and
// root-ca-cert-publisher do: the ServiceAccount "default" and the
// ConfigMap "kube-root-ca.crt" holding the cluster's CA certificate
// (ca.crt), which pods use to trust the API server. Either one deleted
// or changed is put back; a namespace being deleted is left alone.
//
//	c, err := serviceaccount.New(serviceaccount.Config{Client: cs, Informers: f, RootCA: caPEM})
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
package serviceaccount

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"kiln.dev/kiln/components/controllers/worker"
)

// Names, as in Kubernetes.
const (
	DefaultServiceAccount = "default"
	RootCAConfigMap       = "kube-root-ca.crt"
	RootCAKey             = "ca.crt"
	descriptionKey        = "kubernetes.io/description"
	rootCADescription     = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Retry bounds of a namespace whose sync failed.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 30 * time.Second
	// writeTimeout bounds each API call.
	writeTimeout = 30 * time.Second
)

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("serviceaccount: Run called twice")

// Config configures the controller.
type Config struct {
	// Client writes ServiceAccounts and ConfigMaps. Required.
	Client kubernetes.Interface
	// Informers is the shared factory the controller registers its
	// Namespace, ServiceAccount and ConfigMap informers on; the caller
	// starts it. Required.
	Informers informers.SharedInformerFactory
	// RootCA is the PEM the kube-root-ca.crt ConfigMaps hold; empty
	// means no such ConfigMaps.
	RootCA []byte
	// Logger receives per-namespace failures; nil means slog.Default().
	Logger *slog.Logger
}

// Controller keeps each namespace's default ServiceAccount and root CA.
type Controller struct {
	client     kubernetes.Interface
	rootCA     string
	log        *slog.Logger
	namespaces corelisters.NamespaceLister
	accounts   corelisters.ServiceAccountLister
	configMaps corelisters.ConfigMapLister
	informers  []cache.SharedIndexInformer

	guard worker.Guard
	queue workqueue.TypedRateLimitingInterface[string]
}

// New registers the informers on cfg.Informers; it starts nothing.
func New(cfg Config) (*Controller, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("serviceaccount: Config.Client is required")
	case cfg.Informers == nil:
		return nil, errors.New("serviceaccount: Config.Informers is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	core := cfg.Informers.Core().V1()
	c := &Controller{
		client:     cfg.Client,
		rootCA:     string(cfg.RootCA),
		log:        cfg.Logger.With("component", "serviceaccount-controller"),
		namespaces: core.Namespaces().Lister(),
		accounts:   core.ServiceAccounts().Lister(),
		informers:  []cache.SharedIndexInformer{core.Namespaces().Informer(), core.ServiceAccounts().Informer()},
	}
	if c.rootCA != "" {
		c.configMaps = core.ConfigMaps().Lister()
		c.informers = append(c.informers, core.ConfigMaps().Informer())
	}
	return c, nil
}

// Run syncs namespaces until ctx is done, then returns nil once every
// goroutine it started has exited.
func (c *Controller) Run(ctx context.Context) error {
	if !c.guard.Start() {
		return ErrRunTwice
	}

	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](minRetry, maxRetry),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "serviceaccount"})
	defer c.queue.ShutDown()

	// A namespace is synced when it appears or changes, and when one of
	// the two objects it should hold is deleted or changed.
	handlers := []cache.ResourceEventHandler{
		cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.enqueue(obj, "") },
			UpdateFunc: func(_, obj any) { c.enqueue(obj, "") },
		},
		c.ownedHandler(DefaultServiceAccount),
		c.ownedHandler(RootCAConfigMap),
	}
	var synced []cache.InformerSynced
	for i, inf := range c.informers {
		reg, err := inf.AddEventHandler(handlers[i])
		switch {
		case err != nil && ctx.Err() != nil:
			return nil // the factory stopped with ctx before Run got here
		case err != nil:
			return fmt.Errorf("serviceaccount: add event handler: %w", err)
		}
		defer func() { _ = inf.RemoveEventHandler(reg) }()
		synced = append(synced, reg.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for c.processNext(ctx) {
		}
	})
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// ownedHandler queues the namespace of a changed or deleted object named
// name.
func (c *Controller) ownedHandler(name string) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) { c.enqueue(obj, name) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			c.enqueue(obj, name)
		},
	}
}

// enqueue queues obj's namespace (obj itself for a Namespace); name, when
// set, must be obj's name.
func (c *Controller) enqueue(obj any, name string) {
	m, ok := obj.(metav1.Object)
	if !ok || name != "" && m.GetName() != name {
		return
	}
	ns := m.GetNamespace()
	if _, isNS := obj.(*corev1.Namespace); isNS {
		ns = m.GetName()
	}
	c.queue.Add(ns)
}

func (c *Controller) processNext(ctx context.Context) bool {
	ns, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(ns)
	switch err := c.sync(ctx, ns); {
	case err == nil:
		c.queue.Forget(ns)
	case ctx.Err() != nil:
	default:
		c.log.Warn("sync namespace", "namespace", ns, "err", err)
		c.queue.AddRateLimited(ns)
	}
	return true
}

// sync creates what namespace ns lacks and restores what was changed.
func (c *Controller) sync(ctx context.Context, ns string) error {
	n, err := c.namespaces.Get(ns)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if n.DeletionTimestamp != nil || n.Status.Phase == corev1.NamespaceTerminating {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if _, err := c.accounts.ServiceAccounts(ns).Get(DefaultServiceAccount); apierrors.IsNotFound(err) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: DefaultServiceAccount, Namespace: ns}}
		if _, err := c.client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !ignorable(err) {
			return fmt.Errorf("create serviceaccount %s/%s: %w", ns, DefaultServiceAccount, err)
		}
	} else if err != nil {
		return err
	}
	if c.rootCA == "" {
		return nil
	}
	data := map[string]string{RootCAKey: c.rootCA}
	cm, err := c.configMaps.ConfigMaps(ns).Get(RootCAConfigMap)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootCAConfigMap, Namespace: ns, Annotations: map[string]string{descriptionKey: rootCADescription}},
			Data:       data,
		}
		if _, err := c.client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !ignorable(err) {
			return fmt.Errorf("create configmap %s/%s: %w", ns, RootCAConfigMap, err)
		}
	case err != nil:
		return err
	case !maps.Equal(cm.Data, data) || len(cm.BinaryData) > 0:
		cm = cm.DeepCopy()
		cm.Data, cm.BinaryData = data, nil
		if _, err := c.client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("restore configmap %s/%s: %w", ns, RootCAConfigMap, err)
		}
	}
	return nil
}

// ignorable: another writer made it first, or the namespace is gone or
// began terminating and refuses new objects.
func ignorable(err error) bool {
	return apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) ||
		apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}
