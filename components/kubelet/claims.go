package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/internal/localpath"
)

// claimPendingError is a PersistentVolumeClaim volume that cannot be
// mounted yet: its claim is missing or not bound. The pod waits
// (ContainerCreating, with this message) and the worker retries.
type claimPendingError struct{ msg string }

func (e *claimPendingError) Error() string { return e.msg }

// claimPath resolves a persistentVolumeClaim volume to the host directory
// of its volume: claim, then volume, both through the API (the node
// authorizer lets a node read the claims of its pods and their volumes).
// kiln mounts hostPath and local volumes, which are directories on this
// node; a hostPath DirectoryOrCreate is created, world-writable under
// Config.StorageDir as rancher's local-path-provisioner makes them.
func (k *Kubelet) claimPath(ctx context.Context, namespace, claim string) (string, error) {
	pvc, err := k.client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, claim, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", &claimPendingError{fmt.Sprintf("persistentvolumeclaim %q not found", claim)}
	}
	if err != nil {
		return "", err
	}
	if pvc.DeletionTimestamp != nil {
		return "", &claimPendingError{fmt.Sprintf("persistentvolumeclaim %q is being deleted", claim)}
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		return "", &claimPendingError{fmt.Sprintf("waiting for persistentvolumeclaim %q to be bound", claim)}
	}
	pv, err := k.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentvolume %q of claim %q: %w", pvc.Spec.VolumeName, claim, err)
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.UID != pvc.UID {
		return "", &claimPendingError{fmt.Sprintf("persistentvolume %q is not bound to claim %q", pv.Name, claim)}
	}
	if n, ok := pv.Labels[localpath.NodeLabel]; ok && n != k.cfg.NodeName {
		return "", fmt.Errorf("persistentvolume %q is on node %q, not this one", pv.Name, n)
	}
	switch src := pv.Spec.PersistentVolumeSource; {
	case src.HostPath != nil:
		_, statErr := os.Stat(src.HostPath.Path)
		if err := checkHostPath(src.HostPath); err != nil {
			return "", fmt.Errorf("persistentvolume %q: %w", pv.Name, err)
		}
		// A directory just made for a provisioned volume is for any user
		// the pod runs as.
		if errors.Is(statErr, os.ErrNotExist) && k.inStorageDir(src.HostPath.Path) {
			if err := os.Chmod(src.HostPath.Path, 0o777); err != nil {
				return "", err
			}
		}
		return src.HostPath.Path, nil
	case src.Local != nil:
		fi, err := os.Stat(src.Local.Path)
		if err != nil || !fi.IsDir() {
			return "", fmt.Errorf("persistentvolume %q: local path %s is not a directory", pv.Name, src.Local.Path)
		}
		return src.Local.Path, nil
	}
	return "", fmt.Errorf("persistentvolume %q: kiln mounts hostPath and local volumes only", pv.Name)
}

// inStorageDir reports whether path is a volume's directory directly
// under Config.StorageDir: the only paths the kubelet ever removes.
func (k *Kubelet) inStorageDir(path string) bool {
	path = filepath.Clean(path)
	return filepath.Dir(path) == filepath.Clean(k.cfg.StorageDir) && strings.HasPrefix(filepath.Base(path), "pvc-")
}
