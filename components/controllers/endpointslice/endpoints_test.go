package endpointslice

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// subsetsString renders subsets as "[ready | notReady | ports]" each.
func subsetsString(subsets []corev1.EndpointSubset) string {
	var b strings.Builder
	for _, ss := range subsets {
		var r, nr, p []string
		for _, a := range ss.Addresses {
			r = append(r, a.IP)
		}
		for _, a := range ss.NotReadyAddresses {
			nr = append(nr, a.IP)
		}
		for _, pt := range ss.Ports {
			p = append(p, fmt.Sprintf("%s:%d/%s", pt.Name, pt.Port, pt.Protocol))
		}
		fmt.Fprintf(&b, "[%s | %s | %s]", strings.Join(r, ","), strings.Join(nr, ","), strings.Join(p, ","))
	}
	return b.String()
}

func TestEndpointSubsets(t *testing.T) {
	terminating := testPod("term", "10.42.0.4", true)
	terminating.DeletionTimestamp = &metav1.Time{}
	noPort := testPod("noport", "10.42.0.5", true)
	noPort.Spec.Containers[0].Ports = nil
	base := []*corev1.Pod{testPod("b", "10.42.0.3", true), testPod("a", "10.42.0.2", true), testPod("slow", "10.42.0.9", false), terminating, noPort}

	tests := []struct {
		name   string
		mutate func(*corev1.Service)
		want   string
	}{
		{"named port", func(*corev1.Service) {},
			"[10.42.0.2,10.42.0.3 | 10.42.0.9 | web:8080/TCP]"},
		{"publishNotReadyAddresses", func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true },
			"[10.42.0.2,10.42.0.3,10.42.0.4,10.42.0.9 |  | web:8080/TCP]"},
		{"two ports, one named", func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "metrics", Port: 9100, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9100)})
		}, "[10.42.0.5 |  | metrics:9100/TCP][10.42.0.2,10.42.0.3 | 10.42.0.9 | web:8080/TCP,metrics:9100/TCP]"},
		{"headless without ports", func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone; s.Spec.Ports = nil },
			"[10.42.0.2,10.42.0.3,10.42.0.5 | 10.42.0.9 | ]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := testService()
			tc.mutate(svc)
			subsets, truncated := endpointSubsets(svc, base)
			if got := subsetsString(subsets); got != tc.want || truncated {
				t.Errorf("subsets %s (truncated %v), want %s", got, truncated, tc.want)
			}
		})
	}
}

func TestDesiredEndpoints_truncated(t *testing.T) {
	svc := testService()
	pods := testPods(maxEndpointsAddresses + 10)
	for _, p := range pods[:20] {
		p.Status.Conditions[0].Status = corev1.ConditionFalse
	}
	ep := desiredEndpoints(svc, pods, nil)
	if ep.Annotations[corev1.EndpointsOverCapacity] != "truncated" {
		t.Errorf("annotations %v", ep.Annotations)
	}
	ready, notReady := len(ep.Subsets[0].Addresses), len(ep.Subsets[0].NotReadyAddresses)
	if ready != maxEndpointsAddresses-10 || notReady != 10 {
		t.Errorf("ready %d notReady %d, want %d and 10", ready, notReady, maxEndpointsAddresses-10)
	}
	// Back under capacity, the annotation goes and other annotations stay.
	ep.Annotations["keep"] = "me"
	ep2 := desiredEndpoints(svc, pods[:5], ep)
	if _, ok := ep2.Annotations[corev1.EndpointsOverCapacity]; ok || ep2.Annotations["keep"] != "me" {
		t.Errorf("annotations %v", ep2.Annotations)
	}
	if endpointsEqual(ep, ep2) {
		t.Error("endpointsEqual: different subsets compare equal")
	}
	if !endpointsEqual(ep2, desiredEndpoints(svc, pods[:5], ep2)) {
		t.Error("endpointsEqual: in step but not equal")
	}
}

func TestEndpointsLabels(t *testing.T) {
	svc := testService()
	svc.Labels[corev1.IsHeadlessService] = ""
	l := endpointsLabels(svc)
	if _, ok := l[corev1.IsHeadlessService]; ok || l[discoveryv1.LabelSkipMirror] != "true" || l["tier"] != "front" {
		t.Errorf("labels %v", l)
	}
	if _, ok := svc.Labels[discoveryv1.LabelSkipMirror]; ok {
		t.Error("the Service's labels were changed")
	}
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	if _, ok := endpointsLabels(svc)[corev1.IsHeadlessService]; !ok {
		t.Error("headless label missing")
	}
}
