package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// volumesDir holds a pod's volumes: volumes/<name>/.
const volumesDir = "volumes"

// defaultFileMode is the mode of configMap, secret and downwardAPI files
// without one (the API server defaults defaultMode to it too).
const defaultFileMode = 0o644

// volumePath is where a volume lives on the host: a directory under the
// pod's, a hostPath's path, or the directory of a claim's volume as
// writeVolumes resolved it into claims.
func (k *Kubelet) volumePath(pod *corev1.Pod, v *corev1.Volume, claims map[string]string) (string, error) {
	if hp := v.HostPath; hp != nil {
		return hp.Path, nil
	}
	if v.PersistentVolumeClaim != nil {
		if p, ok := claims[v.Name]; ok {
			return p, nil
		}
		return "", fmt.Errorf("volume %q: persistentvolumeclaim %q not mounted yet", v.Name, v.PersistentVolumeClaim.ClaimName)
	}
	if !supportedVolume(v) {
		return "", fmt.Errorf("volume %q: %s", v.Name, errUnsupportedVolume)
	}
	return filepath.Join(k.podDir(pod.UID), volumesDir, v.Name), nil
}

var errUnsupportedVolume = errors.New("kiln supports emptyDir, configMap, secret, hostPath, downwardAPI, projected and persistentVolumeClaim volumes only")

func supportedVolume(v *corev1.Volume) bool {
	s := v.VolumeSource
	return s.EmptyDir != nil || s.ConfigMap != nil || s.Secret != nil || s.HostPath != nil || s.DownwardAPI != nil || s.Projected != nil ||
		s.PersistentVolumeClaim != nil
}

// readOnlyVolume reports the volumes that containers only read, as
// Kubernetes mounts them; a claim is read-only when the pod says so.
func readOnlyVolume(v *corev1.Volume) bool {
	s := v.VolumeSource
	return s.ConfigMap != nil || s.Secret != nil || s.DownwardAPI != nil || s.Projected != nil ||
		s.PersistentVolumeClaim != nil && s.PersistentVolumeClaim.ReadOnly
}

