package admission

import (
	"fmt"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Default fills in defaults in place, as kube-apiserver's defaulters do, for
// the fields later components rely on. It is safe to call more than once and
// on both creates and updates. Unknown types and nil objects are left alone.
//
// A few steps that kube-apiserver performs outside its defaulters are folded
// in here because kiln stores v1 objects directly and has no conversion or
// strategy layer of its own:
//   - Secret.stringData is merged into data and cleared (v1 conversion).
//   - Service clusterIP and clusterIPs are made consistent (create strategy).
//   - Node podCIDR and podCIDRs are made consistent (v1 conversion).
//   - A Namespace never stored (no resourceVersion, no status phase) gets
//     the "kubernetes" finalizer (create strategy); see defaultNamespace.
//   - A Job being created whose selector is not manual gets the generated
//     controller-uid selector and pod labels (create strategy), provided the
//     caller has already assigned its uid; see defaultJob.
func Default(obj runtime.Object) {
	if isNil(obj) {
		return
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		defaultPod(o)
	case *corev1.PodTemplate:
		defaultPodTemplateSpec(&o.Template, true)
	case *corev1.ReplicationController:
		defaultReplicationController(o)
	case *corev1.Service:
		defaultService(o)
	case *corev1.Endpoints:
		defaultEndpoints(o)
	case *corev1.Namespace:
		defaultNamespace(o)
	case *corev1.Node:
		defaultNode(o)
	case *corev1.Secret:
		defaultSecret(o)
	case *corev1.PersistentVolumeClaim:
		defaultPersistentVolumeClaim(o)
	case *corev1.PersistentVolume:
		defaultPersistentVolume(o)
	case *appsv1.Deployment:
		defaultDeployment(o)
	case *appsv1.ReplicaSet:
		defaultReplicaSet(o)
	case *appsv1.DaemonSet:
		defaultDaemonSet(o)
	case *appsv1.StatefulSet:
		defaultStatefulSet(o)
	case *batchv1.Job:
		defaultJob(o)
	case *batchv1.CronJob:
		defaultCronJob(o)
	case *rbacv1.RoleBinding:
		defaultRoleRef(&o.RoleRef)
		defaultSubjects(o.Subjects)
	case *rbacv1.ClusterRoleBinding:
		defaultRoleRef(&o.RoleRef)
		defaultSubjects(o.Subjects)
	}
}

// Validate checks a new object (create). namespaced says whether the
// resource is namespaced. It returns every problem found, each with a
// Kubernetes field path, or nil when the object is valid. Unknown types get
// ObjectMeta validation only; a value without ObjectMeta is an internal error.
func Validate(obj runtime.Object, namespaced bool) field.ErrorList {
	return validate(obj, namespaced, true)
}

// ValidateUpdate checks an update of old to obj: all of Validate plus
// immutable fields and the metadata update rules of ValidateObjectMetaUpdate
// (name, namespace, uid and creationTimestamp may not change, resourceVersion
// must be set, generation may not decrease). obj and old must be the same
// type.
func ValidateUpdate(obj, old runtime.Object, namespaced bool) field.ErrorList {
	if isNil(obj) || isNil(old) {
		return field.ErrorList{field.InternalError(nil, errNilObject)}
	}
	if reflect.TypeOf(obj) != reflect.TypeOf(old) {
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("update of %T to %T: %w", old, obj, errTypeMismatch))}
	}
	allErrs := validate(obj, namespaced, false)
	newMeta, err := meta.Accessor(obj)
	if err != nil {
		// validate already reported the missing ObjectMeta.
		return allErrs
	}
	oldMeta, err := meta.Accessor(old)
	if err != nil {
		return append(allErrs, field.InternalError(field.NewPath("metadata"), err))
	}
	allErrs = append(allErrs, apimachineryvalidation.ValidateObjectMetaAccessorUpdate(newMeta, oldMeta, field.NewPath("metadata"))...)

	switch o := obj.(type) {
	case *corev1.Pod:
		allErrs = append(allErrs, validatePodUpdate(o, old.(*corev1.Pod))...)
	case *corev1.Service:
		allErrs = append(allErrs, validateServiceUpdate(o, old.(*corev1.Service))...)
	case *corev1.ConfigMap:
		allErrs = append(allErrs, validateConfigMapUpdate(o, old.(*corev1.ConfigMap))...)
	case *corev1.Secret:
		allErrs = append(allErrs, validateSecretUpdate(o, old.(*corev1.Secret))...)
	case *corev1.PersistentVolumeClaim:
		allErrs = append(allErrs, validatePersistentVolumeClaimUpdate(o, old.(*corev1.PersistentVolumeClaim))...)
	case *corev1.Node:
		allErrs = append(allErrs, validateNodeUpdate(o, old.(*corev1.Node))...)
	case *appsv1.Deployment:
		allErrs = append(allErrs, validateSelectorUpdate(o.Spec.Selector, old.(*appsv1.Deployment).Spec.Selector)...)
	case *appsv1.ReplicaSet:
		allErrs = append(allErrs, validateSelectorUpdate(o.Spec.Selector, old.(*appsv1.ReplicaSet).Spec.Selector)...)
	case *appsv1.DaemonSet:
		allErrs = append(allErrs, validateSelectorUpdate(o.Spec.Selector, old.(*appsv1.DaemonSet).Spec.Selector)...)
	case *appsv1.StatefulSet:
		allErrs = append(allErrs, validateStatefulSetUpdate(o, old.(*appsv1.StatefulSet))...)
	case *batchv1.Job:
		allErrs = append(allErrs, validateJobUpdate(o, old.(*batchv1.Job))...)
	case *rbacv1.RoleBinding:
		allErrs = append(allErrs, validateRoleRefUpdate(o.RoleRef, old.(*rbacv1.RoleBinding).RoleRef)...)
	case *rbacv1.ClusterRoleBinding:
		allErrs = append(allErrs, validateRoleRefUpdate(o.RoleRef, old.(*rbacv1.ClusterRoleBinding).RoleRef)...)
	}
	return allErrs
}

