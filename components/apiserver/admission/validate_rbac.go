package admission

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// rbacName is the name rule of RBAC objects: anything that is safe as a
// URL path segment, since role names such as "system:node" contain colons.
func rbacName(name string, prefix bool) []string {
	if prefix {
		return content.IsPathSegmentPrefix(name)
	}
	return content.IsPathSegmentName(name)
}

func validateRole(r *rbacv1.Role, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&r.ObjectMeta, namespaced, rbacName)
	for i, rule := range r.Rules {
		allErrs = append(allErrs, validatePolicyRule(rule, true, field.NewPath("rules").Index(i))...)
	}
	return allErrs
}

func validateClusterRole(r *rbacv1.ClusterRole, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&r.ObjectMeta, namespaced, rbacName)
	for i, rule := range r.Rules {
		allErrs = append(allErrs, validatePolicyRule(rule, false, field.NewPath("rules").Index(i))...)
	}
	if ar := r.AggregationRule; ar != nil {
		selPath := field.NewPath("aggregationRule", "clusterRoleSelectors")
		if len(ar.ClusterRoleSelectors) == 0 {
			allErrs = append(allErrs, field.Required(selPath, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
		}
		for i := range ar.ClusterRoleSelectors {
			allErrs = append(allErrs, metav1validation.ValidateLabelSelector(&ar.ClusterRoleSelectors[i], metav1validation.LabelSelectorValidationOptions{}, selPath.Index(i))...)
		}
	}
	return allErrs
}

// validatePolicyRule checks that a rule grants verbs on either resources
// or, in a ClusterRole only, non-resource URLs.
func validatePolicyRule(rule rbacv1.PolicyRule, namespaced bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(rule.Verbs) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("verbs"), "verbs must contain at least one value"))
	}
	if len(rule.NonResourceURLs) > 0 {
		urlsPath := fldPath.Child("nonResourceURLs")
		if namespaced {
			allErrs = append(allErrs, field.Invalid(urlsPath, rule.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
		}
		if len(rule.APIGroups) > 0 || len(rule.Resources) > 0 || len(rule.ResourceNames) > 0 {
			allErrs = append(allErrs, field.Invalid(urlsPath, rule.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
		}
		return allErrs
	}
	if len(rule.APIGroups) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("apiGroups"), "resource rules must supply at least one api group"))
	}
	if len(rule.Resources) == 0 {
		allErrs = append(allErrs, field.Required(fldPath.Child("resources"), "resource rules must supply at least one resource"))
	}
	return allErrs
}

func validateRoleBinding(rb *rbacv1.RoleBinding, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&rb.ObjectMeta, namespaced, rbacName)
	allErrs = append(allErrs, validateRoleRef(rb.RoleRef, []string{"Role", "ClusterRole"})...)
	for i, s := range rb.Subjects {
		allErrs = append(allErrs, validateSubject(s, true, field.NewPath("subjects").Index(i))...)
	}
	return allErrs
}

func validateClusterRoleBinding(crb *rbacv1.ClusterRoleBinding, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&crb.ObjectMeta, namespaced, rbacName)
	allErrs = append(allErrs, validateRoleRef(crb.RoleRef, []string{"ClusterRole"})...)
	for i, s := range crb.Subjects {
		allErrs = append(allErrs, validateSubject(s, false, field.NewPath("subjects").Index(i))...)
	}
	return allErrs
}

func validateRoleRef(ref rbacv1.RoleRef, kinds []string) field.ErrorList {
	var allErrs field.ErrorList
	refPath := field.NewPath("roleRef")
	if ref.APIGroup != rbacv1.GroupName {
		allErrs = append(allErrs, field.NotSupported(refPath.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	if !slices.Contains(kinds, ref.Kind) {
		allErrs = append(allErrs, field.NotSupported(refPath.Child("kind"), ref.Kind, kinds))
	}
	if ref.Name == "" {
		allErrs = append(allErrs, field.Required(refPath.Child("name"), ""))
	} else {
		allErrs = append(allErrs, validateMessages(refPath.Child("name"), ref.Name, rbacName(ref.Name, false))...)
	}
	return allErrs
}

// validateSubject checks a binding's subject. A ClusterRoleBinding must
// say which namespace a ServiceAccount subject is in.
func validateSubject(s rbacv1.Subject, namespaced bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if s.Name == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("name"), ""))
	}
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		if s.Name != "" {
			allErrs = append(allErrs, validateMessages(fldPath.Child("name"), s.Name, apimachineryvalidation.ValidateServiceAccountName(s.Name, false))...)
		}
		if s.APIGroup != "" {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("apiGroup"), s.APIGroup, []string{""}))
		}
		if !namespaced && s.Namespace == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child("namespace"), ""))
		}
	case rbacv1.UserKind, rbacv1.GroupKind:
		if s.APIGroup != rbacv1.GroupName {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("kind"), s.Kind, []string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
	}
	return allErrs
}

// validateRoleRefUpdate keeps a binding bound to the role it was created
// for: granting a different role needs a new binding.
func validateRoleRefUpdate(ref, old rbacv1.RoleRef) field.ErrorList {
	if ref != old {
		return field.ErrorList{field.Invalid(field.NewPath("roleRef"), ref, "cannot change roleRef")}
	}
	return nil
}
