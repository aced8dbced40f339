package persistentvolume

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/internal/localpath"
	"kiln.dev/kiln/components/internal/nodeselector"
)

// provision creates the local-path volume of pvc on node, pre-bound to
// pvc, and binds them. The volume's name is the claim's UID, so a
// provision repeated after a lost answer finds its first volume.
func (c *Controller) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass, node *corev1.Node) error {
	if volumeMode(pvc.Spec.VolumeMode) != corev1.PersistentVolumeFilesystem {
		c.event(pvc, corev1.EventTypeWarning, EventReasonProvisioningFailed, "%s provisions only volumeMode Filesystem", localpath.Provisioner)
		return nil
	}
	dir := node.Annotations[localpath.NodeDirAnnotation]
	if dir == "" || !filepath.IsAbs(dir) {
		c.event(pvc, corev1.EventTypeWarning, EventReasonProvisioningFailed,
			"node %q does not publish its storage directory (annotation %s); is its kubelet running?", node.Name, localpath.NodeDirAnnotation)
		// Retried with backoff: the kubelet writes it when it registers.
		return fmt.Errorf("node %s has no %s annotation", node.Name, localpath.NodeDirAnnotation)
	}
	pv := newVolume(pvc, sc, node, filepath.Clean(dir))
	created, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = c.client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		if err == nil && !claimRefers(created, pvc) {
			return fmt.Errorf("volume %s exists and is not this claim's", pv.Name)
		}
	} else if err == nil {
		c.event(pvc, corev1.EventTypeNormal, EventReasonProvisioningSucceeded, "Successfully provisioned volume %s", pv.Name)
	}
	if err != nil {
		return fmt.Errorf("provision volume: %w", err)
	}
	return c.bind(ctx, pvc, created)
}

// newVolume is the local-path volume of pvc on node, dir being the node's
// storage directory.
func newVolume(pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass, node *corev1.Node, dir string) *corev1.PersistentVolume {
	reclaim := corev1.PersistentVolumeReclaimDelete
	if sc.ReclaimPolicy != nil {
		reclaim = *sc.ReclaimPolicy
	}
	hostname := node.Labels[corev1.LabelHostname]
	if hostname == "" {
		hostname = node.Name
	}
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	mode := corev1.PersistentVolumeFilesystem
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        localpath.VolumeName(pvc),
			Labels:      map[string]string{localpath.NodeLabel: node.Name},
			Annotations: map[string]string{AnnProvisionedBy: localpath.Provisioner},
			Finalizers:  []string{localpath.CleanupFinalizer},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   slices.Clone(pvc.Spec.AccessModes),
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              sc.Name,
			VolumeMode:                    &mode,
			MountOptions:                  sc.MountOptions,
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname}}},
			}}}},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: localpath.VolumeDir(dir, pvc), Type: &dirOrCreate}},
		},
	}
}

// volumeFitsNode reports whether pv's required node affinity admits node:
// any term whose expressions and fields all hold, as kube's
// CheckNodeAffinity. No affinity admits every node.
func volumeFitsNode(pv *corev1.PersistentVolume, node *corev1.Node) bool {
	na := pv.Spec.NodeAffinity
	if na == nil || na.Required == nil {
		return true
	}
	return nodeselector.Matches(na.Required, node)
}
