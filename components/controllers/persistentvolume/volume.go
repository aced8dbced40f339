package persistentvolume

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// syncVolume keeps a volume's phase and claimRef true to its claim:
// Available without one, Bound with its claim, Released once the claim is
// gone, and then reclaimed by its policy.
func (c *Controller) syncVolume(ctx context.Context, name string) error {
	pv, err := c.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pv.DeletionTimestamp != nil {
		return nil // its node's kubelet finishes it
	}
	ref := pv.Spec.ClaimRef
	if ref == nil {
		return c.setVolumePhase(ctx, pv, corev1.VolumeAvailable, "")
	}
	if ref.UID == "" {
		// Pre-bound by a person to a claim that may not exist yet: it
		// stays Available for that claim only (findVolume skips it).
		return c.setVolumePhase(ctx, pv, corev1.VolumeAvailable, "")
	}
	pvc, err := c.claims.PersistentVolumeClaims(ref.Namespace).Get(ref.Name)
	if apierrors.IsNotFound(err) {
		// The cache may lag a claim just created: releasing deletes
		// data, so ask the API before believing it gone, as kube does.
		pvc, err = c.client.CoreV1().PersistentVolumeClaims(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	}
	switch {
	case apierrors.IsNotFound(err):
		pvc = nil
	case err != nil:
		return err
	}
	if pvc != nil && pvc.UID == ref.UID {
		switch pvc.Spec.VolumeName {
		case "":
			return nil // the claim's sync finishes the binding
		case pv.Name:
			return c.setVolumePhase(ctx, pv, corev1.VolumeBound, "")
		}
		// The claim went to another volume. Only a binding this
		// controller made is undone; a person's stays, as in kube.
		if pv.Annotations[AnnBoundByController] != "yes" {
			return nil
		}
		pv = pv.DeepCopy()
		pv.Spec.ClaimRef = nil
		delete(pv.Annotations, AnnBoundByController)
		if _, err := c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("unbind volume: %w", err)
		}
		return nil // the update brings the volume back here, to Available
	}
	// The claim is gone (or was replaced by one of the same name).
	if pv.Status.Phase != corev1.VolumeReleased && pv.Status.Phase != corev1.VolumeFailed {
		if err := c.setVolumePhase(ctx, pv, corev1.VolumeReleased, ""); err != nil {
			return err
		}
	}
	switch pv.Spec.PersistentVolumeReclaimPolicy {
	case corev1.PersistentVolumeReclaimDelete:
		// The kubelet of a local-path volume's node removes its
		// directory, then the finalizer; then the volume goes.
		uid := pv.UID
		err := c.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete released volume: %w", err)
		}
	case corev1.PersistentVolumeReclaimRecycle:
		if pv.Status.Phase != corev1.VolumeFailed {
			c.event(pv, corev1.EventTypeWarning, EventReasonVolumeFailedRecycle, "kiln does not recycle volumes; delete the volume or set its reclaim policy to Retain or Delete")
			return c.setVolumePhase(ctx, pv, corev1.VolumeFailed, "Recycle is not supported")
		}
	}
	// Retain: the volume and its data stay, Released, until a person
	// deletes it.
	return nil
}

// setVolumePhase writes a volume's phase (and message), unless it says so
// already.
func (c *Controller) setVolumePhase(ctx context.Context, pv *corev1.PersistentVolume, phase corev1.PersistentVolumePhase, msg string) error {
	if pv.Status.Phase == phase && pv.Status.Message == msg {
		return nil
	}
	pv = pv.DeepCopy()
	pv.Status.Phase, pv.Status.Message, pv.Status.Reason = phase, msg, ""
	now := metav1.Now()
	pv.Status.LastPhaseTransitionTime = &now
	if _, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("volume status: %w", err)
	}
	return nil
}