// validate is Validate with the operation made explicit: a few rules (such as
// "ephemeral containers cannot be set on create") only apply to creates.
func validate(obj runtime.Object, namespaced, create bool) field.ErrorList {
	if isNil(obj) {
		return field.ErrorList{field.InternalError(nil, errNilObject)}
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		return validatePod(o, namespaced, create)
	case *corev1.PodTemplate:
		return validatePodTemplate(o, namespaced)
	case *corev1.ReplicationController:
		return validateReplicationController(o, namespaced)
	case *corev1.Service:
		return validateService(o, namespaced)
	case *corev1.Endpoints:
		return validateEndpoints(o, namespaced)
	case *corev1.ConfigMap:
		return validateConfigMap(o, namespaced)
	case *corev1.Secret:
		return validateSecret(o, namespaced)
	case *corev1.Namespace:
		return validateNamespace(o, namespaced)
	case *corev1.Node:
		return validateNode(o, namespaced)
	case *corev1.ServiceAccount:
		return validateObjectMeta(&o.ObjectMeta, namespaced, apimachineryvalidation.ValidateServiceAccountName)
	case *corev1.Event:
		return validateEvent(o, namespaced)
	case *corev1.PersistentVolumeClaim:
		return validatePersistentVolumeClaim(o, namespaced)
	case *corev1.PersistentVolume:
		return validatePersistentVolume(o, namespaced)
	case *appsv1.Deployment:
		return validateDeployment(o, namespaced)
	case *appsv1.ReplicaSet:
		return validateReplicaSet(o, namespaced)
	case *appsv1.DaemonSet:
		return validateDaemonSet(o, namespaced)
	case *appsv1.StatefulSet:
		return validateStatefulSet(o, namespaced)
	case *batchv1.Job:
		return validateJob(o, namespaced)
	case *batchv1.CronJob:
		return validateCronJob(o, namespaced)
	case *rbacv1.Role:
		return validateRole(o, namespaced)
	case *rbacv1.ClusterRole:
		return validateClusterRole(o, namespaced)
	case *rbacv1.RoleBinding:
		return validateRoleBinding(o, namespaced)
	case *rbacv1.ClusterRoleBinding:
		return validateClusterRoleBinding(o, namespaced)
	case *networkingv1.Ingress:
		return validateIngress(o, namespaced)
	}
	accessor, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("metadata"), err)}
	}
	return apimachineryvalidation.ValidateObjectMetaAccessor(accessor, namespaced, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
}

// isNil reports whether obj is nil or a typed nil pointer, which a type
// switch would otherwise dereference.
func isNil(obj runtime.Object) bool {
	if obj == nil {
		return true
	}
	v := reflect.ValueOf(obj)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
