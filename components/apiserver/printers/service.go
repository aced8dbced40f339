package printers

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	discoveryv1beta1 "k8s.io/api/discovery/v1beta1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func serviceColumns() []metav1.TableColumnDefinition {
	doc := corev1.ServiceSpec{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Type", Type: "string", Description: doc["type"]},
		{Name: "Cluster-IP", Type: "string", Description: doc["clusterIP"]},
		{Name: "External-IP", Type: "string", Description: doc["externalIPs"]},
		{Name: "Port(s)", Type: "string", Description: doc["ports"]},
		ageColumn(),
		{Name: "Selector", Type: "string", Priority: 1, Description: doc["selector"]},
	}
}

func printService(svc *corev1.Service, now time.Time) []interface{} {
	svcType := svc.Spec.Type
	if svcType == "" {
		// What defaulting sets; kube only ever prints defaulted objects.
		svcType = corev1.ServiceTypeClusterIP
	}
	internalIP := "<none>"
	if len(svc.Spec.ClusterIPs) > 0 {
		internalIP = svc.Spec.ClusterIPs[0]
	} else if svc.Spec.ClusterIP != "" {
		// v1 to internal conversion fills clusterIPs from clusterIP.
		internalIP = svc.Spec.ClusterIP
	}
	svcPorts := makePortString(svc.Spec.Ports)
	if svcPorts == "" {
		svcPorts = "<none>"
	}
	return []interface{}{
		svc.Name,
		string(svcType),
		internalIP,
		serviceExternalIP(svc, svcType),
		svcPorts,
		age(svc.CreationTimestamp, now),
		labels.FormatLabels(svc.Spec.Selector),
	}
}

func serviceExternalIP(svc *corev1.Service, svcType corev1.ServiceType) string {
	switch svcType {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(svc.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		lbIPs := loadBalancerIngress(svc.Status.LoadBalancer.Ingress)
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(append(lbIPs, svc.Spec.ExternalIPs...), ",")
		}
		if len(lbIPs) > 0 {
			return strings.Join(lbIPs, ",")
		}
		return "<pending>"
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	}
	return "<unknown>"
}

// loadBalancerIngress returns the sorted, unique IPs (or else hostnames) of
// load-balancer ingress points. kube clips the joined list to 16 characters
// unless printing wide; the server always prints wide.
func loadBalancerIngress(ingress []corev1.LoadBalancerIngress) []string {
	var result []string
	for _, in := range ingress {
		if in.IP != "" {
			result = append(result, in.IP)
		} else if in.Hostname != "" {
			result = append(result, in.Hostname)
		}
	}
	slices.Sort(result)
	return slices.Compact(result)
}

func makePortString(ports []corev1.ServicePort) string {
	pieces := make([]string, len(ports))
	for i, port := range ports {
		protocol := port.Protocol
		if protocol == "" {
			protocol = corev1.ProtocolTCP // what defaulting sets
		}
		pieces[i] = fmt.Sprintf("%d/%s", port.Port, protocol)
		if port.NodePort > 0 {
			pieces[i] = fmt.Sprintf("%d:%d/%s", port.Port, port.NodePort, protocol)
		}
	}
	return strings.Join(pieces, ",")
}

func endpointsColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Endpoints", Type: "string", Description: corev1.Endpoints{}.SwaggerDoc()["subsets"]},
		ageColumn(),
	}
}

func printEndpoints(ep *corev1.Endpoints, now time.Time) []interface{} {
	return []interface{}{ep.Name, formatEndpoints(ep), age(ep.CreationTimestamp, now)}
}

// formatEndpoints lists up to three ip:port pairs of all ports, then
// "+ N more...".
func formatEndpoints(endpoints *corev1.Endpoints) string {
	if len(endpoints.Subsets) == 0 {
		return "<none>"
	}
	const max = 3
	var list []string
	more := false
	count := 0
	for _, ss := range endpoints.Subsets {
		if len(ss.Ports) == 0 {
			// It's possible to have headless services with no ports.
			count += len(ss.Addresses)
			for _, addr := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, addr.IP)
			}
			continue
		}
		for _, port := range ss.Ports {
			count += len(ss.Addresses)
			for _, addr := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, net.JoinHostPort(addr.IP, strconv.Itoa(int(port.Port))))
			}
		}
	}
	ret := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", ret, count-max)
	}
	return ret
}

func endpointSliceColumns() []metav1.TableColumnDefinition {
	// kube takes these descriptions from discovery/v1beta1.
	doc := discoveryv1beta1.EndpointSlice{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "AddressType", Type: "string", Description: doc["addressType"]},
		{Name: "Ports", Type: "string", Description: doc["ports"]},
		{Name: "Endpoints", Type: "string", Description: doc["endpoints"]},
		ageColumn(),
	}
}

func printEndpointSlice(es *discoveryv1.EndpointSlice, now time.Time) []interface{} {
	const max = 3
	var ports []string
	for _, p := range es.Ports {
		if len(ports) == max {
			break
		}
		portNum := "*"
		if p.Port != nil {
			portNum = strconv.Itoa(int(*p.Port))
		} else if p.Name != nil {
			portNum = *p.Name
		}
		ports = append(ports, portNum)
	}
	var addrs []string
	count := 0
	for _, ep := range es.Endpoints {
		for _, a := range ep.Addresses {
			if len(addrs) < max {
				addrs = append(addrs, a)
			}
			count++
		}
	}
	return []interface{}{
		es.Name,
		string(es.AddressType),
		listWithMore(ports, len(es.Ports), max),
		listWithMore(addrs, count, max),
		age(es.CreationTimestamp, now),
	}
}

// listWithMore joins list (the first max of count items) and appends
// "+ N more..." when items were left out; an empty list is "<unset>".
func listWithMore(list []string, count, max int) string {
	ret := strings.Join(list, ",")
	if count > max {
		return fmt.Sprintf("%s + %d more...", ret, count-max)
	}
	if ret == "" {
		ret = "<unset>"
	}
	return ret
}

func ingressColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Class", Type: "string", Description: "The name of the IngressClass resource that should be used for additional configuration"},
		{Name: "Hosts", Type: "string", Description: "Hosts that incoming requests are matched against before the ingress rule"},
		{Name: "Address", Type: "string", Description: "Address is a list containing ingress points for the load-balancer"},
		{Name: "Ports", Type: "string", Description: "Ports of TLS configurations that open"},
		ageColumn(),
	}
}

func printIngress(ing *networkingv1.Ingress, now time.Time) []interface{} {
	className := "<none>"
	if ing.Spec.IngressClassName != nil {
		className = *ing.Spec.IngressClassName
	}
	var addrs []string
	for _, in := range ing.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			addrs = append(addrs, in.IP)
		} else if in.Hostname != "" {
			addrs = append(addrs, in.Hostname)
		}
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	ports := "80"
	if len(ing.Spec.TLS) != 0 {
		ports = "80, 443"
	}
	return []interface{}{
		ing.Name,
		className,
		formatHosts(ing.Spec.Rules),
		strings.Join(addrs, ","),
		ports,
		age(ing.CreationTimestamp, now),
	}
}

// formatHosts lists up to three rule hosts, "*" when there are none.
func formatHosts(rules []networkingv1.IngressRule) string {
	const max = 3
	var list []string
	more := false
	for _, rule := range rules {
		if len(list) == max {
			more = true
		}
		if !more && rule.Host != "" {
			list = append(list, rule.Host)
		}
	}
	if len(list) == 0 {
		return "*"
	}
	ret := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", ret, len(rules)-max)
	}
	return ret
}