// writeVolumes prepares every volume of the pod: empty directories
// created once, configMap, secret, downwardAPI and projected contents
// written (again, atomically, when they changed), hostPaths checked,
// claims resolved to their volumes' directories, recorded in claims by
// volume name.
func (k *Kubelet) writeVolumes(ctx context.Context, pod *corev1.Pod, podIP string, claims map[string]string) error {
	var errs []error
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if err := k.writeVolume(ctx, pod, v, podIP, claims); err != nil {
			errs = append(errs, fmt.Errorf("volume %q: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (k *Kubelet) writeVolume(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, podIP string, claims map[string]string) error {
	if hp := v.HostPath; hp != nil {
		return checkHostPath(hp)
	}
	if src := v.PersistentVolumeClaim; src != nil {
		p, err := k.claimPath(ctx, pod.Namespace, src.ClaimName)
		if err != nil {
			return err
		}
		claims[v.Name] = p
		return nil
	}
	if !supportedVolume(v) {
		return errUnsupportedVolume
	}
	dir, _ := k.volumePath(pod, v, nil)
	s := v.VolumeSource
	if s.EmptyDir != nil {
		if s.EmptyDir.Medium == corev1.StorageMediumMemory {
			if err := mountTmpfs(dir, s.EmptyDir.SizeLimit); err != nil {
				return err
			}
		} else if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		// Any user a container runs as may write there, as in Kubernetes;
		// MkdirAll is subject to the umask, Chmod is not.
		if err := os.Chmod(dir, 0o777); err != nil {
			return err
		}
		if gid := fsGroup(pod); gid != nil {
			// The directory only: what the containers write is theirs,
			// and inherits the group from the setgid directory.
			if err := os.Chown(dir, -1, int(*gid)); err != nil {
				return err
			}
			return os.Chmod(dir, 0o777|os.ModeSetgid)
		}
		return nil
	}
	var files map[string]file
	var err error
	switch {
	case s.ConfigMap != nil:
		files, err = k.configMapFiles(ctx, pod.Namespace, &s.ConfigMap.LocalObjectReference, s.ConfigMap.Items, s.ConfigMap.Optional, s.ConfigMap.DefaultMode)
	case s.Secret != nil:
		files, err = k.secretFiles(ctx, pod.Namespace, s.Secret.SecretName, s.Secret.Items, s.Secret.Optional, s.Secret.DefaultMode)
	case s.DownwardAPI != nil:
		files, err = k.downwardFiles(pod, s.DownwardAPI.Items, s.DownwardAPI.DefaultMode, podIP)
	case s.Projected != nil:
		files, err = k.projectedFiles(ctx, pod, s.Projected, podIP)
	}
	if err != nil {
		return err
	}
	if err := writeAtomic(dir, files); err != nil {
		return err
	}
	return setOwnership(dir, fsGroup(pod))
}

// fsGroup is the pod's securityContext.fsGroup, nil when unset.
func fsGroup(pod *corev1.Pod) *int64 {
	if pod.Spec.SecurityContext == nil {
		return nil
	}
	return pod.Spec.SecurityContext.FSGroup
}

// setOwnership gives a read-only volume's files to group gid, as
// Kubernetes's SetVolumeOwnership does for a pod's fsGroup:
// group-readable, directories setgid, so that a container running as
// another user with gid among its groups can read them.
func setOwnership(dir string, gid *int64) error {
	if gid == nil {
		return nil
	}
	const mask = os.FileMode(0o440)
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if err := os.Lchown(path, -1, int(*gid)); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m := mask
		if d.IsDir() {
			m |= os.ModeSetgid | 0o110
		}
		return os.Chmod(path, info.Mode()|m)
	})
}

// checkHostPath creates or checks a hostPath as its type says.
func checkHostPath(hp *corev1.HostPathVolumeSource) error {
	t := corev1.HostPathUnset
	if hp.Type != nil {
		t = *hp.Type
	}
	fi, err := os.Stat(hp.Path)
	switch t {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		if os.IsNotExist(err) {
			return os.MkdirAll(hp.Path, 0o755)
		}
	case corev1.HostPathFileOrCreate:
		if os.IsNotExist(err) {
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("hostPath type check failed: %s is not a %s", hp.Path, t)
	}
	ok := true
	switch t {
	case corev1.HostPathDirectory, corev1.HostPathDirectoryOrCreate:
		ok = fi.IsDir()
	case corev1.HostPathFile, corev1.HostPathFileOrCreate:
		ok = fi.Mode().IsRegular()
	case corev1.HostPathSocket:
		ok = fi.Mode()&os.ModeSocket != 0
	case corev1.HostPathCharDev:
		ok = fi.Mode()&os.ModeCharDevice != 0
	case corev1.HostPathBlockDev:
		ok = fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
	}
	if !ok {
		return fmt.Errorf("hostPath type check failed: %s is not a %s", hp.Path, t)
	}
	return nil
}

func fileMode(item *int32, def *int32) os.FileMode {
	if item != nil {
		return os.FileMode(*item) & os.ModePerm
	}
	if def != nil {
		return os.FileMode(*def) & os.ModePerm
	}
	return defaultFileMode
}

// keyFiles turns a map of keys into files: every key, or the items asked
// for (a missing key is an error unless optional).
func keyFiles(kind, ns, name string, data map[string][]byte, items []corev1.KeyToPath, opt *bool, defaultMode *int32) (map[string]file, error) {
	files := map[string]file{}
	if len(items) == 0 {
		for key, b := range data {
			files[key] = file{data: b, mode: fileMode(nil, defaultMode)}
		}
		return files, nil
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			if optional(opt) {
				continue
			}
			return nil, fmt.Errorf("%s %s/%s has no key %q", kind, ns, name, it.Key)
		}
		files[it.Path] = file{data: b, mode: fileMode(it.Mode, defaultMode)}
	}
	return files, nil
}

func (k *Kubelet) configMapFiles(ctx context.Context, ns string, ref *corev1.LocalObjectReference, items []corev1.KeyToPath, opt *bool, defaultMode *int32) (map[string]file, error) {
	cm, err := k.configMap(ctx, ns, ref.Name, nil)
	if err != nil {
		if apierrors.IsNotFound(err) && optional(opt) {
			return map[string]file{}, nil
		}
		return nil, err
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for key, v := range cm.Data {
		data[key] = []byte(v)
	}
	for key, v := range cm.BinaryData {
		data[key] = v
	}
	return keyFiles("configmap", ns, ref.Name, data, items, opt, defaultMode)
}

func (k *Kubelet) secretFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, opt *bool, defaultMode *int32) (map[string]file, error) {
	s, err := k.secret(ctx, ns, name, nil)
	if err != nil {
		if apierrors.IsNotFound(err) && optional(opt) {
			return map[string]file{}, nil
		}
		return nil, err
	}
	return keyFiles("secret", ns, name, s.Data, items, opt, defaultMode)
}

func (k *Kubelet) downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defaultMode *int32, podIP string) (map[string]file, error) {
	files := map[string]file{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = podField(pod, it.FieldRef.FieldPath, podIP, k.cfg.NodeIP)
		case it.ResourceFieldRef != nil:
			v, err = k.resourceField(pod, nil, it.ResourceFieldRef)
		}
		if err != nil {
			return nil, fmt.Errorf("downwardAPI %q: %w", it.Path, err)
		}
		files[it.Path] = file{data: []byte(v), mode: fileMode(it.Mode, defaultMode)}
	}
	return files, nil
}

