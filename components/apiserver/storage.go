package apiserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/internal/localpath"
)

var (
	gvrStorageClasses = gvrKey{"storage.k8s.io", "v1", "storageclasses"}
	gvrPVCs           = gvrKey{"", "v1", "persistentvolumeclaims"}
	gvrPVs            = gvrKey{"", "v1", "persistentvolumes"}
)

// Annotations marking the default StorageClass, kube's and its beta one.
const (
	annDefaultClass     = "storageclass.kubernetes.io/is-default-class"
	annBetaDefaultClass = "storageclass.beta.kubernetes.io/is-default-class"
)

// defaultStorageClass is the class bootstrap creates, as k3s ships
// local-path: volumes provisioned on the node the first pod using them
// lands on, deleted with their claim.
func defaultStorageClass() *storagev1.StorageClass {
	wait := storagev1.VolumeBindingWaitForFirstConsumer
	reclaim := corev1.PersistentVolumeReclaimDelete
	return &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: localpath.StorageClassName,
			Annotations: map[string]string{annDefaultClass: "true"}},
		Provisioner:       localpath.Provisioner,
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &wait,
	}
}

// isDefaultClass is kube's storageutil.IsDefaultAnnotation.
func isDefaultClass(m metav1.Object) bool {
	a := m.GetAnnotations()
	return a[annDefaultClass] == "true" || a[annBetaDefaultClass] == "true"
}

// admitStorageClass is kube's DefaultStorageClass admission: a claim
// created without storageClassName (nil, not "", which asks for no
// class) gets the default class, the newest if several are marked.
// Claims naming a class by the beta annotation are left alone.
func (s *Server) admitStorageClass(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.Spec.StorageClassName != nil {
		return nil
	}
	if _, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return nil
	}
	classes, err := s.listObjects(ctx, gvrStorageClasses, "")
	if err != nil {
		return fmt.Errorf("apiserver: list storage classes: %w", err)
	}
	var best *storagev1.StorageClass
	for _, o := range classes {
		sc, ok := o.(*storagev1.StorageClass)
		if !ok || !isDefaultClass(sc) {
			continue
		}
		if best == nil || sc.CreationTimestamp.After(best.CreationTimestamp.Time) ||
			sc.CreationTimestamp.Equal(&best.CreationTimestamp) && sc.Name < best.Name {
			best = sc
		}
	}
	if best != nil {
		pvc.Spec.StorageClassName = &best.Name
	}
	return nil
}
