package persistentvolume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"kiln.dev/kiln/components/controllers/worker"
)

// Keys of the one queue: claims and volumes are synced by the same
// workers, told apart by a prefix.
const (
	claimKeyPrefix  = "pvc:"
	volumeKeyPrefix = "pv:"
)

// Controller binds claims to volumes, provisions local-path volumes and
// reclaims released ones. See the package documentation.
type Controller struct {
	client  kubernetes.Interface
	log     *slog.Logger
	workers int
	// recorder is nil when Config.Events is.
	recorder record.EventRecorder

	claims  corelisters.PersistentVolumeClaimLister
	volumes corelisters.PersistentVolumeLister
	classes storagelisters.StorageClassLister
	nodes   corelisters.NodeLister

	handlers worker.Handlers
	queue    workqueue.TypedRateLimitingInterface[string]
	guard    worker.Guard
}

// New registers the informers and their handlers on cfg.Informers; it
// starts nothing.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Informers == nil {
		return nil, errors.New("persistentvolume: Config.Client and Config.Informers are required")
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("persistentvolume: Config.Workers must not be negative, got %d", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	core := cfg.Informers.Core().V1()
	pvcInformer, pvInformer := core.PersistentVolumeClaims(), core.PersistentVolumes()
	scInformer, nodeInformer := cfg.Informers.Storage().V1().StorageClasses(), core.Nodes()
	c := &Controller{
		client:  cfg.Client,
		log:     cfg.Logger.With(logKeyComponent, "persistentvolume"),
		workers: cfg.Workers,
		claims:  pvcInformer.Lister(),
		volumes: pvInformer.Lister(),
		classes: scInformer.Lister(),
		nodes:   nodeInformer.Lister(),
		queue:   worker.NewQueue("persistentvolume"),
	}
	if cfg.Events != nil {
		c.recorder = cfg.Events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent})
	}
	onClaim := func(o any) {
		if pvc := claimFrom(o); pvc != nil {
			c.queue.Add(claimKeyPrefix + pvc.Namespace + "/" + pvc.Name)
			// A deleted claim releases its volume.
			if pvc.Spec.VolumeName != "" {
				c.queue.Add(volumeKeyPrefix + pvc.Spec.VolumeName)
			}
		}
	}
	// enqueueWaiting queues the unbound claims of a class: a new class,
	// or a volume free to take, may let them go on.
	enqueueWaiting := func(class string) {
		pvcs, _ := c.claims.List(labels.Everything())
		for _, pvc := range pvcs {
			if pvc.Spec.VolumeName == "" && claimClass(pvc) == class {
				c.queue.Add(claimKeyPrefix + pvc.Namespace + "/" + pvc.Name)
			}
		}
	}
	onVolume := func(o any) {
		pv := volumeFrom(o)
		if pv == nil {
			return
		}
		c.queue.Add(volumeKeyPrefix + pv.Name)
		if ref := pv.Spec.ClaimRef; ref != nil {
			c.queue.Add(claimKeyPrefix + ref.Namespace + "/" + ref.Name)
		} else if pv.DeletionTimestamp == nil {
			enqueueWaiting(volumeClass(pv))
		}
	}
	onClass := func(o any) {
		if sc, ok := o.(*storagev1.StorageClass); ok {
			enqueueWaiting(sc.Name)
		}
	}
	if err := c.handlers.AddAll(
		worker.On{Informer: pvcInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: onClaim, UpdateFunc: func(_, o any) { onClaim(o) }, DeleteFunc: onClaim}},
		worker.On{Informer: pvInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: onVolume, UpdateFunc: func(_, o any) { onVolume(o) }, DeleteFunc: onVolume}},
		worker.On{Informer: scInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{AddFunc: onClass}},
		// Nodes only feed the lister: a claim waiting for its node's
		// storage dir is retried with backoff.
		worker.On{Informer: nodeInformer.Informer(), Handler: cache.ResourceEventHandlerFuncs{}},
	); err != nil {
		return nil, fmt.Errorf("persistentvolume: add event handler: %w", err)
	}
	return c, nil
}

// Run waits for the informers' caches, then syncs claims and volumes
// until ctx is done. It returns nil on a clean stop and ErrRunTwice when
// called again.
func (c *Controller) Run(ctx context.Context) error {
	if !c.guard.Start() {
		return ErrRunTwice
	}
	worker.RunQueue(ctx, &c.handlers, c.queue, c.workers, c.sync, c.log)
	return nil
}

// sync hands a key to the claim's or the volume's sync.
func (c *Controller) sync(ctx context.Context, key string) error {
	if k, ok := strings.CutPrefix(key, claimKeyPrefix); ok {
		ns, name, err := cache.SplitMetaNamespaceKey(k)
		if err != nil {
			return worker.Terminal(err)
		}
		return c.syncClaim(ctx, ns, name)
	}
	if name, ok := strings.CutPrefix(key, volumeKeyPrefix); ok {
		return c.syncVolume(ctx, name)
	}
	return worker.Terminal(fmt.Errorf("unknown key %q", key))
}

// event records an Event about obj when the controller has a recorder.
func (c *Controller) event(obj runtime.Object, eventType, reason, format string, args ...any) {
	if c.recorder != nil {
		c.recorder.Eventf(obj, eventType, reason, format, args...)
	}
}

func claimFrom(o any) *corev1.PersistentVolumeClaim {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	pvc, _ := o.(*corev1.PersistentVolumeClaim)
	return pvc
}

func volumeFrom(o any) *corev1.PersistentVolume {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	pv, _ := o.(*corev1.PersistentVolume)
	return pv
}

// claimClass is the class a claim asks for, the beta annotation first,
// as kube's GetPersistentVolumeClaimClass; "" means none.
func claimClass(pvc *corev1.PersistentVolumeClaim) string {
	if c, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return c
	}
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return ""
}

// volumeClass is kube's GetPersistentVolumeClass.
func volumeClass(pv *corev1.PersistentVolume) string {
	if c, ok := pv.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return c
	}
	return pv.Spec.StorageClassName
}
