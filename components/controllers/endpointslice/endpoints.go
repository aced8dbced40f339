package endpointslice

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// endpointsLabels are the labels of the Service's Endpoints object: the
// Service's, the headless marker, and skip-mirror, which keeps kube's
// mirroring controller from copying it back into slices (kube's endpoints
// controller).
func endpointsLabels(svc *corev1.Service) map[string]string {
	l := maps.Clone(svc.Labels)
	if l == nil {
		l = map[string]string{}
	}
	if isHeadless(svc) {
		l[corev1.IsHeadlessService] = ""
	} else {
		delete(l, corev1.IsHeadlessService)
	}
	l[discoveryv1.LabelSkipMirror] = "true"
	return l
}

// ownsEndpoints says whether this controller made the Endpoints object:
// it carries the skip-mirror label this controller sets.
func ownsEndpoints(ep *corev1.Endpoints) bool {
	return ep.Labels[discoveryv1.LabelSkipMirror] == "true"
}

// endpointSubsets computes the Endpoints subsets of the Service: each
// pod's address in its primary family, ready or not ready, grouped by the
// set of ports the pod resolves. Terminating pods are left out unless the
// Service publishes not-ready addresses, which also makes every address
// ready (kube's endpoints controller). A Service with ports lists only
// pods that resolve at least one; a headless Service without ports lists
// every pod. truncated says addresses past maxEndpointsAddresses were
// dropped (not-ready ones first).
func endpointSubsets(svc *corev1.Service, pods []*corev1.Pod) (subsets []corev1.EndpointSubset, truncated bool) {
	at := endpointsAddressType(svc)
	type group struct {
		ports           []corev1.EndpointPort
		ready, notReady []corev1.EndpointAddress
	}
	groups := map[string]*group{}
	for _, pod := range pods {
		if !includePod(pod, svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		ip := podAddress(pod, at)
		if ip == "" {
			continue
		}
		ports := endpointPorts(svc, pod)
		if len(ports) == 0 && (len(svc.Spec.Ports) > 0 || !isHeadless(svc)) {
			continue
		}
		addr := corev1.EndpointAddress{IP: ip, TargetRef: podRef(pod)}
		if pod.Spec.NodeName != "" {
			node := pod.Spec.NodeName
			addr.NodeName = &node
		}
		if shouldSetHostname(pod, svc) {
			addr.Hostname = pod.Spec.Hostname
		}
		key := endpointPortsKey(ports)
		g := groups[key]
		if g == nil {
			g = &group{ports: ports}
			groups[key] = g
		}
		if svc.Spec.PublishNotReadyAddresses || podReady(pod) {
			g.ready = append(g.ready, addr)
		} else {
			g.notReady = append(g.notReady, addr)
		}
	}
	byAddress := func(a, b corev1.EndpointAddress) int {
		return cmp.Or(strings.Compare(a.IP, b.IP), strings.Compare(a.TargetRef.Name, b.TargetRef.Name))
	}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		g := groups[key]
		slices.SortFunc(g.ready, byAddress)
		slices.SortFunc(g.notReady, byAddress)
		subsets = append(subsets, corev1.EndpointSubset{Addresses: g.ready, NotReadyAddresses: g.notReady, Ports: g.ports})
	}
	return truncateSubsets(subsets, maxEndpointsAddresses)
}

// truncateSubsets keeps at most max addresses, ready ones first, and
// drops subsets left without any (the API refuses them).
func truncateSubsets(subsets []corev1.EndpointSubset, max int) ([]corev1.EndpointSubset, bool) {
	total := 0
	for _, ss := range subsets {
		total += len(ss.Addresses) + len(ss.NotReadyAddresses)
	}
	if total <= max {
		return subsets, false
	}
	budget := max
	for i := range subsets {
		n := min(len(subsets[i].Addresses), budget)
		subsets[i].Addresses = subsets[i].Addresses[:n]
		budget -= n
	}
	for i := range subsets {
		n := min(len(subsets[i].NotReadyAddresses), budget)
		subsets[i].NotReadyAddresses = subsets[i].NotReadyAddresses[:n]
		budget -= n
	}
	subsets = slices.DeleteFunc(subsets, func(ss corev1.EndpointSubset) bool {
		return len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0
	})
	return subsets, true
}

// endpointPorts are the pod's resolved ports for the Service as Endpoints
// ports, in the Service's order.
func endpointPorts(svc *corev1.Service, pod *corev1.Pod) []corev1.EndpointPort {
	var out []corev1.EndpointPort
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		n, ok := findPort(pod, sp)
		if !ok {
			continue
		}
		out = append(out, corev1.EndpointPort{Name: sp.Name, Port: n, Protocol: protocol(sp.Protocol), AppProtocol: sp.AppProtocol})
	}
	return out
}

func endpointPortsKey(ports []corev1.EndpointPort) string {
	dp := make([]discoveryv1.EndpointPort, len(ports))
	for i := range ports {
		p := &ports[i]
		dp[i] = discoveryv1.EndpointPort{Name: &p.Name, Protocol: &p.Protocol, Port: &p.Port, AppProtocol: p.AppProtocol}
	}
	return portsKey(dp)
}

// desiredEndpoints is the Service's Endpoints object, built on a copy of
// cur (nil: a new one) so that fields others set survive.
func desiredEndpoints(svc *corev1.Service, pods []*corev1.Pod, cur *corev1.Endpoints) *corev1.Endpoints {
	var ep *corev1.Endpoints
	if cur != nil {
		ep = cur.DeepCopy()
	} else {
		ep = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace}}
	}
	subsets, truncated := endpointSubsets(svc, pods)
	ep.Subsets = subsets
	ep.Labels = endpointsLabels(svc)
	if truncated {
		if ep.Annotations == nil {
			ep.Annotations = map[string]string{}
		}
		ep.Annotations[corev1.EndpointsOverCapacity] = "truncated"
	} else {
		delete(ep.Annotations, corev1.EndpointsOverCapacity)
	}
	return ep
}

// endpointsEqual says whether the Endpoints object has the desired
// content.
func endpointsEqual(cur, want *corev1.Endpoints) bool {
	return maps.Equal(cur.Labels, want.Labels) &&
		maps.Equal(cur.Annotations, want.Annotations) &&
		apiequality.Semantic.DeepEqual(cur.Subsets, want.Subsets)
}
