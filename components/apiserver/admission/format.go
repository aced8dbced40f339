package admission

import (
	"strings"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The checks below answer, without regular expressions, whether a string
// is in one of the formats apimachinery validates with them. apimachinery
// matches every label, annotation key and name with a backtracking regexp;
// that was a third of Validate's time for a pod (BenchmarkAPICreate). They
// only ever say "valid" where apimachinery would, and callers fall back to
// apimachinery's checks, and its messages, whenever they say no.

const (
	// qualifiedNameMax is the limit on a label key's name part and on a
	// label value.
	qualifiedNameMax = 63
	// dns1123LabelMax and dns1123SubdomainMax are RFC 1123's limits.
	dns1123LabelMax     = 63
	dns1123SubdomainMax = 253
)

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }

// isDNS1123Label reports a lowercase RFC 1123 label:
// [a-z0-9]([-a-z0-9]*[a-z0-9])? of at most 63 characters.
func isDNS1123Label(s string) bool {
	return len(s) <= dns1123LabelMax && isDNS1123LabelPart(s, false)
}

// isDNS1123LabelPart checks one label's characters with no length limit (a
// subdomain limits only its whole length); caseless admits A-Z too.
func isDNS1123LabelPart(s string, caseless bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if caseless && 'A' <= c && c <= 'Z' {
			continue
		}
		if !isLowerAlnum(c) && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// isDNS1123Subdomain reports a lowercase RFC 1123 subdomain: labels joined
// by dots, at most 253 characters.
func isDNS1123Subdomain(s string) bool {
	return isSubdomain(s, false)
}

func isSubdomain(s string, caseless bool) bool {
	if len(s) > dns1123SubdomainMax {
		return false
	}
	for {
		label, rest, more := strings.Cut(s, ".")
		if !isDNS1123LabelPart(label, caseless) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}

// isQualifiedNamePart reports ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] of at
// most 63 characters: a label key's name part, or a non-empty label value.
func isQualifiedNamePart(s string) bool {
	if s == "" || len(s) > qualifiedNameMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) {
			continue
		}
		if c != '-' && c != '_' && c != '.' || i == 0 || i == len(s)-1 {
			return false
		}
	}
	return true
}

// isQualifiedName reports a label key: a name part with an optional DNS
// subdomain prefix and "/". caseless admits an upper-case prefix, as
// annotation keys are checked after lowering them.
func isQualifiedName(s string, caseless bool) bool {
	prefix, name, ok := strings.Cut(s, "/")
	if !ok {
		return isQualifiedNamePart(s)
	}
	return isSubdomain(prefix, caseless) && isQualifiedNamePart(name)
}

// isLabelValue reports a label value: empty or a qualified name part.
func isLabelValue(s string) bool {
	return s == "" || isQualifiedNamePart(s)
}

// labelsValid reports whether ValidateLabels would find nothing wrong.
func labelsValid(labels map[string]string) bool {
	for k, v := range labels {
		if !isQualifiedName(k, false) || !isLabelValue(v) {
			return false
		}
	}
	return true
}

// annotationsValid reports whether ValidateAnnotations would find nothing
// wrong. Keys with other than ASCII bytes are left to it: it lowers keys
// with Unicode rules before checking them.
func annotationsValid(annotations map[string]string) bool {
	total := 0
	for k, v := range annotations {
		for i := 0; i < len(k); i++ {
			if k[i] >= 0x80 {
				return false
			}
		}
		if !isQualifiedName(k, true) {
			return false
		}
		total += len(k) + len(v)
	}
	return total <= apimachineryvalidation.TotalAnnotationSizeLimitB
}

// validateLabels is ValidateLabels, skipped when the labels are valid.
func validateLabels(labels map[string]string, fldPath *field.Path) field.ErrorList {
	if labelsValid(labels) {
		return nil
	}
	return metav1validation.ValidateLabels(labels, fldPath)
}

// validateAnnotations is ValidateAnnotations, skipped when the annotations
// are valid.
func validateAnnotations(annotations map[string]string, fldPath *field.Path) field.ErrorList {
	if annotationsValid(annotations) {
		return nil
	}
	return apimachineryvalidation.ValidateAnnotations(annotations, fldPath)
}

// validateObjectMeta is ValidateObjectMeta at "metadata". Labels and
// annotations that are valid are not handed to it, which spares its
// regular expressions; anything else gets its full check and messages.
func validateObjectMeta(m *metav1.ObjectMeta, namespaced bool, nameFn apimachineryvalidation.ValidateNameFunc) field.ErrorList {
	if (len(m.Labels) > 0 || len(m.Annotations) > 0) && labelsValid(m.Labels) && annotationsValid(m.Annotations) {
		rest := *m
		rest.Labels, rest.Annotations = nil, nil
		m = &rest
	}
	return apimachineryvalidation.ValidateObjectMeta(m, namespaced, nameFn, field.NewPath("metadata"))
}