// projectedFiles merges a projected volume's sources. Service account
// tokens are not issued by kiln: such a source is left out.
func (k *Kubelet) projectedFiles(ctx context.Context, pod *corev1.Pod, p *corev1.ProjectedVolumeSource, podIP string) (map[string]file, error) {
	files := map[string]file{}
	for _, src := range p.Sources {
		var part map[string]file
		var err error
		switch {
		case src.ConfigMap != nil:
			part, err = k.configMapFiles(ctx, pod.Namespace, &src.ConfigMap.LocalObjectReference, src.ConfigMap.Items, src.ConfigMap.Optional, p.DefaultMode)
		case src.Secret != nil:
			part, err = k.secretFiles(ctx, pod.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional, p.DefaultMode)
		case src.DownwardAPI != nil:
			part, err = k.downwardFiles(pod, src.DownwardAPI.Items, p.DefaultMode, podIP)
		case src.ServiceAccountToken != nil:
			part, err = k.serviceAccountTokenFiles(ctx, pod, src.ServiceAccountToken, p.DefaultMode)
		}
		if err != nil {
			return nil, err
		}
		for path, f := range part {
			files[path] = f
		}
	}
	return files, nil
}

// subPath resolves a volumeMount's subPath inside a volume's directory.
// It must stay inside the volume; in an emptyDir or hostPath a missing
// directory is created, as the kubelet does.
func subPath(volDir, sub string, v *corev1.Volume) (string, error) {
	if filepath.IsAbs(sub) || strings.HasPrefix(filepath.Clean(sub), "..") {
		return "", fmt.Errorf("subPath %q must be a relative path inside the volume", sub)
	}
	p := filepath.Join(volDir, sub)
	if v.EmptyDir != nil || v.HostPath != nil || v.PersistentVolumeClaim != nil {
		if _, err := os.Lstat(p); os.IsNotExist(err) {
			if err := os.MkdirAll(p, 0o777); err != nil {
				return "", err
			}
		}
	}
	// Atomically written volumes expose their files as symlinks into
	// ..data; bind the file itself, and refuse links leading out.
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("subPath %q: %w", sub, err)
	}
	base, err := filepath.EvalSymlinks(volDir)
	if err != nil {
		return "", err
	}
	if real != base && !strings.HasPrefix(real, base+string(filepath.Separator)) {
		return "", fmt.Errorf("subPath %q leads out of the volume", sub)
	}
	return real, nil
}
