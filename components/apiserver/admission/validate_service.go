package admission

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxClientIPAffinitySeconds is the longest ClientIP session affinity
// timeout: one day.
const maxClientIPAffinitySeconds = 86400

const msgClusterIP = "must be empty, 'None', or a valid IP address"

var (
	supportedServiceTypes = []corev1.ServiceType{
		corev1.ServiceTypeClusterIP, corev1.ServiceTypeExternalName, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort,
	}
	supportedSessionAffinity  = []corev1.ServiceAffinity{corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone}
	supportedTrafficPolicies  = []corev1.ServiceExternalTrafficPolicy{corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal}
	supportedInternalPolicies = []corev1.ServiceInternalTrafficPolicy{corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal}
	supportedIPFamilyPolicies = []corev1.IPFamilyPolicy{corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack, corev1.IPFamilyPolicySingleStack}
	supportedIPFamilies       = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
)

func validateService(svc *corev1.Service, namespaced bool) field.ErrorList {
	// Service names become DNS labels that must start with a letter.
	allErrs := validateObjectMeta(&svc.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNS1035Label)
	specPath := field.NewPath("spec")
	spec := &svc.Spec
	headless := spec.ClusterIP == corev1.ClusterIPNone
	externalName := spec.Type == corev1.ServiceTypeExternalName

	switch {
	case spec.Type == "":
		allErrs = append(allErrs, field.Required(specPath.Child("type"), ""))
	case !slices.Contains(supportedServiceTypes, spec.Type):
		allErrs = append(allErrs, field.NotSupported(specPath.Child("type"), spec.Type, supportedServiceTypes))
	}
	if len(spec.Ports) == 0 && !headless && !externalName {
		allErrs = append(allErrs, field.Required(specPath.Child("ports"), ""))
	}
	switch spec.Type {
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
		if headless {
			allErrs = append(allErrs, field.Invalid(specPath.Child("clusterIP"), spec.ClusterIP, fmt.Sprintf("may not be set to 'None' for %s services", spec.Type)))
		}
	case corev1.ServiceTypeExternalName:
		if spec.ClusterIP != "" {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("clusterIP"), "may not be set for ExternalName services"))
		}
		if len(spec.ClusterIPs) > 0 {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if spec.ExternalName == "" {
			allErrs = append(allErrs, field.Required(specPath.Child("externalName"), ""))
		} else {
			allErrs = append(allErrs, validateDNS1123Subdomain(strings.TrimSuffix(spec.ExternalName, "."), specPath.Child("externalName"))...)
		}
	}

	allErrs = append(allErrs, validateServicePorts(spec, specPath.Child("ports"))...)
	if spec.Selector != nil {
		allErrs = append(allErrs, validateLabels(spec.Selector, specPath.Child("selector"))...)
	}

	saPath := specPath.Child("sessionAffinity")
	switch spec.SessionAffinity {
	case "":
		allErrs = append(allErrs, field.Required(saPath, ""))
	case corev1.ServiceAffinityNone:
		if spec.SessionAffinityConfig != nil {
			allErrs = append(allErrs, field.Forbidden(specPath.Child("sessionAffinityConfig"), "must not be set when session affinity is None"))
		}
	case corev1.ServiceAffinityClientIP:
		cfgPath := specPath.Child("sessionAffinityConfig")
		switch c := spec.SessionAffinityConfig; {
		case c == nil:
			allErrs = append(allErrs, field.Required(cfgPath, "when session affinity type is ClientIP"))
		case c.ClientIP == nil:
			allErrs = append(allErrs, field.Required(cfgPath.Child("clientIP"), "when session affinity type is ClientIP"))
		case c.ClientIP.TimeoutSeconds == nil:
			allErrs = append(allErrs, field.Required(cfgPath.Child("clientIP", "timeoutSeconds"), "when session affinity type is ClientIP"))
		case *c.ClientIP.TimeoutSeconds <= 0 || *c.ClientIP.TimeoutSeconds > maxClientIPAffinitySeconds:
			allErrs = append(allErrs, field.Invalid(cfgPath.Child("clientIP", "timeoutSeconds"), *c.ClientIP.TimeoutSeconds, fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPAffinitySeconds)))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(saPath, spec.SessionAffinity, supportedSessionAffinity))
	}

	allErrs = append(allErrs, validateClusterIPs(spec, specPath)...)
	for i, ip := range spec.ExternalIPs {
		allErrs = append(allErrs, utilvalidation.IsValidIP(specPath.Child("externalIPs").Index(i), ip)...)
	}
	if len(spec.LoadBalancerSourceRanges) > 0 {
		lbPath := specPath.Child("loadBalancerSourceRanges")
		if spec.Type != corev1.ServiceTypeLoadBalancer {
			allErrs = append(allErrs, field.Forbidden(lbPath, "may only be used when `type` is 'LoadBalancer'"))
		}
		for i, cidr := range spec.LoadBalancerSourceRanges {
			allErrs = append(allErrs, utilvalidation.IsValidCIDR(lbPath.Index(i), strings.TrimSpace(cidr))...)
		}
	}

	etpPath := specPath.Child("externalTrafficPolicy")
	switch etp := spec.ExternalTrafficPolicy; {
	case !externallyAccessible(svc):
		if etp != "" {
			allErrs = append(allErrs, field.Invalid(etpPath, etp, "may only be set for externally-accessible services"))
		}
	case etp == "":
		allErrs = append(allErrs, field.Required(etpPath, ""))
	case !slices.Contains(supportedTrafficPolicies, etp):
		allErrs = append(allErrs, field.NotSupported(etpPath, etp, supportedTrafficPolicies))
	}
	if !externalName {
		itpPath := specPath.Child("internalTrafficPolicy")
		switch itp := spec.InternalTrafficPolicy; {
		case itp == nil:
			allErrs = append(allErrs, field.Required(itpPath, ""))
		case !slices.Contains(supportedInternalPolicies, *itp):
			allErrs = append(allErrs, field.NotSupported(itpPath, *itp, supportedInternalPolicies))
		}
	}
	allErrs = append(allErrs, validateNonnegative(int64(spec.HealthCheckNodePort), specPath.Child("healthCheckNodePort"))...)
	return append(allErrs, validateIPFamilies(spec, specPath)...)
}

