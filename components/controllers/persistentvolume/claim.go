package persistentvolume

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"kiln.dev/kiln/components/internal/localpath"
)

// syncClaim brings one claim towards Bound: it completes a binding in
// progress, binds a matching volume, or provisions one.
func (c *Controller) syncClaim(ctx context.Context, ns, name string) error {
	pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // its volume's sync releases the volume
	}
	if err != nil {
		return err
	}
	if pvc.DeletionTimestamp != nil {
		return nil
	}
	if pvc.Spec.VolumeName != "" {
		return c.syncBoundClaim(ctx, pvc)
	}
	// A volume pre-bound to this claim (by a person, or provisioned for
	// it) comes first.
	if pv := c.preBoundVolume(pvc); pv != nil {
		return c.bind(ctx, pvc, pv)
	}
	// A class that does not exist still names the static volumes the
	// claim may bind to, and binds them at once (kube's
	// IsDelayBindingMode).
	class := claimClass(pvc)
	var sc *storagev1.StorageClass
	if class != "" {
		if sc, err = c.classes.Get(class); apierrors.IsNotFound(err) {
			sc = nil
		} else if err != nil {
			return err
		}
	}
	waitForConsumer := sc != nil && sc.VolumeBindingMode != nil && *sc.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
	var node *corev1.Node
	if waitForConsumer {
		nodeName := pvc.Annotations[AnnSelectedNode]
		if nodeName == "" {
			c.event(pvc, corev1.EventTypeNormal, EventReasonWaitForFirstConsumer, "waiting for first consumer to be created before binding")
			return nil
		}
		if node, err = c.nodes.Get(nodeName); err != nil {
			return fmt.Errorf("selected node %q: %w", nodeName, err)
		}
	}
	if pv := c.findVolume(pvc, node); pv != nil {
		return c.bind(ctx, pvc, pv)
	}
	switch {
	case class == "":
		c.event(pvc, corev1.EventTypeNormal, EventReasonFailedBinding, "no persistent volumes available for this claim and no storage class is set")
		return nil
	case sc == nil:
		c.event(pvc, corev1.EventTypeWarning, EventReasonProvisioningFailed, "storageclass.storage.k8s.io %q not found", class)
		return nil // a new class enqueues its claims
	case sc.Provisioner != localpath.Provisioner:
		c.event(pvc, corev1.EventTypeNormal, EventReasonExternalProvisioning,
			"Waiting for a volume to be created either by the external provisioner '%s' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.", sc.Provisioner)
		return nil
	case !waitForConsumer:
		c.event(pvc, corev1.EventTypeWarning, EventReasonProvisioningFailed,
			"%s provisions only for storage classes with volumeBindingMode WaitForFirstConsumer: a local volume must be created on the node its first pod runs on, and class %q binds Immediate", localpath.Provisioner, sc.Name)
		return nil
	}
	return c.provision(ctx, pvc, sc, node)
}

// syncBoundClaim finishes the binding of a claim that names its volume:
// the volume's claimRef first, then both statuses.
func (c *Controller) syncBoundClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	pv, err := c.volumes.Get(pvc.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		if pvc.Status.Phase == corev1.ClaimBound {
			// kube: the volume of a bound claim is gone; the claim is Lost.
			c.event(pvc, corev1.EventTypeWarning, EventReasonClaimLost, "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
			return c.setClaimPhase(ctx, pvc, corev1.ClaimLost, nil)
		}
		return nil // a volume named in advance: wait for it to appear
	}
	if err != nil {
		return err
	}
	ref := pv.Spec.ClaimRef
	switch {
	case ref == nil:
		return c.bind(ctx, pvc, pv)
	case ref.Namespace != pvc.Namespace || ref.Name != pvc.Name || (ref.UID != "" && ref.UID != pvc.UID):
		c.event(pvc, corev1.EventTypeWarning, EventReasonFailedBinding, "volume %q already bound to a different claim.", pv.Name)
		return nil
	}
	return c.bind(ctx, pvc, pv)
}

// preBoundVolume is a volume whose claimRef names pvc but that pvc does
// not name yet: kube binds it first.
func (c *Controller) preBoundVolume(pvc *corev1.PersistentVolumeClaim) *corev1.PersistentVolume {
	// Provisioned volumes are named after the claim: one lookup.
	if pv, err := c.volumes.Get(localpath.VolumeName(pvc)); err == nil && claimRefers(pv, pvc) {
		return pv
	}
	pvs, _ := c.volumes.List(labels.Everything())
	for _, pv := range pvs {
		if pv.DeletionTimestamp == nil && claimRefers(pv, pvc) && pv.Status.Phase != corev1.VolumeReleased && pv.Status.Phase != corev1.VolumeFailed {
			return pv
		}
	}
	return nil
}

