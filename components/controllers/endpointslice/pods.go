package endpointslice

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// hasSelector says whether this controller computes the Service's
// endpoints. Services without a selector, and ExternalName Services,
// have user-managed endpoints (kube's controllers skip both).
func hasSelector(svc *corev1.Service) bool {
	return len(svc.Spec.Selector) > 0 && svc.Spec.Type != corev1.ServiceTypeExternalName
}

// isHeadless says whether the Service has no cluster IP.
func isHeadless(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.ClusterIP == ""
}

// podReady is the pod's Ready condition.
func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podTerminal says the pod's containers are done for good.
func podTerminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// includePod says whether the pod belongs in a Service's endpoints at
// all: it has an IP and has not finished; terminating pods only when
// includeTerminating (kube's ShouldPodBeInEndpoints).
func includePod(pod *corev1.Pod, includeTerminating bool) bool {
	if podTerminal(pod) {
		return false
	}
	if pod.Status.PodIP == "" && len(pod.Status.PodIPs) == 0 {
		return false
	}
	return includeTerminating || pod.DeletionTimestamp == nil
}

// addressTypes are the address types of the Service's slices: its IP
// families, else the family of its cluster IP, else (headless, families
// unset) both, as kube's getAddressTypesForService.
func addressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	var out []discoveryv1.AddressType
	for _, f := range svc.Spec.IPFamilies {
		at := familyAddressType(f)
		if at != "" && !slices.Contains(out, at) {
			out = append(out, at)
		}
	}
	if len(out) > 0 {
		return out
	}
	if !isHeadless(svc) {
		if isIPv6(svc.Spec.ClusterIP) {
			return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv6}
		}
		return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}
	}
	return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}
}

func familyAddressType(f corev1.IPFamily) discoveryv1.AddressType {
	switch f {
	case corev1.IPv4Protocol:
		return discoveryv1.AddressTypeIPv4
	case corev1.IPv6Protocol:
		return discoveryv1.AddressTypeIPv6
	}
	return ""
}

// endpointsAddressType is the one family of the legacy Endpoints object:
// the Service's primary family.
func endpointsAddressType(svc *corev1.Service) discoveryv1.AddressType {
	if len(svc.Spec.IPFamilies) > 0 {
		if at := familyAddressType(svc.Spec.IPFamilies[0]); at != "" {
			return at
		}
	}
	if !isHeadless(svc) && isIPv6(svc.Spec.ClusterIP) {
		return discoveryv1.AddressTypeIPv6
	}
	return discoveryv1.AddressTypeIPv4
}

func isIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && !a.Is4In6()
}

// podAddress is the pod's first IP of the address type, or "".
func podAddress(pod *corev1.Pod, at discoveryv1.AddressType) string {
	ips := pod.Status.PodIPs
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: pod.Status.PodIP}}
	}
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip.IP)
		if err != nil {
			continue
		}
		if (at == discoveryv1.AddressTypeIPv6) == (a.Is6() && !a.Is4In6()) {
			return ip.IP
		}
	}
	return ""
}

// protocol is a port's protocol, TCP when unset (the API's default).
func protocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// findPort resolves a Service port's targetPort on the pod: a number as
// is, a name through the pod's container ports (and those of restartable
// init containers, sidecars) of the same protocol. ok is false when the
// pod has no such named port (kube's podutil.FindPort).
func findPort(pod *corev1.Pod, sp *corev1.ServicePort) (int32, bool) {
	tp := sp.TargetPort
	if tp.Type == intstr.Int {
		if tp.IntVal == 0 {
			return sp.Port, true // unset: the API defaults it to port
		}
		return tp.IntVal, true
	}
	if tp.StrVal == "" {
		return sp.Port, true
	}
	proto := protocol(sp.Protocol)
	match := func(c *corev1.Container) (int32, bool) {
		for _, p := range c.Ports {
			if p.Name == tp.StrVal && protocol(p.Protocol) == proto {
				return p.ContainerPort, true
			}
		}
		return 0, false
	}
	for i := range pod.Spec.Containers {
		if n, ok := match(&pod.Spec.Containers[i]); ok {
			return n, true
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			if n, ok := match(c); ok {
				return n, true
			}
		}
	}
	return 0, false
}

// slicePorts are the pod's resolved ports for the Service, in the
// Service's order; a port the pod cannot resolve is left out, so the pod
// lands in the slices of a smaller port set.
func slicePorts(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		n, ok := findPort(pod, sp)
		if !ok {
			continue
		}
		name, proto := sp.Name, protocol(sp.Protocol)
		out = append(out, discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &n, AppProtocol: sp.AppProtocol})
	}
	return out
}

// portsKey identifies a port set regardless of order.
func portsKey(ports []discoveryv1.EndpointPort) string {
	keys := make([]string, 0, len(ports))
	for _, p := range ports {
		var b strings.Builder
		if p.Name != nil {
			b.WriteString(*p.Name)
		}
		b.WriteByte('/')
		if p.Protocol != nil {
			b.WriteString(string(*p.Protocol))
		}
		b.WriteByte('/')
		if p.Port != nil {
			b.WriteString(strconv.Itoa(int(*p.Port)))
		}
		b.WriteByte('/')
		if p.AppProtocol != nil {
			b.WriteString(*p.AppProtocol)
		}
		keys = append(keys, b.String())
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

// shouldSetHostname says whether the pod's hostname is published: it set
// one and its subdomain is the Service (kube's ShouldSetHostname).
func shouldSetHostname(pod *corev1.Pod, svc *corev1.Service) bool {
	return pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && pod.Namespace == svc.Namespace
}

// podRef is the targetRef of the pod's endpoint.
func podRef(pod *corev1.Pod) *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
}

// newEndpoint is the pod's endpoint in a slice: serving is the pod's
// readiness, terminating its deletion, and ready is serving and not
// terminating, or always true with publishNotReadyAddresses (kube's
// podToEndpoint).
func newEndpoint(svc *corev1.Service, pod *corev1.Pod, addr string) discoveryv1.Endpoint {
	serving := podReady(pod)
	terminating := pod.DeletionTimestamp != nil
	ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
	ep := discoveryv1.Endpoint{
		Addresses:  []string{addr},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		TargetRef:  podRef(pod),
	}
	if pod.Spec.NodeName != "" {
		node := pod.Spec.NodeName
		ep.NodeName = &node
	}
	if shouldSetHostname(pod, svc) {
		h := pod.Spec.Hostname
		ep.Hostname = &h
	}
	return ep
}

// endpointKey identifies an endpoint across slices: its pod, else its
// first address.
func endpointKey(ep *discoveryv1.Endpoint) string {
	if r := ep.TargetRef; r != nil && r.Name != "" {
		return "pod/" + r.Namespace + "/" + r.Name
	}
	if len(ep.Addresses) > 0 {
		return "ip/" + ep.Addresses[0]
	}
	return ""
}

// podEndpointChanged says whether an update of a pod can change any
// Service's endpoints.
func podEndpointChanged(old, cur *corev1.Pod) bool {
	return old.UID != cur.UID ||
		!maps.Equal(old.Labels, cur.Labels) ||
		(old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
		podReady(old) != podReady(cur) ||
		podTerminal(old) != podTerminal(cur) ||
		old.Status.PodIP != cur.Status.PodIP ||
		!slices.Equal(old.Status.PodIPs, cur.Status.PodIPs) ||
		old.Spec.NodeName != cur.Spec.NodeName ||
		old.Spec.Hostname != cur.Spec.Hostname ||
		old.Spec.Subdomain != cur.Spec.Subdomain
}
