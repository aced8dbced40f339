package admission

import (
	"net/netip"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	supportedPathTypes = []networkingv1.PathType{
		networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific, networkingv1.PathTypePrefix,
	}
	// invalidPathSequences and invalidPathSuffixes could let an Exact or
	// Prefix path match more than it says.
	invalidPathSequences = []string{"//", "/./", "/../", "%2f", "%2F"}
	invalidPathSuffixes  = []string{"/..", "/."}
)

func validateIngress(ing *networkingv1.Ingress, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&ing.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	specPath := field.NewPath("spec")
	spec := &ing.Spec
	if len(spec.Rules) == 0 && spec.DefaultBackend == nil {
		allErrs = append(allErrs, field.Invalid(specPath, spec.Rules, "either `defaultBackend` or `rules` must be specified"))
	}
	if spec.DefaultBackend != nil {
		allErrs = append(allErrs, validateIngressBackend(spec.DefaultBackend, specPath.Child("defaultBackend"))...)
	}
	if c := spec.IngressClassName; c != nil {
		allErrs = append(allErrs, validateDNS1123Subdomain(*c, specPath.Child("ingressClassName"))...)
	}
	for i, tls := range spec.TLS {
		for j, host := range tls.Hosts {
			allErrs = append(allErrs, validateIngressHost(host, specPath.Child("tls").Index(i).Child("hosts").Index(j))...)
		}
	}
	rulesPath := specPath.Child("rules")
	for i, rule := range spec.Rules {
		rulePath := rulesPath.Index(i)
		if rule.Host != "" {
			allErrs = append(allErrs, validateIngressHost(rule.Host, rulePath.Child("host"))...)
		}
		if rule.HTTP == nil {
			continue
		}
		pathsPath := rulePath.Child("http", "paths")
		if len(rule.HTTP.Paths) == 0 {
			allErrs = append(allErrs, field.Required(pathsPath, ""))
		}
		for j := range rule.HTTP.Paths {
			allErrs = append(allErrs, validateHTTPIngressPath(&rule.HTTP.Paths[j], pathsPath.Index(j))...)
		}
	}
	return allErrs
}

// validateIngressHost checks a host name, which may start with a "*."
// wildcard but may not be an IP address.
func validateIngressHost(host string, fldPath *field.Path) field.ErrorList {
	if _, err := netip.ParseAddr(host); err == nil {
		return field.ErrorList{field.Invalid(fldPath, host, "must be a DNS name, not an IP address")}
	}
	if strings.HasPrefix(host, "*") {
		return validateMessages(fldPath, host, utilvalidation.IsWildcardDNS1123Subdomain(host))
	}
	return validateDNS1123Subdomain(host, fldPath)
}

func validateHTTPIngressPath(p *networkingv1.HTTPIngressPath, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	typePath := fldPath.Child("pathType")
	pathPath := fldPath.Child("path")
	switch {
	case p.PathType == nil:
		allErrs = append(allErrs, field.Required(typePath, "must be specified"))
	case !slices.Contains(supportedPathTypes, *p.PathType):
		allErrs = append(allErrs, field.NotSupported(typePath, *p.PathType, supportedPathTypes))
	case *p.PathType == networkingv1.PathTypeExact || *p.PathType == networkingv1.PathTypePrefix:
		if !strings.HasPrefix(p.Path, "/") {
			allErrs = append(allErrs, field.Invalid(pathPath, p.Path, "must be an absolute path"))
		}
		for _, seq := range invalidPathSequences {
			if strings.Contains(p.Path, seq) {
				allErrs = append(allErrs, field.Invalid(pathPath, p.Path, "must not contain '"+seq+"'"))
			}
		}
		for _, suffix := range invalidPathSuffixes {
			if strings.HasSuffix(p.Path, suffix) {
				allErrs = append(allErrs, field.Invalid(pathPath, p.Path, "cannot end with '"+suffix+"'"))
			}
		}
	case p.Path != "" && !strings.HasPrefix(p.Path, "/"):
		allErrs = append(allErrs, field.Invalid(pathPath, p.Path, "must be an absolute path"))
	}
	return append(allErrs, validateIngressBackend(&p.Backend, fldPath.Child("backend"))...)
}

// validateIngressBackend requires exactly one of a service (by name, with
// a port given by name or number) or a resource reference.
func validateIngressBackend(b *networkingv1.IngressBackend, fldPath *field.Path) field.ErrorList {
	switch {
	case b.Resource != nil && b.Service != nil:
		return field.ErrorList{field.Invalid(fldPath, "", "cannot set both resource and service backends")}
	case b.Resource != nil:
		var allErrs field.ErrorList
		if b.Resource.Kind == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child("resource", "kind"), ""))
		}
		if b.Resource.Name == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child("resource", "name"), ""))
		}
		return allErrs
	case b.Service != nil:
		var allErrs field.ErrorList
		svcPath := fldPath.Child("service")
		if b.Service.Name == "" {
			allErrs = append(allErrs, field.Required(svcPath.Child("name"), ""))
		} else {
			allErrs = append(allErrs, validateMessages(svcPath.Child("name"), b.Service.Name, apimachineryvalidation.NameIsDNS1035Label(b.Service.Name, false))...)
		}
		port := b.Service.Port
		switch {
		case port.Name != "" && port.Number != 0:
			allErrs = append(allErrs, field.Invalid(svcPath.Child("port"), "", "cannot set both port name & port number"))
		case port.Name != "":
			allErrs = append(allErrs, validateMessages(svcPath.Child("port", "name"), port.Name, utilvalidation.IsValidPortName(port.Name))...)
		case port.Number != 0:
			allErrs = append(allErrs, validateMessages(svcPath.Child("port", "number"), port.Number, utilvalidation.IsValidPortNum(int(port.Number)))...)
		default:
			allErrs = append(allErrs, field.Required(svcPath.Child("port"), "port name or number is required"))
		}
		return allErrs
	}
	return field.ErrorList{field.Invalid(fldPath, "", "resource or service backend is required")}
}
