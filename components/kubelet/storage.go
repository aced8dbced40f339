package kubelet

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"kiln.dev/kiln/components/internal/localpath"
)

// The kubelet's half of the local-path provisioner: it follows the
// PersistentVolumes provisioned on its node (labelled with
// localpath.NodeLabel, the only ones the node authorizer shows it) and,
// when one is being deleted, removes its directory (reclaim Delete only)
// and then the localpath.CleanupFinalizer that held it. The informer's
// first list also finds volumes deleted while the kubelet was down.

// newVolumeInformer follows this node's provisioned volumes.
func (k *Kubelet) newVolumeInformer() cache.SharedIndexInformer {
	onNode := labels.SelectorFromSet(labels.Set{localpath.NodeLabel: k.cfg.NodeName}).String()
	return coreinformers.NewFilteredPersistentVolumeInformer(k.client, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = onNode })
}

// volumeCleanupLoop removes the directories of deleted volumes until ctx
// is done, retrying failures with backoff.
func (k *Kubelet) volumeCleanupLoop(ctx context.Context) {
	q := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "volume-cleanup"})
	enqueue := func(o any) {
		if pv, ok := o.(*corev1.PersistentVolume); ok && pv.DeletionTimestamp != nil && slices.Contains(pv.Finalizers, localpath.CleanupFinalizer) {
			q.Add(pv.Name)
		}
	}
	reg, err := k.volumeInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, o any) { enqueue(o) },
	})
	if err != nil {
		k.log.Warn("volume cleanup handler", logKeyError, err)
		return
	}
	defer func() { _ = k.volumeInformer.RemoveEventHandler(reg) }()
	stop := context.AfterFunc(ctx, q.ShutDown)
	defer stop()
	for {
		name, quit := q.Get()
		if quit {
			return
		}
		if err := k.cleanupVolume(ctx, name); err != nil && ctx.Err() == nil {
			k.log.Warn("removing volume directory", "volume", name, logKeyError, err)
			q.AddRateLimited(name)
		} else {
			q.Forget(name)
		}
		q.Done(name)
	}
}

// cleanupVolume removes a deleted volume's directory, then its finalizer.
// Only a directory directly under Config.StorageDir is ever removed; a
// volume pointing elsewhere (edited by hand) only loses the finalizer.
func (k *Kubelet) cleanupVolume(ctx context.Context, name string) error {
	obj, ok, err := k.volumeInformer.GetStore().GetByKey(name)
	if err != nil || !ok {
		return err
	}
	pv := obj.(*corev1.PersistentVolume)
	if pv.DeletionTimestamp == nil || !slices.Contains(pv.Finalizers, localpath.CleanupFinalizer) {
		return nil
	}
	if hp := pv.Spec.HostPath; hp != nil && pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete {
		if k.inStorageDir(hp.Path) {
			if err := removePodDir(hp.Path); err != nil {
				return fmt.Errorf("remove %s: %w", hp.Path, err)
			}
			k.log.Info("removed volume directory", "volume", pv.Name, "path", hp.Path)
		} else {
			k.log.Warn("volume directory outside the storage dir left in place", "volume", pv.Name, "path", hp.Path)
		}
	}
	pv = pv.DeepCopy()
	pv.Finalizers = slices.DeleteFunc(pv.Finalizers, func(f string) bool { return f == localpath.CleanupFinalizer })
	_, err = k.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
