package admission

import (
	"path"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Service account token lifetimes allowed in projected volumes.
const (
	minTokenExpirationSeconds = 10 * 60
	maxTokenExpirationSeconds = 1 << 32
)

var supportedHostPathTypes = []corev1.HostPathType{
	corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory,
	corev1.HostPathFileOrCreate, corev1.HostPathFile, corev1.HostPathSocket,
	corev1.HostPathCharDev, corev1.HostPathBlockDev,
}

// validateVolumes checks a pod's volumes and returns the set of names that
// volumeMounts may refer to.
func validateVolumes(volumes []corev1.Volume, fldPath *field.Path) (map[string]bool, field.ErrorList) {
	var allErrs field.ErrorList
	names := map[string]bool{}
	for i := range volumes {
		v := &volumes[i]
		idxPath := fldPath.Index(i)
		namePath := idxPath.Child("name")
		switch {
		case v.Name == "":
			allErrs = append(allErrs, field.Required(namePath, ""))
		case names[v.Name]:
			allErrs = append(allErrs, field.Duplicate(namePath, v.Name))
		default:
			allErrs = append(allErrs, validateDNS1123Label(v.Name, namePath)...)
			names[v.Name] = true
		}
		allErrs = append(allErrs, validateVolumeSource(&v.VolumeSource, idxPath)...)
	}
	return names, allErrs
}

// setVolumeSources returns the JSON names of the members of the
// VolumeSource union that are set, in field order.
func setVolumeSources(src *corev1.VolumeSource) []string {
	return setPointerFields(src)
}

// setPointerFields returns the JSON names of the non-nil pointer fields of
// the struct that ptr points to. The volume source unions are structs of
// pointers only, so reflection keeps them in step with new volume types.
func setPointerFields(ptr any) []string {
	v := reflect.ValueOf(ptr).Elem()
	var names []string
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			names = append(names, name)
		}
	}
	return names
}

func volumeSourceCount(src *corev1.VolumeSource) int {
	return len(setVolumeSources(src))
}

func validateVolumeSource(src *corev1.VolumeSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	set := setVolumeSources(src)
	if len(set) == 0 {
		return field.ErrorList{field.Required(fldPath, "must specify a volume type")}
	}
	for _, name := range set[1:] {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child(name), msgMultipleVolumeType))
	}

	if s := src.HostPath; s != nil {
		p := fldPath.Child("hostPath")
		if s.Path == "" {
			allErrs = append(allErrs, field.Required(p.Child("path"), ""))
		} else {
			allErrs = append(allErrs, validatePathNoBacksteps(s.Path, p.Child("path"))...)
		}
		if s.Type != nil && !slices.Contains(supportedHostPathTypes, *s.Type) {
			allErrs = append(allErrs, field.NotSupported(p.Child("type"), *s.Type, supportedHostPathTypes))
		}
	}
	if s := src.EmptyDir; s != nil && s.SizeLimit != nil && s.SizeLimit.Sign() < 0 {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("emptyDir", "sizeLimit"), "SizeLimit field must be a valid resource quantity"))
	}
	if s := src.Secret; s != nil {
		p := fldPath.Child("secret")
		if s.SecretName == "" {
			allErrs = append(allErrs, field.Required(p.Child("secretName"), ""))
		}
		allErrs = append(allErrs, validateFileMode(s.DefaultMode, p.Child("defaultMode"))...)
		allErrs = append(allErrs, validateKeyToPaths(s.Items, p.Child("items"))...)
	}
	if s := src.ConfigMap; s != nil {
		p := fldPath.Child("configMap")
		if s.Name == "" {
			allErrs = append(allErrs, field.Required(p.Child("name"), ""))
		}
		allErrs = append(allErrs, validateFileMode(s.DefaultMode, p.Child("defaultMode"))...)
		allErrs = append(allErrs, validateKeyToPaths(s.Items, p.Child("items"))...)
	}
	if s := src.PersistentVolumeClaim; s != nil && s.ClaimName == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("persistentVolumeClaim", "claimName"), ""))
	}
	if s := src.DownwardAPI; s != nil {
		p := fldPath.Child("downwardAPI")
		allErrs = append(allErrs, validateFileMode(s.DefaultMode, p.Child("defaultMode"))...)
		allErrs = append(allErrs, validateDownwardAPIFiles(s.Items, p.Child("items"))...)
	}
	if s := src.Projected; s != nil {
		allErrs = append(allErrs, validateProjectedVolume(s, fldPath.Child("projected"))...)
	}
	if s := src.NFS; s != nil {
		p := fldPath.Child("nfs")
		if s.Server == "" {
			allErrs = append(allErrs, field.Required(p.Child("server"), ""))
		}
		if s.Path == "" {
			allErrs = append(allErrs, field.Required(p.Child("path"), ""))
		} else if !path.IsAbs(s.Path) {
			allErrs = append(allErrs, field.Invalid(p.Child("path"), s.Path, "must be an absolute path"))
		}
	}
	if s := src.CSI; s != nil && s.Driver == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("csi", "driver"), ""))
	}
	if s := src.Image; s != nil {
		p := fldPath.Child("image")
		if s.Reference == "" {
			allErrs = append(allErrs, field.Required(p.Child("reference"), ""))
		}
		if s.PullPolicy != "" && !slices.Contains(supportedPullPolicies, s.PullPolicy) {
			allErrs = append(allErrs, field.NotSupported(p.Child("pullPolicy"), s.PullPolicy, supportedPullPolicies))
		}
	}
	if s := src.Ephemeral; s != nil {
		p := fldPath.Child("ephemeral", "volumeClaimTemplate")
		if s.VolumeClaimTemplate == nil {
			allErrs = append(allErrs, field.Required(p, ""))
		} else {
			allErrs = append(allErrs, validatePersistentVolumeClaimSpec(&s.VolumeClaimTemplate.Spec, p.Child("spec"))...)
		}
	}
	return allErrs
}

