package admission

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	supportedAccessModes = []corev1.PersistentVolumeAccessMode{
		corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOnce, corev1.ReadWriteOncePod,
	}
	supportedVolumeModes    = []corev1.PersistentVolumeMode{corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem}
	supportedReclaimPolicys = []corev1.PersistentVolumeReclaimPolicy{
		corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRecycle, corev1.PersistentVolumeReclaimRetain,
	}
)

func validatePersistentVolumeClaim(pvc *corev1.PersistentVolumeClaim, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&pvc.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	return append(allErrs, validatePersistentVolumeClaimSpec(&pvc.Spec, field.NewPath("spec"))...)
}

// validatePersistentVolumeClaimSpec checks a claim's spec, wherever it
// appears: in a PVC, a StatefulSet's volumeClaimTemplates or an ephemeral
// volume.
func validatePersistentVolumeClaimSpec(spec *corev1.PersistentVolumeClaimSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	modesPath := fldPath.Child("accessModes")
	if len(spec.AccessModes) == 0 {
		allErrs = append(allErrs, field.Required(modesPath, "at least 1 access mode is required"))
	}
	for _, m := range spec.AccessModes {
		if !slices.Contains(supportedAccessModes, m) {
			allErrs = append(allErrs, field.NotSupported(modesPath, m, supportedAccessModes))
		}
	}
	if slices.Contains(spec.AccessModes, corev1.ReadWriteOncePod) && len(spec.AccessModes) > 1 {
		allErrs = append(allErrs, field.Forbidden(modesPath, "may not use ReadWriteOncePod with other access modes"))
	}
	if spec.Selector != nil {
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
	}
	// kube reports the storage request at resources[storage].
	storagePath := fldPath.Child("resources").Key(string(corev1.ResourceStorage))
	if q, ok := spec.Resources.Requests[corev1.ResourceStorage]; !ok {
		allErrs = append(allErrs, field.Required(storagePath, ""))
	} else if q.Sign() <= 0 {
		allErrs = append(allErrs, field.Invalid(storagePath, q.String(), "must be greater than zero"))
	}
	if c := spec.StorageClassName; c != nil && *c != "" {
		allErrs = append(allErrs, validateDNS1123Subdomain(*c, fldPath.Child("storageClassName"))...)
	}
	if m := spec.VolumeMode; m != nil && !slices.Contains(supportedVolumeModes, *m) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("volumeMode"), *m, supportedVolumeModes))
	}
	if ds := spec.DataSource; ds != nil {
		p := fldPath.Child("dataSource")
		if ds.Name == "" {
			allErrs = append(allErrs, field.Required(p.Child("name"), ""))
		}
		if ds.Kind == "" {
			allErrs = append(allErrs, field.Required(p.Child("kind"), ""))
		}
		if (ds.APIGroup == nil || *ds.APIGroup == "") && ds.Kind != "" && ds.Kind != "PersistentVolumeClaim" {
			allErrs = append(allErrs, field.Invalid(p, ds.Kind, "must be 'PersistentVolumeClaim' when referencing the default apiGroup"))
		}
	}
	return allErrs
}

// validatePersistentVolumeClaimUpdate allows only the storage request to
// change (and volumeName to be set once, by the binder); the request may
// grow but not shrink.
func validatePersistentVolumeClaimUpdate(pvc, old *corev1.PersistentVolumeClaim) field.ErrorList {
	var allErrs field.ErrorList
	spec := pvc.Spec.DeepCopy()
	spec.Resources.Requests = old.Spec.Resources.Requests
	if old.Spec.VolumeName == "" {
		spec.VolumeName = old.Spec.VolumeName
	}
	if !apiequality.Semantic.DeepEqual(*spec, old.Spec) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec"), "spec is immutable after creation except resources.requests (changed: "+strings.Join(changedFields(*spec, old.Spec), ", ")+")"))
	}
	newSize := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	oldSize := old.Spec.Resources.Requests[corev1.ResourceStorage]
	if newSize.Cmp(oldSize) < 0 {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "resources", "requests", "storage"), "field can not be less than previous value"))
	}
	return allErrs
}

func validatePersistentVolume(pv *corev1.PersistentVolume, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&pv.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	specPath := field.NewPath("spec")
	spec := &pv.Spec
	if len(spec.AccessModes) == 0 {
		allErrs = append(allErrs, field.Required(specPath.Child("accessModes"), ""))
	}
	for _, m := range spec.AccessModes {
		if !slices.Contains(supportedAccessModes, m) {
			allErrs = append(allErrs, field.NotSupported(specPath.Child("accessModes"), m, supportedAccessModes))
		}
	}
	capPath := specPath.Child("capacity")
	if len(spec.Capacity) == 0 {
		allErrs = append(allErrs, field.Required(capPath, ""))
	} else if _, ok := spec.Capacity[corev1.ResourceStorage]; !ok || len(spec.Capacity) > 1 {
		allErrs = append(allErrs, field.NotSupported(capPath, sortedKeys(spec.Capacity), []corev1.ResourceName{corev1.ResourceStorage}))
	} else if q := spec.Capacity[corev1.ResourceStorage]; q.Sign() <= 0 {
		allErrs = append(allErrs, field.Invalid(capPath.Key(string(corev1.ResourceStorage)), q.String(), "must be greater than zero"))
	}
	if p := spec.PersistentVolumeReclaimPolicy; p != "" && !slices.Contains(supportedReclaimPolicys, p) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("persistentVolumeReclaimPolicy"), p, supportedReclaimPolicys))
	}
	if m := spec.VolumeMode; m != nil && !slices.Contains(supportedVolumeModes, *m) {
		allErrs = append(allErrs, field.NotSupported(specPath.Child("volumeMode"), *m, supportedVolumeModes))
	}
	if spec.StorageClassName != "" {
		allErrs = append(allErrs, validateDNS1123Subdomain(spec.StorageClassName, specPath.Child("storageClassName"))...)
	}
	// PersistentVolumeSource is a union of pointers, like VolumeSource.
	set := setPointerFields(&spec.PersistentVolumeSource)
	if len(set) == 0 {
		allErrs = append(allErrs, field.Required(specPath, "must specify a volume type"))
	}
	for _, name := range set[min(1, len(set)):] {
		allErrs = append(allErrs, field.Forbidden(specPath.Child(name), msgMultipleVolumeType))
	}
	if hp := spec.HostPath; hp != nil && hp.Path == "" {
		allErrs = append(allErrs, field.Required(specPath.Child("hostPath", "path"), ""))
	}
	if l := spec.Local; l != nil && l.Path == "" {
		allErrs = append(allErrs, field.Required(specPath.Child("local", "path"), ""))
	}
	return allErrs
}
