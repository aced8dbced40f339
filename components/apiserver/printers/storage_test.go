package printers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRow_persistentVolumes(t *testing.T) {
	runRows(t, "", "persistentvolumes", []rowCase{
		{
			name: "bound, provisioned",
			obj: &corev1.PersistentVolume{
				ObjectMeta: objMeta("pvc-1234"),
				Spec: corev1.PersistentVolumeSpec{
					Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
					AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
					ClaimRef:                      &corev1.ObjectReference{Namespace: "default", Name: "data"},
					StorageClassName:              "local-path",
					VolumeMode:                    ptr(corev1.PersistentVolumeFilesystem),
				},
				Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeBound},
			},
			want: []interface{}{"pvc-1234", "1Gi", "RWO", "Delete", "Bound", "default/data", "local-path", "<unset>", "", "5m", "Filesystem"},
		},
		{
			name: "terminating, beta class, failed reason",
			obj: &corev1.PersistentVolume{
				ObjectMeta: func() metav1.ObjectMeta {
					m := objMeta("static")
					m.Annotations = map[string]string{corev1.BetaStorageClassAnnotation: "slow"}
					m.DeletionTimestamp = ptr(metav1.Now())
					return m
				}(),
				Spec: corev1.PersistentVolumeSpec{
					Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("500Mi")},
					AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany, corev1.ReadOnlyMany},
					PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
					StorageClassName:              "fast",
					VolumeAttributesClassName:     ptr("gold"),
				},
				Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeFailed, Reason: "Oops"},
			},
			want: []interface{}{"static", "500Mi", "ROX,RWX", "Retain", "Terminating", "", "slow", "gold", "Oops", "5m", "<unset>"},
		},
	})
}

func TestRow_storageClasses(t *testing.T) {
	def := objMeta("local-path")
	def.Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
	wait := storagev1.VolumeBindingWaitForFirstConsumer
	retain := corev1.PersistentVolumeReclaimRetain
	runRows(t, "storage.k8s.io", "storageclasses", []rowCase{
		{
			name: "default, wait for first consumer",
			obj: &storagev1.StorageClass{ObjectMeta: def, Provisioner: "kiln.dev/local-path",
				ReclaimPolicy: ptr(corev1.PersistentVolumeReclaimDelete), VolumeBindingMode: &wait},
			want: []interface{}{"local-path (default)", "kiln.dev/local-path", "Delete", "WaitForFirstConsumer", false, "5m"},
		},
		{
			name: "unset fields take kube's defaults",
			obj:  &storagev1.StorageClass{ObjectMeta: objMeta("plain"), Provisioner: "example.com/x"},
			want: []interface{}{"plain", "example.com/x", "Delete", "Immediate", false, "5m"},
		},
		{
			name: "retain, expandable",
			obj: &storagev1.StorageClass{ObjectMeta: objMeta("keep"), Provisioner: "example.com/x",
				ReclaimPolicy: &retain, AllowVolumeExpansion: ptr(true)},
			want: []interface{}{"keep", "example.com/x", "Retain", "Immediate", true, "5m"},
		},
	})
}
