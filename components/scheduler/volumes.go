package scheduler

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"

	"kiln.dev/kiln/components/internal/nodeselector"
)

// annSelectedNode tells a WaitForFirstConsumer claim's provisioner the
// node its first pod goes to, as kube-scheduler sets it.
const annSelectedNode = "volume.kubernetes.io/selected-node"

// Reasons of VolumeBinding, kube's words.
const (
	reasonVolumeNodeAffinity = "node(s) had volume node affinity conflict"
	reasonPVNotExist         = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
	reasonUnboundImmediate   = "pod has unbound immediate PersistentVolumeClaims"
	// reasonSelectedNode is kiln's: a claim waiting for its volume was
	// promised to another node, and its volume is made there (kube's
	// scheduler waits in PreBind for the volume instead, which kiln's
	// writers do not).
	reasonSelectedNode = "node(s) didn't match the node selected for a PersistentVolumeClaim"
)

// volumeListers are the scheduler's view of claims, volumes and classes.
type volumeListers struct {
	claims  corelisters.PersistentVolumeClaimLister
	volumes corelisters.PersistentVolumeLister
	classes storagelisters.StorageClassLister
}

// volumeFilter is kube's VolumeBinding for the cases kiln provisions:
// the node constraints of a pod's claims, worked out once per decision.
// Pods without claims have none and pay nothing.
type volumeFilter struct {
	// affinities are the required node affinities of the bound volumes:
	// a node must match one term of each.
	affinities [][]corev1.NodeSelectorTerm
	// pvMissing: a claim names a volume that does not exist.
	pvMissing bool
	// selected is a node an unbound claim was already promised to, ""
	// when none (or that node is gone).
	selected string
	// toSelect are the unbound WaitForFirstConsumer claims whose
	// selected-node the bind sets.
	toSelect []*corev1.PersistentVolumeClaim
}

// hasClaims reports whether a pod uses any PersistentVolumeClaim.
func hasClaims(pod *corev1.Pod) bool {
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].PersistentVolumeClaim != nil {
			return true
		}
	}
	return false
}

// newVolumeFilter is VolumeBinding's PreFilter: nil and "" for a pod
// without claims; a message when the pod cannot go anywhere (a claim
// missing or being deleted, an unbound claim that binds Immediate, its
// class missing); else the filter.
func (l *volumeListers) newVolumeFilter(snap *snapshot, pod *corev1.Pod) (*volumeFilter, string) {
	if !hasClaims(pod) {
		return nil, ""
	}
	vf := &volumeFilter{}
	for i := range pod.Spec.Volumes {
		src := pod.Spec.Volumes[i].PersistentVolumeClaim
		if src == nil {
			continue
		}
		pvc, err := l.claims.PersistentVolumeClaims(pod.Namespace).Get(src.ClaimName)
		if err != nil {
			return nil, fmt.Sprintf("persistentvolumeclaim %q not found", src.ClaimName)
		}
		if pvc.DeletionTimestamp != nil {
			return nil, fmt.Sprintf("persistentvolumeclaim %q is being deleted", src.ClaimName)
		}
		if pvc.Spec.VolumeName != "" {
			pv, err := l.volumes.Get(pvc.Spec.VolumeName)
			if err != nil {
				vf.pvMissing = true
				continue
			}
			if na := pv.Spec.NodeAffinity; na != nil && na.Required != nil {
				vf.affinities = append(vf.affinities, na.Required.NodeSelectorTerms)
			}
			continue
		}
		if msg := l.checkUnbound(pvc); msg != "" {
			return nil, msg
		}
		if n := pvc.Annotations[annSelectedNode]; n != "" {
			if _, ok := snap.index[n]; ok {
				vf.selected = n
			}
		}
		vf.toSelect = append(vf.toSelect, pvc)
	}
	return vf, ""
}

// checkUnbound is the PreFilter of an unbound claim: only a class that
// waits for the first consumer lets the pod be placed before its volume
// exists.
func (l *volumeListers) checkUnbound(pvc *corev1.PersistentVolumeClaim) string {
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	if c, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		class = c
	}
	if class == "" {
		return reasonUnboundImmediate
	}
	sc, err := l.classes.Get(class)
	if err != nil {
		return fmt.Sprintf("storageclass.storage.k8s.io %q not found", class)
	}
	if sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
		return reasonUnboundImmediate
	}
	return ""
}

// filter is VolumeBinding's Filter on one node.
func (vf *volumeFilter) filter(node *corev1.Node) *status {
	if vf.pvMissing {
		return reject(pluginVolumeBinding, reasonPVNotExist)
	}
	for _, terms := range vf.affinities {
		ok := false
		for i := range terms {
			if nodeselector.TermMatches(&terms[i], node) {
				ok = true
				break
			}
		}
		if !ok {
			return reject(pluginVolumeBinding, reasonVolumeNodeAffinity)
		}
	}
	if vf.selected != "" && vf.selected != node.Name {
		return reject(pluginVolumeBinding, reasonSelectedNode)
	}
	return nil
}

// selectNode is VolumeBinding's PreBind for kiln: it sets selected-node on
// each unbound WaitForFirstConsumer claim of the pod, which is what the
// provisioner waits for. A claim bound or gone meanwhile is skipped.
func (s *Scheduler) selectNode(ctx context.Context, claims []*corev1.PersistentVolumeClaim, node string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{annSelectedNode: node}}})
	if err != nil {
		return err
	}
	for _, pvc := range claims {
		if pvc.Annotations[annSelectedNode] == node {
			continue
		}
		_, err := s.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Patch(ctx, pvc.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("set selected node of claim %s: %w", pvc.Name, err)
		}
	}
	return nil
}

// volumesChanged moves the pods a claim, volume or class change may help.
func (s *Scheduler) volumesChanged(any) {
	s.queue.move(func(qp *queuedPod) bool { return qp.plugins&pluginVolumeBinding != 0 })
}