func validateServicePorts(spec *corev1.ServiceSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := map[string]bool{}
	ports := map[string]bool{}
	nodePorts := map[string]bool{}
	requireName := len(spec.Ports) > 1
	for i, p := range spec.Ports {
		idxPath := fldPath.Index(i)
		switch {
		case p.Name == "" && requireName:
			allErrs = append(allErrs, field.Required(idxPath.Child("name"), ""))
		case p.Name != "":
			allErrs = append(allErrs, validateDNS1123Label(p.Name, idxPath.Child("name"))...)
			if names[p.Name] {
				allErrs = append(allErrs, field.Duplicate(idxPath.Child("name"), p.Name))
			}
			names[p.Name] = true
		}
		allErrs = append(allErrs, validateMessages(idxPath.Child("port"), p.Port, utilvalidation.IsValidPortNum(int(p.Port)))...)
		allErrs = append(allErrs, validateProtocol(p.Protocol, idxPath.Child("protocol"))...)
		allErrs = append(allErrs, validatePortNumOrName(p.TargetPort, idxPath.Child("targetPort"))...)

		// A port is identified by number and protocol: 53/TCP and 53/UDP
		// may both be served.
		key := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if ports[key] {
			allErrs = append(allErrs, field.Duplicate(idxPath, key))
		}
		ports[key] = true

		if p.NodePort == 0 {
			continue
		}
		npPath := idxPath.Child("nodePort")
		if spec.Type == corev1.ServiceTypeClusterIP || spec.Type == corev1.ServiceTypeExternalName {
			allErrs = append(allErrs, field.Forbidden(npPath, fmt.Sprintf("may not be used when `type` is '%s'", spec.Type)))
		}
		allErrs = append(allErrs, validateMessages(npPath, p.NodePort, utilvalidation.IsValidPortNum(int(p.NodePort)))...)
		npKey := fmt.Sprintf("%d/%s", p.NodePort, p.Protocol)
		if nodePorts[npKey] {
			allErrs = append(allErrs, field.Duplicate(npPath, p.NodePort))
		}
		nodePorts[npKey] = true
	}
	return allErrs
}

// validateClusterIPs checks clusterIP and clusterIPs, which Default keeps
// in step: clusterIPs[0] is the clusterIP.
func validateClusterIPs(spec *corev1.ServiceSpec, specPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if ip := spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone && len(utilvalidation.IsValidIP(specPath.Child("clusterIP"), ip)) > 0 {
		allErrs = append(allErrs, field.Invalid(specPath.Child("clusterIP"), ip, msgClusterIP))
	}
	ipsPath := specPath.Child("clusterIPs")
	if len(spec.ClusterIPs) == 0 {
		return allErrs
	}
	if spec.ClusterIP != "" && spec.ClusterIPs[0] != spec.ClusterIP {
		allErrs = append(allErrs, field.Invalid(ipsPath, spec.ClusterIPs, "first value must match `clusterIP`"))
	}
	if len(spec.ClusterIPs) > 2 {
		allErrs = append(allErrs, field.Invalid(ipsPath, spec.ClusterIPs, "may only hold up to 2 values"))
	}
	for i, ip := range spec.ClusterIPs {
		if ip == corev1.ClusterIPNone {
			if len(spec.ClusterIPs) > 1 {
				allErrs = append(allErrs, field.Invalid(ipsPath.Index(i), ip, "'None' must be the first and only value"))
			}
			continue
		}
		if len(utilvalidation.IsValidIP(ipsPath.Index(i), ip)) > 0 {
			allErrs = append(allErrs, field.Invalid(ipsPath.Index(i), ip, msgClusterIP))
		}
	}
	return allErrs
}