// claimRefers reports whether pv's claimRef names pvc; a claimRef without
// a UID names any claim of that name.
func claimRefers(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) bool {
	ref := pv.Spec.ClaimRef
	return ref != nil && ref.Namespace == pvc.Namespace && ref.Name == pvc.Name && (ref.UID == "" || ref.UID == pvc.UID)
}

// findVolume is kube's findBestMatchForClaim: of the unclaimed volumes
// of pvc's class, volume mode and access modes, matching its selector,
// large enough and (node set) usable on node, the smallest.
func (c *Controller) findVolume(pvc *corev1.PersistentVolumeClaim, node *corev1.Node) *corev1.PersistentVolume {
	var selector labels.Selector
	if pvc.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(pvc.Spec.Selector)
		if err != nil {
			return nil
		}
		selector = s
	}
	want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	pvs, _ := c.volumes.List(labels.Everything())
	var best *corev1.PersistentVolume
	for _, pv := range pvs {
		if pv.DeletionTimestamp != nil || pv.Spec.ClaimRef != nil ||
			pv.Status.Phase == corev1.VolumeReleased || pv.Status.Phase == corev1.VolumeFailed ||
			volumeClass(pv) != claimClass(pvc) || volumeMode(pv.Spec.VolumeMode) != volumeMode(pvc.Spec.VolumeMode) {
			continue
		}
		if !containsModes(pv.Spec.AccessModes, pvc.Spec.AccessModes) {
			continue
		}
		have := pv.Spec.Capacity[corev1.ResourceStorage]
		if have.Cmp(want) < 0 {
			continue
		}
		if selector != nil && !selector.Matches(labels.Set(pv.Labels)) {
			continue
		}
		if node != nil && !volumeFitsNode(pv, node) {
			continue
		}
		if best == nil {
			best = pv
			continue
		}
		if b := best.Spec.Capacity[corev1.ResourceStorage]; have.Cmp(b) < 0 {
			best = pv
		}
	}
	return best
}

func volumeMode(m *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
	if m == nil {
		return corev1.PersistentVolumeFilesystem
	}
	return *m
}

func containsModes(have, want []corev1.PersistentVolumeAccessMode) bool {
	for _, m := range want {
		if !slices.Contains(have, m) {
			return false
		}
	}
	return true
}

// bind is kube's bind, in its order, each step skipped when done: the
// volume's claimRef, the volume's phase, the claim's volumeName and
// annotations, the claim's phase, capacity and access modes. A crash
// between steps leaves a state the next sync continues from.
func (c *Controller) bind(ctx context.Context, pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) error {
	if pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != pvc.UID {
		pv = pv.DeepCopy()
		if pv.Spec.ClaimRef == nil {
			metav1.SetMetaDataAnnotation(&pv.ObjectMeta, AnnBoundByController, "yes")
		}
		pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
			Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion}
		var err error
		if pv, err = c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("bind volume %s: %w", pv.Name, err)
		}
	}
	if pv.Status.Phase != corev1.VolumeBound {
		pv = pv.DeepCopy()
		pv.Status.Phase, pv.Status.Reason, pv.Status.Message = corev1.VolumeBound, "", ""
		var err error
		if pv, err = c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("volume %s status: %w", pv.Name, err)
		}
	}
	if pvc.Spec.VolumeName != pv.Name || pvc.Annotations[AnnBindCompleted] != "yes" {
		pvc = pvc.DeepCopy()
		if pvc.Spec.VolumeName == "" {
			metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, AnnBoundByController, "yes")
			pvc.Spec.VolumeName = pv.Name
		}
		metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, AnnBindCompleted, "yes")
		var err error
		if pvc, err = c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, pvc, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("bind claim: %w", err)
		}
	}
	return c.setClaimPhase(ctx, pvc, corev1.ClaimBound, pv)
}

// setClaimPhase writes the claim's phase and, for Bound, the volume's
// capacity and access modes, unless it says so already.
func (c *Controller) setClaimPhase(ctx context.Context, pvc *corev1.PersistentVolumeClaim, phase corev1.PersistentVolumeClaimPhase, pv *corev1.PersistentVolume) error {
	st := pvc.Status.DeepCopy()
	st.Phase = phase
	if pv != nil {
		st.Capacity = corev1.ResourceList{corev1.ResourceStorage: pv.Spec.Capacity[corev1.ResourceStorage]}
		st.AccessModes = pv.Spec.AccessModes
	}
	if statusEqual(&pvc.Status, st) {
		return nil
	}
	pvc = pvc.DeepCopy()
	pvc.Status = *st
	if _, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("claim status: %w", err)
	}
	return nil
}

func statusEqual(a, b *corev1.PersistentVolumeClaimStatus) bool {
	qa, qb := a.Capacity[corev1.ResourceStorage], b.Capacity[corev1.ResourceStorage]
	return a.Phase == b.Phase && qa.Cmp(qb) == 0 && len(a.Capacity) == len(b.Capacity) && slices.Equal(a.AccessModes, b.AccessModes)
}
