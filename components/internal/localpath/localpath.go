// Package localpath names what the apiserver, the persistentvolume
// controller and the kubelet agree on for kiln's built-in local-path
// provisioner (k3s ships rancher's local-path-provisioner): the default
// StorageClass, the provisioner name, where each node keeps the volumes,
// and the finalizer and label by which a node's kubelet removes the
// directory of a deleted volume. It holds names only; it talks to nothing.
//
//	pv.Spec.HostPath.Path = localpath.VolumeDir(node.Annotations[localpath.NodeDirAnnotation], pvc)
package localpath

import (
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

const (
	// StorageClassName is the default StorageClass the API server creates
	// at bootstrap.
	StorageClassName = "local-path"
	// Provisioner is that class's provisioner, served by the
	// persistentvolume controller.
	Provisioner = "kiln.dev/local-path"
	// NodeDirAnnotation is set by each kubelet on its Node: the directory
	// under which that node keeps provisioned volumes (its data dir +
	// /storage).
	NodeDirAnnotation = "kiln.dev/local-path-dir"
	// NodeLabel on a provisioned PersistentVolume names the node holding
	// its directory; that node's kubelet lists and watches PVs by it, and
	// the node authorizer lets it see no others.
	NodeLabel = "kiln.dev/local-path-node"
	// CleanupFinalizer holds a provisioned PersistentVolume until the
	// kubelet of its node has removed the directory (reclaim Delete) and
	// taken the finalizer off.
	CleanupFinalizer = "kiln.dev/local-path-cleanup"
	// StorageSubdir is NodeDirAnnotation's directory under the kubelet's
	// data dir.
	StorageSubdir = "storage"
)

// VolumeName is the name of the PersistentVolume provisioned for a claim,
// as kube's external provisioners name them.
func VolumeName(pvc *corev1.PersistentVolumeClaim) string {
	return "pvc-" + string(pvc.UID)
}

// VolumeDir is where a claim's volume lives on its node: dir is the
// node's NodeDirAnnotation. The name is rancher's local-path-provisioner
// layout, so that a person can tell whose data a directory holds.
func VolumeDir(dir string, pvc *corev1.PersistentVolumeClaim) string {
	return filepath.Join(dir, VolumeName(pvc)+"_"+pvc.Namespace+"_"+pvc.Name)
}
