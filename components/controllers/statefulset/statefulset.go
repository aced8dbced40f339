// Package statefulset runs StatefulSets as kube's StatefulSet controller
// does: Pods with stable names (NAME-0, NAME-1, ...), hostnames and
// PersistentVolumeClaims from volumeClaimTemplates, created in order and
// each only once the one before is Running and Ready (OrderedReady) or all
// at once (Parallel), removed from the highest ordinal down, and replaced
// one at a time from the highest ordinal down when the template changes
// (RollingUpdate with a partition) or only when deleted (OnDelete). Each
// template is kept as a ControllerRevision, so `kubectl rollout status`,
// `history` and `undo` work.
package statefulset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"kiln.dev/kiln/components/controllers/worker"
)

// DefaultWorkers is how many StatefulSets are synced at once.
const DefaultWorkers = 2

// EventComponent is the source of the controller's Events, as in kube.
const EventComponent = "statefulset-controller"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("statefulset: Run called twice")

// Labels every StatefulSet Pod carries, as in kube.
const (
	// LabelPodName is the Pod's own name, so a Service can select one.
	LabelPodName = appsv1.StatefulSetPodNameLabel
	// LabelPodIndex is the Pod's ordinal.
	LabelPodIndex = appsv1.PodIndexLabel
	// LabelRevision is the name of the ControllerRevision the Pod was
	// made from.
	LabelRevision = appsv1.StatefulSetRevisionLabel
)

// controllerKind is what the ownerReferences of owned objects name.
var controllerKind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Config configures the controller.
type Config struct {
	// Client creates and deletes Pods, PersistentVolumeClaims and
	// ControllerRevisions and writes StatefulSet status. Required.
	Client kubernetes.Interface
	// Informers is the shared factory the controller registers its
	// informers on; the caller starts it. Required.
	Informers informers.SharedInformerFactory
	// Events, when set, receives the controller's Events about
	// StatefulSets; nil records none.
	Events record.EventBroadcaster
	// Workers is how many StatefulSets are synced at once; zero means
	// DefaultWorkers.
	Workers int
	// Logger receives lifecycle and per-item messages; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Controller keeps the Pods of every StatefulSet.
type Controller struct {
	client   kubernetes.Interface
	log      *slog.Logger
	workers  int
	recorder record.EventRecorder

	setLister   appslisters.StatefulSetLister
	podLister   corelisters.PodLister
	revLister   appslisters.ControllerRevisionLister
	claimLister corelisters.PersistentVolumeClaimLister
	handlers    worker.Handlers
	queue       workqueue.TypedRateLimitingInterface[string]

	// now is the clock; a test seam.
	now func() time.Time

	guard worker.Guard
}

// New registers the StatefulSet, Pod, ControllerRevision and
// PersistentVolumeClaim informers and their handlers on cfg.Informers; it
// starts nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Informers == nil {
		return nil, errors.New("statefulset: Config.Client and Config.Informers are required")
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("statefulset: Config.Workers must not be negative, got %d", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	setInformer := cfg.Informers.Apps().V1().StatefulSets()
	podInformer := cfg.Informers.Core().V1().Pods()
	revInformer := cfg.Informers.Apps().V1().ControllerRevisions()
	claimInformer := cfg.Informers.Core().V1().PersistentVolumeClaims()
	c := &Controller{
		client:      cfg.Client,
		log:         cfg.Logger.With("component", "statefulset"),
		workers:     cfg.Workers,
		setLister:   setInformer.Lister(),
		podLister:   podInformer.Lister(),
		revLister:   revInformer.Lister(),
		claimLister: claimInformer.Lister(),
		queue:       worker.NewQueue("statefulset"),
		now:         time.Now,
	}
	if cfg.Events != nil {
		c.recorder = cfg.Events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent})
	}
	enqueueSet := func(o any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			c.queue.Add(key)
		}
	}
	// A Pod's or revision's change (created, Ready, gone) may let its
	// StatefulSet go on.
	enqueueOwner := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		m, ok := o.(metav1.Object)
		if !ok {
			return
		}
		if ref := metav1.GetControllerOf(m); ref != nil && ref.Kind == controllerKind.Kind && ref.APIVersion == controllerKind.GroupVersion().String() {
			c.queue.Add(m.GetNamespace() + "/" + ref.Name)
		}
	}
	if err := c.handlers.AddAll(
		worker.On{Informer: setInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: enqueueSet, UpdateFunc: func(_, o any) { enqueueSet(o) }, DeleteFunc: enqueueSet}},
		worker.On{Informer: podInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: enqueueOwner, UpdateFunc: func(_, o any) { enqueueOwner(o) }, DeleteFunc: enqueueOwner}},
		worker.On{Informer: revInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: enqueueOwner, DeleteFunc: enqueueOwner}},
		// Claims are only read from the cache; no handler is needed but
		// the informer must be registered to be started.
		worker.On{Informer: claimInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{}},
	); err != nil {
		return nil, fmt.Errorf("statefulset: add event handler: %w", err)
	}
	return c, nil
}

// Run waits for the informers' caches, then syncs StatefulSets until ctx
// is done. It returns nil on a clean stop and ErrRunTwice when called
// again.
func (c *Controller) Run(ctx context.Context) error {
	if !c.guard.Start() {
		return ErrRunTwice
	}
	worker.RunQueue(ctx, &c.handlers, c.queue, c.workers, c.sync, c.log)
	return nil
}

// event records an Event about set, unless the controller records none.
func (c *Controller) event(set *appsv1.StatefulSet, eventType, reason, format string, args ...any) {
	if c.recorder != nil {
		c.recorder.Eventf(set, eventType, reason, format, args...)
	}
}
