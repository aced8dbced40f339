package dns

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Names in the cluster domain, as the Kubernetes DNS specification
// (kubernetes/dns docs/specification.md) has them:
//
//	<svc>.<ns>.svc.<domain>               A: ClusterIP, or the ready endpoints of a headless Service
//	                                      CNAME: an ExternalName Service
//	                                      SRV: every named port
//	<hostname>.<svc>.<ns>.svc.<domain>    A: the endpoint of a headless Service with that hostname
//	                                      (or whose address, dashed, it is)
//	_<port>._<proto>.<svc>.<ns>.svc.<domain>  SRV: one named port
//	<a-b-c-d>.<ns>.pod.<domain>           A: a.b.c.d (CoreDNS's "pods insecure", kubeadm's default)
//
// A name that does not exist is NXDOMAIN and one without records of the
// asked type NODATA, both with the zone's SOA so resolvers cache the
// negative answer for TTL seconds.

// answer answers req when its name is the server's own: in the cluster
// domain, or the reverse name of a ClusterIP. ok is false for a name to
// forward.
func (s *Server) answer(req *mdns.Msg) (*mdns.Msg, bool) {
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if !mdns.IsSubDomain(s.domain, name) {
		return s.reverse(req, name)
	}
	resp := new(mdns.Msg).SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(max(opt.UDPSize(), mdns.MinMsgSize), false)
	}
	var rel []string
	if name != s.domain {
		rel = mdns.SplitDomainName(strings.TrimSuffix(name, "."+s.domain))
	}
	answers, extra, exists := s.lookup(rel, q)
	switch {
	case !exists:
		resp.Rcode = mdns.RcodeNameError
		resp.Ns = []mdns.RR{s.soa()}
	case len(answers) == 0:
		resp.Ns = []mdns.RR{s.soa()}
	default:
		resp.Answer, resp.Extra = answers, append(extra, resp.Extra...)
	}
	return resp, true
}

// lookup finds the records of the name rel (its labels relative to the
// domain) of the type q asks for; exists is false when the name does
// not exist at all.
func (s *Server) lookup(rel []string, q mdns.Question) (answers, extra []mdns.RR, exists bool) {
	n := len(rel)
	switch {
	case n == 0: // the domain itself
		switch q.Qtype {
		case mdns.TypeSOA:
			return []mdns.RR{s.soa()}, nil, true
		case mdns.TypeNS:
			return []mdns.RR{&mdns.NS{Hdr: s.hdr(s.domain, mdns.TypeNS), Ns: "ns.dns." + s.domain}}, nil, true
		}
		return nil, nil, true
	case rel[n-1] == "svc":
		return s.lookupService(rel[:n-1], q)
	case rel[n-1] == "pod":
		return s.lookupPod(rel[:n-1], q)
	case n == 2 && rel[0] == "ns" && rel[1] == "dns":
		// The name the NS record points at: this server.
		return nil, nil, true
	}
	return nil, nil, false
}

// lookupService answers names under svc.<domain>; rel is what precedes
// "svc".
func (s *Server) lookupService(rel []string, q mdns.Question) ([]mdns.RR, []mdns.RR, bool) {
	switch len(rel) {
	case 0: // svc.<domain>
		return nil, nil, true
	case 1: // <ns>.svc.<domain>: exists while the namespace has Services
		svcs, _ := s.services.Services(rel[0]).List(labels.Everything())
		return nil, nil, len(svcs) > 0
	}
	ns, name := rel[len(rel)-1], rel[len(rel)-2]
	svc, err := s.services.Services(ns).Get(name)
	if err != nil {
		return nil, nil, false
	}
	fqdn := name + "." + ns + ".svc." + s.domain
	switch len(rel) {
	case 2:
		return s.serviceRecords(svc, fqdn, q.Qtype)
	case 3:
		if !headless(svc) {
			return nil, nil, false
		}
		for _, e := range s.endpoints(svc, "", "") {
			if e.label() == rel[0] {
				if q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY {
					return []mdns.RR{s.a(rel[0]+"."+fqdn, e.ip)}, nil, true
				}
				return nil, nil, true
			}
		}
		return nil, nil, false
	case 4:
		port, proto, ok := srvLabels(rel[0], rel[1])
		if !ok {
			return nil, nil, false
		}
		sp, ok := servicePort(svc, port, proto)
		if !ok {
			return nil, nil, false
		}
		if q.Qtype != mdns.TypeSRV && q.Qtype != mdns.TypeANY {
			return nil, nil, true
		}
		ans, extra := s.srv(svc, fqdn, rel[0]+"."+rel[1]+"."+fqdn, sp)
		return ans, extra, true
	}
	return nil, nil, false
}

