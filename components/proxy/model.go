package proxy

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// labelServiceProxyName marks a Service for another proxy; kube-proxy
// leaves such Services alone, and so does kiln's.
const labelServiceProxyName = "service.kubernetes.io/service-proxy-name"

// defaultAffinitySeconds is the API's default ClientIP affinity timeout
// (3 hours).
const defaultAffinitySeconds = 10800

// sliceSet holds the EndpointSlices of one Service by slice name.
type sliceSet map[string]*discoveryv1.EndpointSlice

// servicePorts turns a Service and its slices into the ports that get
// rules; nil means the Service gets none (headless, ExternalName, another
// proxy's, the cluster DNS address).
func (p *Proxier) servicePorts(svc *corev1.Service, set sliceSet) []ServicePort {
	if svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Labels[labelServiceProxyName] != "" {
		return nil
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || !ip.Is4() || ip == p.clusterDNS {
		return nil // "", "None", IPv6 or the node-served DNS address
	}
	affinity := int32(0)
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		affinity = defaultAffinitySeconds
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			affinity = *c.ClientIP.TimeoutSeconds
		}
	}
	withNodePorts := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	out := make([]ServicePort, 0, len(svc.Spec.Ports))
	for _, port := range svc.Spec.Ports {
		proto := port.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		sp := ServicePort{
			Service:         key,
			Name:            port.Name,
			Protocol:        proto,
			ClusterIP:       ip,
			Port:            port.Port,
			AffinitySeconds: affinity,
			InternalLocal:   svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal,
			Endpoints:       p.endpoints(port.Name, proto, set),
		}
		if withNodePorts && port.NodePort != 0 {
			sp.NodePort = port.NodePort
			sp.ExternalLocal = svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
		}
		out = append(out, sp)
	}
	slices.SortFunc(out, func(a, b ServicePort) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// candidate is an endpoint address with the conditions that decide
// whether it gets traffic.
type candidate struct {
	ep                          Endpoint
	ready, serving, terminating bool
}

// endpoints resolves the service port named name to endpoint addresses
// and ports. Each slice carries the port numbers of its endpoints by
// service port name, so a named targetPort that resolves to different
// container ports in different pods lands in different slices.
func (p *Proxier) endpoints(name string, proto corev1.Protocol, set sliceSet) []Endpoint {
	var cands []candidate
	for _, s := range set {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		port, ok := slicePort(s, name, proto)
		if !ok {
			continue
		}
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(e.Addresses[0]) // kube-proxy uses the first address too
			if err != nil || !ip.Is4() {
				continue
			}
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			cands = append(cands, candidate{
				ep:          Endpoint{IP: ip, Port: port, Local: e.NodeName != nil && *e.NodeName == p.nodeName},
				ready:       ready,
				serving:     e.Conditions.Serving == nil && ready || e.Conditions.Serving != nil && *e.Conditions.Serving,
				terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
			})
		}
	}
	pick := func(c candidate) bool { return c.ready }
	if !slices.ContainsFunc(cands, pick) {
		pick = func(c candidate) bool { return c.serving && c.terminating }
	}
	var out []Endpoint
	for _, c := range cands {
		if pick(c) {
			out = append(out, c.ep)
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		if c := a.IP.Compare(b.IP); c != 0 {
			return c
		}
		return cmp.Compare(a.Port, b.Port)
	})
	// The same address can be in two slices while a controller moves it;
	// it is one endpoint, local if either copy says so.
	dedup := out[:0]
	for _, ep := range out {
		if n := len(dedup); n > 0 && dedup[n-1].IP == ep.IP && dedup[n-1].Port == ep.Port {
			dedup[n-1].Local = dedup[n-1].Local || ep.Local
			continue
		}
		dedup = append(dedup, ep)
	}
	return dedup
}

// slicePort finds the port number a slice gives the service port name.
func slicePort(s *discoveryv1.EndpointSlice, name string, proto corev1.Protocol) (int32, bool) {
	for _, sp := range s.Ports {
		n, pr := "", corev1.ProtocolTCP
		if sp.Name != nil {
			n = *sp.Name
		}
		if sp.Protocol != nil {
			pr = *sp.Protocol
		}
		if n == name && pr == proto && sp.Port != nil && *sp.Port > 0 {
			return *sp.Port, true
		}
	}
	return 0, false
}
