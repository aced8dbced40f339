package admission

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// standardFinalizers are the finalizer names that need no domain.
var standardFinalizers = []string{
	string(corev1.FinalizerKubernetes), metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents,
}

func validateNamespace(ns *corev1.Namespace, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&ns.ObjectMeta, namespaced, apimachineryvalidation.ValidateNamespaceName)
	finPath := field.NewPath("spec", "finalizers")
	for _, f := range ns.Spec.Finalizers {
		name := string(f)
		allErrs = append(allErrs, validateMessages(finPath, name, utilvalidation.IsQualifiedName(name))...)
		if !strings.Contains(name, "/") && !slices.Contains(standardFinalizers, name) {
			allErrs = append(allErrs, field.Invalid(finPath, name, "name is neither a standard finalizer name nor is it fully qualified"))
		}
	}
	return allErrs
}

func validateNode(node *corev1.Node, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&node.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	specPath := field.NewPath("spec")
	taintsPath := specPath.Child("taints")
	seen := map[string]bool{}
	for i, t := range node.Spec.Taints {
		idxPath := taintsPath.Index(i)
		allErrs = append(allErrs, metav1validation.ValidateLabelName(t.Key, idxPath.Child("key"))...)
		if msgs := utilvalidation.IsValidLabelValue(t.Value); len(msgs) > 0 {
			allErrs = append(allErrs, field.Invalid(idxPath.Child("value"), t.Value, strings.Join(msgs, ";")))
		}
		switch {
		case t.Effect == "":
			allErrs = append(allErrs, field.Required(idxPath.Child("effect"), ""))
		case !slices.Contains(supportedTaintEffects, t.Effect):
			allErrs = append(allErrs, field.NotSupported(idxPath.Child("effect"), t.Effect, supportedTaintEffects))
		}
		key := t.Key + "/" + string(t.Effect)
		if seen[key] {
			dup := field.Duplicate(idxPath, key)
			dup.Detail = "taints must be unique by key and effect pair"
			allErrs = append(allErrs, dup)
		}
		seen[key] = true
	}
	cidrsPath := specPath.Child("podCIDRs")
	if len(node.Spec.PodCIDRs) > 2 {
		allErrs = append(allErrs, field.Invalid(cidrsPath, node.Spec.PodCIDRs, "may specify no more than one CIDR for each IP family"))
	}
	for i, cidr := range node.Spec.PodCIDRs {
		allErrs = append(allErrs, utilvalidation.IsValidCIDR(cidrsPath.Index(i), cidr)...)
	}
	return allErrs
}

// validateNodeUpdate lets podCIDRs and providerID be set once, by the
// controller that assigns them, and never changed after.
func validateNodeUpdate(node, old *corev1.Node) field.ErrorList {
	var allErrs field.ErrorList
	if len(old.Spec.PodCIDRs) > 0 && !slices.Equal(node.Spec.PodCIDRs, old.Spec.PodCIDRs) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"))
	}
	if old.Spec.ProviderID != "" && node.Spec.ProviderID != old.Spec.ProviderID {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "providerID"), "node updates may not change providerID except from \"\" to valid"))
	}
	return allErrs
}

// validateEvent checks that an Event lives in the namespace of the object
// it is about. Events about cluster-scoped objects live in "default" (or,
// from old clients, nowhere).
func validateEvent(ev *corev1.Event, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&ev.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	nsPath := field.NewPath("involvedObject", "namespace")
	if ev.InvolvedObject.Namespace == "" {
		if ev.Namespace != metav1.NamespaceNone && ev.Namespace != metav1.NamespaceDefault {
			allErrs = append(allErrs, field.Invalid(nsPath, ev.InvolvedObject.Namespace, "does not match event.namespace"))
		}
	} else if ev.Namespace != ev.InvolvedObject.Namespace {
		allErrs = append(allErrs, field.Invalid(nsPath, ev.InvolvedObject.Namespace, "does not match event.namespace"))
	}
	return allErrs
}