// serviceRecords answers <svc>.<ns>.svc.<domain>.
func (s *Server) serviceRecords(svc *corev1.Service, fqdn string, qtype uint16) ([]mdns.RR, []mdns.RR, bool) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		if qtype == mdns.TypeSRV {
			return nil, nil, true
		}
		target := mdns.Fqdn(strings.ToLower(svc.Spec.ExternalName))
		return []mdns.RR{&mdns.CNAME{Hdr: s.hdr(fqdn, mdns.TypeCNAME), Target: target}}, nil, true
	}
	switch qtype {
	case mdns.TypeA, mdns.TypeANY:
		if !headless(svc) {
			ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
			if err != nil || !ip.Is4() {
				return nil, nil, true
			}
			return []mdns.RR{s.a(fqdn, ip)}, nil, true
		}
		var out []mdns.RR
		seen := map[netip.Addr]bool{}
		for _, e := range s.endpoints(svc, "", "") {
			if !seen[e.ip] {
				seen[e.ip] = true
				out = append(out, s.a(fqdn, e.ip))
			}
		}
		return out, nil, true
	case mdns.TypeSRV:
		var ans, extra []mdns.RR
		for _, p := range svc.Spec.Ports {
			if p.Name == "" {
				continue // SRV names need a port name
			}
			proto := strings.ToLower(string(protocolOf(p.Protocol)))
			a, x := s.srv(svc, fqdn, "_"+p.Name+"._"+proto+"."+fqdn, p)
			ans, extra = append(ans, a...), append(extra, x...)
		}
		return ans, extra, true
	}
	return nil, nil, true
}

// srv is the SRV records of one port of a Service, named owner, with the
// targets' A records as extra: the Service name for a ClusterIP, one
// name per endpoint for a headless Service.
func (s *Server) srv(svc *corev1.Service, fqdn, owner string, sp corev1.ServicePort) (ans, extra []mdns.RR) {
	if !headless(svc) {
		ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
		if err != nil || !ip.Is4() {
			return nil, nil
		}
		return []mdns.RR{s.srvRR(owner, fqdn, uint16(sp.Port), 100)}, []mdns.RR{s.a(fqdn, ip)}
	}
	eps := s.endpoints(svc, sp.Name, protocolOf(sp.Protocol))
	for _, e := range eps {
		target := e.label() + "." + fqdn
		ans = append(ans, s.srvRR(owner, target, uint16(e.port), uint16(max(1, 100/len(eps)))))
		extra = append(extra, s.a(target, e.ip))
	}
	return ans, extra
}

// lookupPod answers <a-b-c-d>.<ns>.pod.<domain>.
func (s *Server) lookupPod(rel []string, q mdns.Question) ([]mdns.RR, []mdns.RR, bool) {
	switch len(rel) {
	case 0, 1:
		return nil, nil, true
	case 2:
		ip, err := netip.ParseAddr(strings.ReplaceAll(rel[0], "-", "."))
		if err != nil || !ip.Is4() {
			return nil, nil, false
		}
		if q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY {
			return []mdns.RR{s.a(rel[0]+"."+rel[1]+".pod."+s.domain, ip)}, nil, true
		}
		return nil, nil, true
	}
	return nil, nil, false
}

// reverse answers the PTR query of a ClusterIP's reverse name; other
// reverse names (and every other name outside the domain) are forwarded.
func (s *Server) reverse(req *mdns.Msg, name string) (*mdns.Msg, bool) {
	q := req.Question[0]
	if q.Qtype != mdns.TypePTR || !strings.HasSuffix(name, ".in-addr.arpa.") {
		return nil, false
	}
	labels := mdns.SplitDomainName(strings.TrimSuffix(name, ".in-addr.arpa."))
	if len(labels) != 4 {
		return nil, false
	}
	slices.Reverse(labels)
	ip, err := netip.ParseAddr(strings.Join(labels, "."))
	if err != nil {
		return nil, false
	}
	objs, _ := s.svcIndex.ByIndex(indexClusterIP, ip.String())
	if len(objs) == 0 {
		return nil, false
	}
	svc := objs[0].(*corev1.Service)
	resp := new(mdns.Msg).SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	resp.Answer = []mdns.RR{&mdns.PTR{Hdr: s.hdr(name, mdns.TypePTR), Ptr: svc.Name + "." + svc.Namespace + ".svc." + s.domain}}
	return resp, true
}

