package admission

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestValidate_Service(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *corev1.Service)
		want   []wantErr
	}{
		{"valid", func(*corev1.Service) {}, nil},
		{"name must be a DNS-1035 label", func(s *corev1.Service) { s.Name = "1web" }, []wantErr{invalid("metadata.name")}},
		{"name may not have dots", func(s *corev1.Service) { s.Name = "web.frontend" }, []wantErr{invalid("metadata.name")}},
		{"ports required", func(s *corev1.Service) { s.Spec.Ports = nil }, []wantErr{required("spec.ports")}},
		{"headless without ports", func(s *corev1.Service) {
			s.Spec.Ports = nil
			s.Spec.ClusterIP, s.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
		}, nil},
		{"port zero", func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 }, []wantErr{invalid("spec.ports[0].port")}},
		{"port too big", func(s *corev1.Service) { s.Spec.Ports[1].Port = 65536 }, []wantErr{invalid("spec.ports[1].port")}},
		{"port name required with several ports", func(s *corev1.Service) { s.Spec.Ports[1].Name = "" },
			[]wantErr{required("spec.ports[1].name")}},
		{"single port needs no name", func(s *corev1.Service) {
			s.Spec.Ports = s.Spec.Ports[:1]
			s.Spec.Ports[0].Name = ""
		}, nil},
		{"port name not a label", func(s *corev1.Service) { s.Spec.Ports[0].Name = "HTTP" }, []wantErr{invalid("spec.ports[0].name")}},
		{"port names unique", func(s *corev1.Service) { s.Spec.Ports[1].Name = "http" }, []wantErr{duplicate("spec.ports[1].name")}},
		{"port and protocol unique", func(s *corev1.Service) { s.Spec.Ports[1].Port = 80 }, []wantErr{duplicate("spec.ports[1]")}},
		{"same port other protocol", func(s *corev1.Service) {
			s.Spec.Ports[1].Port = 80
			s.Spec.Ports[1].Protocol = corev1.ProtocolUDP
		}, nil},
		{"protocol unsupported", func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "HTTP" }, []wantErr{notSupported("spec.ports[0].protocol")}},
		{"targetPort invalid", func(s *corev1.Service) { s.Spec.Ports[1].TargetPort = intstr.FromInt32(0) },
			[]wantErr{invalid("spec.ports[1].targetPort")}},
		{"type unsupported", func(s *corev1.Service) { s.Spec.Type = "Internal" }, []wantErr{notSupported("spec.type")}},
		{"nodePort on ClusterIP", func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 }, []wantErr{forbidden("spec.ports[0].nodePort")}},
		{"nodePort on NodePort", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			s.Spec.Ports[0].NodePort = 30080
		}, nil},
		{"nodePort out of range", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			s.Spec.Ports[0].NodePort = 70000
		}, []wantErr{invalid("spec.ports[0].nodePort")}},
		{"nodePort duplicate", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			s.Spec.Ports[0].NodePort = 30080
			s.Spec.Ports[1].NodePort = 30080
		}, []wantErr{duplicate("spec.ports[1].nodePort")}},
		{"NodePort needs externalTrafficPolicy", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort },
			[]wantErr{required("spec.externalTrafficPolicy")}},
		{"externalTrafficPolicy on ClusterIP", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal },
			[]wantErr{invalid("spec.externalTrafficPolicy")}},
		{"headless NodePort", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			s.Spec.ClusterIP, s.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
		}, []wantErr{invalid("spec.clusterIP")}},
		{"clusterIP invalid", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.300" },
			[]wantErr{invalid("spec.clusterIP")}},
		{"clusterIP valid", func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"} }, nil},
		{"clusterIPs must start with clusterIP", func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.11"} },
			[]wantErr{invalid("spec.clusterIPs")}},
		{"sessionAffinity unsupported", func(s *corev1.Service) { s.Spec.SessionAffinity = "Cookie" }, []wantErr{notSupported("spec.sessionAffinity")}},
		{"sessionAffinity ClientIP needs config", func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP },
			[]wantErr{required("spec.sessionAffinityConfig")}},
		{"selector invalid", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "web server"} },
			[]wantErr{invalid("spec.selector")}},
		{"externalIPs invalid", func(s *corev1.Service) {
			s.Spec.ExternalIPs = []string{"example.com"}
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}, []wantErr{invalid("spec.externalIPs[0]")}},
		{"externalIPs make it externally accessible", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.10"} },
			[]wantErr{required("spec.externalTrafficPolicy")}},
		{"loadBalancerSourceRanges on ClusterIP", func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"10.0.0.0/8"} },
			[]wantErr{forbidden("spec.loadBalancerSourceRanges")}},
		{"ipFamilyPolicy unsupported", func(s *corev1.Service) { s.Spec.IPFamilyPolicy = new(corev1.IPFamilyPolicy("AnyStack")) },
			[]wantErr{notSupported("spec.ipFamilyPolicy")}},
		{"ipFamilies duplicate", func(s *corev1.Service) {
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv4Protocol}
		},
			[]wantErr{duplicate("spec.ipFamilies[1]")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validService()
			Default(s)
			tc.mutate(s)
			checkErrs(t, Validate(s, true), tc.want...)
		})
	}
}

func TestValidate_serviceTypes(t *testing.T) {
	tests := []struct {
		name string
		spec corev1.ServiceSpec
		want []wantErr
	}{
		{"external name", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com."}, nil},
		{"external name required", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName}, []wantErr{required("spec.externalName")}},
		{"external name invalid", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db_primary"},
			[]wantErr{invalid("spec.externalName")}},
		{"external name with clusterIP", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com", ClusterIP: "10.0.0.1"},
			[]wantErr{forbidden("spec.clusterIP")}},
		{"load balancer", corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 443}},
			LoadBalancerSourceRanges: []string{"192.168.0.0/16"},
		}, nil},
		{"load balancer bad source range", corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 443}},
			LoadBalancerSourceRanges: []string{"192.168.0.0/33"},
		}, []wantErr{invalid("spec.loadBalancerSourceRanges[0]")}},
		{"headless with selector", corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &corev1.Service{Spec: tc.spec}
			s.Name, s.Namespace = "svc", "default"
			Default(s)
			checkErrs(t, Validate(s, true), tc.want...)
		})
	}
}

func TestValidate_Endpoints(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(ep *corev1.Endpoints)
		want   []wantErr
	}{
		{"valid", func(*corev1.Endpoints) {}, nil},
		{"bad ip", func(ep *corev1.Endpoints) { ep.Subsets[0].Addresses[0].IP = "10.244.1" },
			[]wantErr{invalid("subsets[0].addresses[0].ip")}},
		{"no addresses", func(ep *corev1.Endpoints) { ep.Subsets[0].Addresses = nil }, []wantErr{required("subsets[0]")}},
		{"port name required", func(ep *corev1.Endpoints) { ep.Subsets[0].Ports[1].Name = "" },
			[]wantErr{required("subsets[0].ports[1].name")}},
		{"port invalid", func(ep *corev1.Endpoints) { ep.Subsets[0].Ports[0].Port = 0 }, []wantErr{invalid("subsets[0].ports[0].port")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ep := validEndpoints()
			Default(ep)
			tc.mutate(ep)
			checkErrs(t, Validate(ep, true), tc.want...)
		})
	}
}
