package admission

import (
	"cmp"
	"slices"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Messages shared by several rules, worded as kube words them.
const (
	msgFieldImmutable     = apimachineryvalidation.FieldImmutableErrorMsg
	msgSelectorMismatch   = "`selector` does not match template `labels`"
	msgNotNegative        = apimachineryvalidation.IsNegativeErrorMsg
	msgFileMode           = "must be a number between 0 and 0777 (octal), both inclusive"
	maxFileMode           = 0o777
	msgMultipleHandlers   = "may not specify more than 1 handler type"
	msgMultipleVolumeType = "may not specify more than 1 volume type"
)

func validateNonnegative(v int64, fldPath *field.Path) field.ErrorList {
	return apimachineryvalidation.ValidateNonnegativeField(v, fldPath)
}

// validateMessages turns the messages of a utilvalidation check into
// Invalid errors at fldPath.
func validateMessages(fldPath *field.Path, value any, msgs []string) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range msgs {
		allErrs = append(allErrs, field.Invalid(fldPath, value, msg))
	}
	return allErrs
}

func validateDNS1123Label(value string, fldPath *field.Path) field.ErrorList {
	if isDNS1123Label(value) {
		return nil
	}
	return validateMessages(fldPath, value, utilvalidation.IsDNS1123Label(value))
}

func validateDNS1123Subdomain(value string, fldPath *field.Path) field.ErrorList {
	if isDNS1123Subdomain(value) {
		return nil
	}
	return validateMessages(fldPath, value, utilvalidation.IsDNS1123Subdomain(value))
}

// validatePortNumOrName checks a port given by number or by name, as
// targetPort and probe ports are.
func validatePortNumOrName(port intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	switch port.Type {
	case intstr.Int:
		return validateMessages(fldPath, port.IntValue(), utilvalidation.IsValidPortNum(port.IntValue()))
	case intstr.String:
		return validateMessages(fldPath, port.StrVal, utilvalidation.IsValidPortName(port.StrVal))
	}
	return field.ErrorList{field.Invalid(fldPath, port, "must be a port number or name")}
}

// validateFileMode checks a volume file mode, which must fit in 0777.
func validateFileMode(mode *int32, fldPath *field.Path) field.ErrorList {
	if mode != nil && (*mode < 0 || *mode > maxFileMode) {
		return field.ErrorList{field.Invalid(fldPath, *mode, msgFileMode)}
	}
	return nil
}

// validateSelectorUpdate reports a changed label selector: the apps/v1
// workloads may not switch the set of pods they own.
func validateSelectorUpdate(selector, old *metav1.LabelSelector) field.ErrorList {
	return apimachineryvalidation.ValidateImmutableField(selector, old, field.NewPath("spec", "selector"))
}

// sortedKeys returns the keys of m in order, so that errors about map
// entries come out in a stable order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