// endpoint is an address of a headless Service.
type endpoint struct {
	ip       netip.Addr
	port     int32
	hostname string
}

// label is the endpoint's name under its Service: its hostname, or its
// address with dashes.
func (e endpoint) label() string {
	if e.hostname != "" {
		return strings.ToLower(e.hostname)
	}
	return strings.ReplaceAll(e.ip.String(), ".", "-")
}

// endpoints are the ready endpoints of svc (all of them with
// publishNotReadyAddresses), sorted by address. With portName set only
// slices that carry that port are used, and port is filled in.
func (s *Server) endpoints(svc *corev1.Service, portName string, proto corev1.Protocol) []endpoint {
	objs, _ := s.sliceIndex.ByIndex(indexService, svc.Namespace+"/"+svc.Name)
	var out []endpoint
	for _, o := range objs {
		sl := o.(*discoveryv1.EndpointSlice)
		if sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		var port int32
		if proto != "" {
			found := false
			for _, p := range sl.Ports {
				if p.Name != nil && *p.Name == portName && protocolOf(deref(p.Protocol)) == proto && p.Port != nil {
					port, found = *p.Port, true
					break
				}
			}
			if !found {
				continue
			}
		}
		for _, e := range sl.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			if !ready && !svc.Spec.PublishNotReadyAddresses {
				continue
			}
			ip, err := netip.ParseAddr(e.Addresses[0])
			if err != nil || !ip.Is4() {
				continue
			}
			ep := endpoint{ip: ip, port: port}
			if e.Hostname != nil {
				ep.hostname = *e.Hostname
			}
			out = append(out, ep)
		}
	}
	slices.SortFunc(out, func(a, b endpoint) int { return a.ip.Compare(b.ip) })
	return out
}

func headless(svc *corev1.Service) bool { return svc.Spec.ClusterIP == corev1.ClusterIPNone }

func deref(p *corev1.Protocol) corev1.Protocol {
	if p == nil {
		return ""
	}
	return *p
}

func protocolOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// srvLabels parses "_<port>" and "_<proto>".
func srvLabels(port, proto string) (string, corev1.Protocol, bool) {
	if !strings.HasPrefix(port, "_") || !strings.HasPrefix(proto, "_") {
		return "", "", false
	}
	p := corev1.Protocol(strings.ToUpper(proto[1:]))
	if p != corev1.ProtocolTCP && p != corev1.ProtocolUDP && p != corev1.ProtocolSCTP {
		return "", "", false
	}
	return port[1:], p, true
}

func servicePort(svc *corev1.Service, name string, proto corev1.Protocol) (corev1.ServicePort, bool) {
	for _, p := range svc.Spec.Ports {
		if strings.EqualFold(p.Name, name) && protocolOf(p.Protocol) == proto {
			return p, true
		}
	}
	return corev1.ServicePort{}, false
}

func (s *Server) hdr(name string, t uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: s.ttl}
}

func (s *Server) a(name string, ip netip.Addr) mdns.RR {
	return &mdns.A{Hdr: s.hdr(name, mdns.TypeA), A: net.IP(ip.AsSlice())}
}

func (s *Server) srvRR(owner, target string, port, weight uint16) mdns.RR {
	return &mdns.SRV{Hdr: s.hdr(owner, mdns.TypeSRV), Priority: 0, Weight: weight, Port: port, Target: target}
}

// soa is the zone's SOA; its minimum (the negative-caching TTL) is the
// answer TTL, as CoreDNS sets it.
func (s *Server) soa() mdns.RR {
	return &mdns.SOA{
		Hdr: s.hdr(s.domain, mdns.TypeSOA), Ns: "ns.dns." + s.domain, Mbox: "hostmaster." + s.domain,
		Serial: s.serial, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: s.ttl,
	}
}
