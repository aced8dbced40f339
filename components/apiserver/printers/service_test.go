package printers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

func service(t corev1.ServiceType, ports []corev1.ServicePort, mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: objMeta("web"),
		Spec: corev1.ServiceSpec{
			Type:       t,
			ClusterIP:  "10.43.0.20",
			ClusterIPs: []string{"10.43.0.20"},
			Ports:      ports,
			Selector:   map[string]string{"app": "web"},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func TestRow_services(t *testing.T) {
	http := []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}
	runRows(t, "", "services", []rowCase{
		{
			name: "cluster IP",
			obj:  service(corev1.ServiceTypeClusterIP, http),
			want: []interface{}{"web", "ClusterIP", "10.43.0.20", "<none>", "80/TCP", "5m", "app=web"},
		},
		{
			name: "node port",
			obj:  service(corev1.ServiceTypeNodePort, []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP}}),
			want: []interface{}{"web", "NodePort", "10.43.0.20", "<none>", "80:30080/TCP", "5m", "app=web"},
		},
		{
			name: "several ports, defaulted protocol",
			obj: service(corev1.ServiceTypeClusterIP, []corev1.ServicePort{
				{Port: 80, Protocol: corev1.ProtocolTCP}, {Port: 53, Protocol: corev1.ProtocolUDP}, {Port: 443},
			}),
			want: []interface{}{"web", "ClusterIP", "10.43.0.20", "<none>", "80/TCP,53/UDP,443/TCP", "5m", "app=web"},
		},
		{
			name: "headless without ports or selector",
			obj: service(corev1.ServiceTypeClusterIP, nil, func(s *corev1.Service) {
				s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.Selector = "None", []string{"None"}, nil
			}),
			want: []interface{}{"web", "ClusterIP", "None", "<none>", "<none>", "5m", "<none>"},
		},
		{
			name: "external IPs",
			obj: service(corev1.ServiceTypeClusterIP, http, func(s *corev1.Service) {
				s.Spec.ExternalIPs = []string{"203.0.113.1", "203.0.113.2"}
			}),
			want: []interface{}{"web", "ClusterIP", "10.43.0.20", "203.0.113.1,203.0.113.2", "80/TCP", "5m", "app=web"},
		},
		{
			name: "load balancer pending",
			obj:  service(corev1.ServiceTypeLoadBalancer, []corev1.ServicePort{{Port: 80, NodePort: 31000, Protocol: corev1.ProtocolTCP}}),
			want: []interface{}{"web", "LoadBalancer", "10.43.0.20", "<pending>", "80:31000/TCP", "5m", "app=web"},
		},
		{
			name: "load balancer with ingress and external IPs",
			obj: service(corev1.ServiceTypeLoadBalancer, http, func(s *corev1.Service) {
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.9"}, {Hostname: "lb.example.com"}, {IP: "198.51.100.2"}}
				s.Spec.ExternalIPs = []string{"203.0.113.1"}
			}),
			want: []interface{}{"web", "LoadBalancer", "10.43.0.20", "198.51.100.2,198.51.100.9,lb.example.com,203.0.113.1", "80/TCP", "5m", "app=web"},
		},
		{
			name: "external name",
			obj: service(corev1.ServiceTypeExternalName, nil, func(s *corev1.Service) {
				s.Spec.ExternalName, s.Spec.ClusterIP, s.Spec.ClusterIPs = "db.example.com", "", nil
			}),
			want: []interface{}{"web", "ExternalName", "<none>", "db.example.com", "<none>", "5m", "app=web"},
		},
		{
			name: "unknown type",
			obj:  service("Bogus", http),
			want: []interface{}{"web", "Bogus", "10.43.0.20", "<unknown>", "80/TCP", "5m", "app=web"},
		},
		{
			name: "undefaulted type and cluster IPs",
			obj:  service("", http, func(s *corev1.Service) { s.Spec.ClusterIPs = nil }),
			want: []interface{}{"web", "ClusterIP", "10.43.0.20", "<none>", "80/TCP", "5m", "app=web"},
		},
	})
}

