package printers

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRow_namespaces(t *testing.T) {
	runRows(t, "", "namespaces", []rowCase{
		{
			name: "active",
			obj:  &corev1.Namespace{ObjectMeta: objMeta("team-a"), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}},
			want: []interface{}{"team-a", "Active", "5m"},
		},
		{
			name: "terminating, old",
			obj: &corev1.Namespace{
				ObjectMeta: metav1.ObjectMeta{Name: "old", CreationTimestamp: ago(400 * 24 * time.Hour)},
				Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
			},
			want: []interface{}{"old", "Terminating", "400d"},
		},
	})
}

func TestRow_configMaps(t *testing.T) {
	runRows(t, "", "configmaps", []rowCase{
		{
			name: "data and binary data",
			obj: &corev1.ConfigMap{
				ObjectMeta: objMeta("web-config"),
				Data:       map[string]string{"a": "1", "b": "2"},
				BinaryData: map[string][]byte{"c": {0}},
			},
			want: []interface{}{"web-config", int64(3), "5m"},
		},
	})
}

func TestRow_secrets(t *testing.T) {
	runRows(t, "", "secrets", []rowCase{
		{
			name: "tls",
			obj: &corev1.Secret{
				ObjectMeta: objMeta("web-tls"),
				Type:       corev1.SecretTypeTLS,
				Data:       map[string][]byte{"tls.crt": nil, "tls.key": nil},
			},
			want: []interface{}{"web-tls", "kubernetes.io/tls", int64(2), "5m"},
		},
	})
}

func TestRow_serviceAccounts(t *testing.T) {
	runRows(t, "", "serviceaccounts", []rowCase{
		{
			name: "default",
			obj:  &corev1.ServiceAccount{ObjectMeta: objMeta("default")},
			want: []interface{}{"default", int64(0), "5m"},
		},
	})
}

func TestRow_persistentVolumeClaims(t *testing.T) {
	runRows(t, "", "persistentvolumeclaims", []rowCase{
		{
			name: "pending",
			obj: &corev1.PersistentVolumeClaim{
				ObjectMeta: objMeta("data"),
				Spec:       corev1.PersistentVolumeClaimSpec{StorageClassName: ptr("local-path")},
				Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
			},
			want: []interface{}{"data", "Pending", "", "", "", "local-path", "<unset>", "5m", "<unset>"},
		},
		{
			name: "bound, beta class annotation, terminating",
			obj: &corev1.PersistentVolumeClaim{
				ObjectMeta: metav1.ObjectMeta{
					Name: "data", CreationTimestamp: ago(5 * time.Minute), DeletionTimestamp: agoPtr(time.Second),
					Annotations: map[string]string{corev1.BetaStorageClassAnnotation: "fast"},
				},
				Spec: corev1.PersistentVolumeClaimSpec{
					StorageClassName: ptr("local-path"), VolumeName: "pv-1",
					VolumeMode: ptr(corev1.PersistentVolumeFilesystem), VolumeAttributesClassName: ptr("gold"),
				},
				Status: corev1.PersistentVolumeClaimStatus{
					Phase:       corev1.ClaimBound,
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod, corev1.ReadWriteOnce, corev1.ReadWriteOnce},
					Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
				},
			},
			want: []interface{}{"data", "Terminating", "pv-1", "10Gi", "RWO,RWOP", "fast", "gold", "5m", "Filesystem"},
		},
	})
}

func TestRow_leases(t *testing.T) {
	runRows(t, "coordination.k8s.io", "leases", []rowCase{
		{
			name: "held",
			obj:  &coordinationv1.Lease{ObjectMeta: objMeta("node-1"), Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("node-1")}},
			want: []interface{}{"node-1", "node-1", "5m"},
		},
		{
			name: "free",
			obj:  &coordinationv1.Lease{ObjectMeta: objMeta("kiln-scheduler")},
			want: []interface{}{"kiln-scheduler", "", "5m"},
		},
	})
}