func validateIPFamilies(spec *corev1.ServiceSpec, specPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	policyPath := specPath.Child("ipFamilyPolicy")
	familiesPath := specPath.Child("ipFamilies")
	if spec.Type == corev1.ServiceTypeExternalName {
		if spec.IPFamilyPolicy != nil {
			allErrs = append(allErrs, field.Forbidden(policyPath, "may not be set for ExternalName services"))
		}
		if len(spec.IPFamilies) > 0 {
			allErrs = append(allErrs, field.Forbidden(familiesPath, "may not be set for ExternalName services"))
		}
		return allErrs
	}
	if p := spec.IPFamilyPolicy; p != nil && !slices.Contains(supportedIPFamilyPolicies, *p) {
		allErrs = append(allErrs, field.NotSupported(policyPath, *p, supportedIPFamilyPolicies))
	}
	if len(spec.IPFamilies) > 2 {
		allErrs = append(allErrs, field.Invalid(familiesPath, spec.IPFamilies, "may only hold up to 2 values"))
	}
	seen := map[corev1.IPFamily]bool{}
	for i, f := range spec.IPFamilies {
		switch {
		case !slices.Contains(supportedIPFamilies, f):
			allErrs = append(allErrs, field.NotSupported(familiesPath.Index(i), f, supportedIPFamilies))
		case seen[f]:
			allErrs = append(allErrs, field.Duplicate(familiesPath.Index(i), f))
		}
		seen[f] = true
	}
	return allErrs
}

// validateServiceUpdate keeps an allocated cluster IP: it may only change
// by way of an ExternalName service, which has none.
func validateServiceUpdate(svc, old *corev1.Service) field.ErrorList {
	if svc.Spec.Type == corev1.ServiceTypeExternalName || old.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	var allErrs field.ErrorList
	specPath := field.NewPath("spec")
	if old.Spec.ClusterIP != "" {
		allErrs = append(allErrs, apimachineryvalidation.ValidateImmutableField(svc.Spec.ClusterIP, old.Spec.ClusterIP, specPath.Child("clusterIP"))...)
	}
	if len(old.Spec.ClusterIPs) > 0 {
		primary := specPath.Child("clusterIPs").Index(0)
		if len(svc.Spec.ClusterIPs) == 0 {
			allErrs = append(allErrs, field.Invalid(primary, svc.Spec.ClusterIPs, "primary clusterIP can not be unset"))
		} else {
			allErrs = append(allErrs, apimachineryvalidation.ValidateImmutableField(svc.Spec.ClusterIPs[0], old.Spec.ClusterIPs[0], primary)...)
		}
	}
	return allErrs
}

func validateEndpoints(ep *corev1.Endpoints, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&ep.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	subsetsPath := field.NewPath("subsets")
	for i := range ep.Subsets {
		ss := &ep.Subsets[i]
		idxPath := subsetsPath.Index(i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			allErrs = append(allErrs, field.Required(idxPath, "must specify `addresses` or `notReadyAddresses`"))
		}
		for _, list := range []struct {
			name  string
			addrs []corev1.EndpointAddress
		}{{"addresses", ss.Addresses}, {"notReadyAddresses", ss.NotReadyAddresses}} {
			for j, a := range list.addrs {
				aPath := idxPath.Child(list.name).Index(j)
				allErrs = append(allErrs, utilvalidation.IsValidIP(aPath.Child("ip"), a.IP)...)
				if a.Hostname != "" {
					allErrs = append(allErrs, validateDNS1123Label(a.Hostname, aPath.Child("hostname"))...)
				}
				if a.NodeName != nil {
					allErrs = append(allErrs, validateDNS1123Subdomain(*a.NodeName, aPath.Child("nodeName"))...)
				}
			}
		}
		for j, p := range ss.Ports {
			pPath := idxPath.Child("ports").Index(j)
			if p.Name == "" && len(ss.Ports) > 1 {
				allErrs = append(allErrs, field.Required(pPath.Child("name"), ""))
			} else if p.Name != "" {
				allErrs = append(allErrs, validateDNS1123Label(p.Name, pPath.Child("name"))...)
			}
			allErrs = append(allErrs, validateMessages(pPath.Child("port"), p.Port, utilvalidation.IsValidPortNum(int(p.Port)))...)
			allErrs = append(allErrs, validateProtocol(p.Protocol, pPath.Child("protocol"))...)
		}
	}
	return allErrs
}