func TestRow_endpoints(t *testing.T) {
	addrs := func(ips ...string) []corev1.EndpointAddress {
		var out []corev1.EndpointAddress
		for _, ip := range ips {
			out = append(out, corev1.EndpointAddress{IP: ip})
		}
		return out
	}
	runRows(t, "", "endpoints", []rowCase{
		{
			name: "none",
			obj:  &corev1.Endpoints{ObjectMeta: objMeta("web")},
			want: []interface{}{"web", "<none>", "5m"},
		},
		{
			name: "two ports",
			obj: &corev1.Endpoints{ObjectMeta: objMeta("web"), Subsets: []corev1.EndpointSubset{{
				Addresses: addrs("10.42.0.5"),
				Ports:     []corev1.EndpointPort{{Port: 80}, {Port: 443}},
			}}},
			want: []interface{}{"web", "10.42.0.5:80,10.42.0.5:443", "5m"},
		},
		{
			name: "more than three",
			obj: &corev1.Endpoints{ObjectMeta: objMeta("web"), Subsets: []corev1.EndpointSubset{{
				Addresses: addrs("10.42.0.5", "10.42.0.6", "10.42.1.7", "10.42.1.8", "fd00::9"),
				Ports:     []corev1.EndpointPort{{Port: 8080}},
			}}},
			want: []interface{}{"web", "10.42.0.5:8080,10.42.0.6:8080,10.42.1.7:8080 + 2 more...", "5m"},
		},
		{
			name: "headless without ports",
			obj: &corev1.Endpoints{ObjectMeta: objMeta("web"), Subsets: []corev1.EndpointSubset{{
				Addresses: addrs("10.42.0.5", "10.42.0.6"),
			}}},
			want: []interface{}{"web", "10.42.0.5,10.42.0.6", "5m"},
		},
		{
			name: "headless, more than three",
			obj: &corev1.Endpoints{ObjectMeta: objMeta("web"), Subsets: []corev1.EndpointSubset{
				{Addresses: addrs("10.42.0.5", "10.42.0.6")},
				{Addresses: addrs("10.42.1.5", "10.42.1.6")},
			}},
			want: []interface{}{"web", "10.42.0.5,10.42.0.6,10.42.1.5 + 1 more...", "5m"},
		},
	})
}

func TestRow_endpointSlices(t *testing.T) {
	runRows(t, "discovery.k8s.io", "endpointslices", []rowCase{
		{
			name: "empty",
			obj:  &discoveryv1.EndpointSlice{ObjectMeta: objMeta("web-abc"), AddressType: discoveryv1.AddressTypeIPv4},
			want: []interface{}{"web-abc", "IPv4", "<unset>", "<unset>", "5m"},
		},
		{
			name: "ports and endpoints",
			obj: &discoveryv1.EndpointSlice{
				ObjectMeta:  objMeta("web-abc"),
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Port: ptr(int32(80))}, {Name: ptr("metrics")}, {}, {Port: ptr(int32(9090))}},
				Endpoints: []discoveryv1.Endpoint{
					{Addresses: []string{"10.42.0.5"}}, {Addresses: []string{"10.42.0.6"}},
				},
			},
			want: []interface{}{"web-abc", "IPv4", "80,metrics,* + 1 more...", "10.42.0.5,10.42.0.6", "5m"},
		},
	})
}

func TestRow_ingresses(t *testing.T) {
	runRows(t, "networking.k8s.io", "ingresses", []rowCase{
		{
			name: "catch all",
			obj:  &networkingv1.Ingress{ObjectMeta: objMeta("web")},
			want: []interface{}{"web", "<none>", "*", "", "80", "5m"},
		},
		{
			name: "hosts, TLS and address",
			obj: &networkingv1.Ingress{
				ObjectMeta: objMeta("web"),
				Spec: networkingv1.IngressSpec{
					IngressClassName: ptr("traefik"),
					Rules:            []networkingv1.IngressRule{{Host: "a.example.com"}, {}, {Host: "b.example.com"}, {Host: "c.example.com"}, {Host: "d.example.com"}},
					TLS:              []networkingv1.IngressTLS{{Hosts: []string{"a.example.com"}}},
				},
				Status: networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{
					Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: "192.168.1.10"}, {Hostname: "lb.example.com"}},
				}},
			},
			want: []interface{}{"web", "traefik", "a.example.com,b.example.com,c.example.com + 2 more...", "192.168.1.10,lb.example.com", "80, 443", "5m"},
		},
	})
}