func validateProjectedVolume(s *corev1.ProjectedVolumeSource, fldPath *field.Path) field.ErrorList {
	allErrs := validateFileMode(s.DefaultMode, fldPath.Child("defaultMode"))
	for i, src := range s.Sources {
		srcPath := fldPath.Child("sources").Index(i)
		n := 0
		if src.Secret != nil {
			n++
			p := srcPath.Child("secret")
			if src.Secret.Name == "" {
				allErrs = append(allErrs, field.Required(p.Child("name"), ""))
			}
			allErrs = append(allErrs, validateKeyToPaths(src.Secret.Items, p.Child("items"))...)
		}
		if src.ConfigMap != nil {
			n++
			p := srcPath.Child("configMap")
			if src.ConfigMap.Name == "" {
				allErrs = append(allErrs, field.Required(p.Child("name"), ""))
			}
			allErrs = append(allErrs, validateKeyToPaths(src.ConfigMap.Items, p.Child("items"))...)
		}
		if src.DownwardAPI != nil {
			n++
			allErrs = append(allErrs, validateDownwardAPIFiles(src.DownwardAPI.Items, srcPath.Child("downwardAPI", "items"))...)
		}
		if t := src.ServiceAccountToken; t != nil {
			n++
			p := srcPath.Child("serviceAccountToken")
			if e := t.ExpirationSeconds; e != nil && *e < minTokenExpirationSeconds {
				allErrs = append(allErrs, field.Invalid(p.Child("expirationSeconds"), *e, "may not specify a duration less than 10 minutes"))
			} else if e != nil && *e > maxTokenExpirationSeconds {
				allErrs = append(allErrs, field.Invalid(p.Child("expirationSeconds"), *e, "may not specify a duration larger than 2^32 seconds"))
			}
			if t.Path == "" {
				allErrs = append(allErrs, field.Required(p.Child("path"), ""))
			}
		}
		if src.ClusterTrustBundle != nil {
			n++
		}
		if src.PodCertificate != nil {
			n++
		}
		if n > 1 {
			allErrs = append(allErrs, field.Forbidden(srcPath, "may not specify more than 1 volume type per source"))
		}
	}
	return allErrs
}

func validateKeyToPaths(items []corev1.KeyToPath, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, kp := range items {
		p := fldPath.Index(i)
		if kp.Key == "" {
			allErrs = append(allErrs, field.Required(p.Child("key"), ""))
		}
		if kp.Path == "" {
			allErrs = append(allErrs, field.Required(p.Child("path"), ""))
		}
		allErrs = append(allErrs, validateLocalNonReservedPath(kp.Path, p.Child("path"))...)
		allErrs = append(allErrs, validateFileMode(kp.Mode, p.Child("mode"))...)
	}
	return allErrs
}

func validateDownwardAPIFiles(items []corev1.DownwardAPIVolumeFile, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i := range items {
		f := &items[i]
		p := fldPath.Index(i)
		if f.Path == "" {
			allErrs = append(allErrs, field.Required(p.Child("path"), ""))
		}
		allErrs = append(allErrs, validateLocalNonReservedPath(f.Path, p.Child("path"))...)
		switch {
		case f.FieldRef != nil:
			allErrs = append(allErrs, validateObjectFieldSelector(f.FieldRef, volumeFieldPaths, p.Child("fieldRef"))...)
			if f.ResourceFieldRef != nil {
				allErrs = append(allErrs, field.Invalid(p, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
			}
		case f.ResourceFieldRef != nil:
			allErrs = append(allErrs, validateResourceFieldSelector(f.ResourceFieldRef, true, p.Child("resourceFieldRef"))...)
		default:
			allErrs = append(allErrs, field.Required(p, "one of fieldRef and resourceFieldRef is required"))
		}
		allErrs = append(allErrs, validateFileMode(f.Mode, p.Child("mode"))...)
	}
	return allErrs
}

// validateLocalDescendingPath requires a relative path that stays below
// its base directory.
func validateLocalDescendingPath(target string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if path.IsAbs(target) {
		allErrs = append(allErrs, field.Invalid(fldPath, target, "must be a relative path"))
	}
	return append(allErrs, validatePathNoBacksteps(target, fldPath)...)
}

// validateLocalNonReservedPath is validateLocalDescendingPath that also
// keeps clear of the "..data" style names the kubelet writes atomically.
func validateLocalNonReservedPath(target string, fldPath *field.Path) field.ErrorList {
	allErrs := validateLocalDescendingPath(target, fldPath)
	if strings.HasPrefix(target, "..") && !strings.HasPrefix(target, "../") {
		allErrs = append(allErrs, field.Invalid(fldPath, target, "must not start with '..'"))
	}
	return allErrs
}

func validatePathNoBacksteps(target string, fldPath *field.Path) field.ErrorList {
	if slices.Contains(strings.Split(target, "/"), "..") {
		return field.ErrorList{field.Invalid(fldPath, target, "must not contain '..'")}
	}
	return nil
}
