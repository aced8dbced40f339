package endpointslice

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPlanSlices_chunks(t *testing.T) {
	svc := testService()
	plan := planSlices(svc, desiredGroups(svc, testPods(250)), nil, 100)
	if got := planCounts(plan); got != "3/0/0" {
		t.Fatalf("plan %s, want 3 creates", got)
	}
	if got := endpointCounts(plan.create); !slices.Equal(got, []int{100, 100, 50}) {
		t.Errorf("endpoints per slice %v, want [100 100 50]", got)
	}
	for _, s := range plan.create {
		ref := metav1.GetControllerOf(s)
		if s.GenerateName != "web-" || s.Namespace != "ns" || ref == nil || ref.UID != svc.UID || ref.Kind != "Service" ||
			s.Labels[discoveryv1.LabelServiceName] != "web" || s.Labels[discoveryv1.LabelManagedBy] != ControllerName || s.Labels["tier"] != "front" {
			t.Errorf("slice meta %+v", s.ObjectMeta)
		}
		if s.AddressType != discoveryv1.AddressTypeIPv4 || len(s.Ports) != 1 || *s.Ports[0].Port != 8080 || *s.Ports[0].Name != "web" {
			t.Errorf("slice %s ports %+v", s.AddressType, s.Ports)
		}
	}
}

// TestPlanSlices_inStepWritesNothing: once applied, planning again with
// nothing changed writes nothing, whatever the order of the slices.
func TestPlanSlices_inStepWritesNothing(t *testing.T) {
	svc := testService()
	pods := testPods(250)
	existing := apply(nil, planSlices(svc, desiredGroups(svc, pods), nil, 100))
	slices.Reverse(existing)
	slices.Reverse(pods)
	if plan := planSlices(svc, desiredGroups(svc, pods), existing, 100); !plan.empty() {
		t.Errorf("plan %s with nothing changed", planCounts(plan))
	}
}

// TestPlanSlices_fewestWrites: each change rewrites only the slices it
// must.
func TestPlanSlices_fewestWrites(t *testing.T) {
	svc := testService()
	base := testPods(12) // two slices of 5 and one of 2
	tests := []struct {
		name   string
		pods   func() []*corev1.Pod
		counts string
		sizes  []int
	}{
		{"one pod not ready", func() []*corev1.Pod {
			p := slices.Clone(base)
			p[1] = testPod(p[1].Name, p[1].Status.PodIP, false)
			return p
		}, "0/1/0", []int{5, 5, 2}},
		{"one pod added fills the last slice", func() []*corev1.Pod {
			return append(slices.Clone(base), testPod("p-100", "10.42.9.1", true))
		}, "0/1/0", []int{5, 5, 3}},
		{"a pod replaced goes where the old one was", func() []*corev1.Pod {
			p := slices.Clone(base[1:])
			return append(p, testPod("p-100", "10.42.9.1", true))
		}, "0/1/0", []int{5, 5, 2}},
		{"pods removed from two slices", func() []*corev1.Pod {
			return slices.Concat(base[1:5], base[6:])
		}, "0/2/0", []int{4, 4, 2}},
		{"last slice emptied is deleted", func() []*corev1.Pod {
			return base[:10]
		}, "0/0/1", []int{5, 5}},
		{"overflow makes a new slice", func() []*corev1.Pod {
			return append(slices.Clone(base), testPod("p-100", "10.42.9.1", true), testPod("p-101", "10.42.9.2", true), testPod("p-102", "10.42.9.3", true), testPod("p-103", "10.42.9.4", true))
		}, "1/1/0", []int{5, 5, 5, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			existing := apply(nil, planSlices(svc, desiredGroups(svc, base), nil, 5))
			if got := endpointCounts(existing); !slices.Equal(got, []int{5, 5, 2}) {
				t.Fatalf("base slices %v", got)
			}
			pods := tc.pods()
			plan := planSlices(svc, desiredGroups(svc, pods), existing, 5)
			if got := planCounts(plan); got != tc.counts {
				t.Errorf("plan %s, want %s", got, tc.counts)
			}
			after := apply(existing, plan)
			if got := endpointCounts(after); !slices.Equal(got, tc.sizes) {
				t.Errorf("slices %v, want %v", got, tc.sizes)
			}
			if again := planSlices(svc, desiredGroups(svc, pods), after, 5); !again.empty() {
				t.Errorf("second plan %s, want none", planCounts(again))
			}
			want := map[string]bool{}
			for _, p := range pods {
				want[p.Name] = true
			}
			for _, s := range after {
				for _, ep := range s.Endpoints {
					if !want[ep.TargetRef.Name] {
						t.Errorf("endpoint %s not wanted or listed twice", ep.TargetRef.Name)
					}
					delete(want, ep.TargetRef.Name)
				}
			}
			if len(want) > 0 {
				t.Errorf("pods without endpoints: %v", want)
			}
		})
	}
}

// TestPlanSlices_portChangeReusesSlice: a new port set empties the old
// slice and needs a new one: the old one is updated instead of deleted
// and recreated.
func TestPlanSlices_portChangeReusesSlice(t *testing.T) {
	svc := testService()
	pods := testPods(3)
	existing := apply(nil, planSlices(svc, desiredGroups(svc, pods), nil, 100))
	svc.Spec.Ports[0].TargetPort = intstr.FromInt32(9090)
	plan := planSlices(svc, desiredGroups(svc, pods), existing, 100)
	if got := planCounts(plan); got != "0/1/0" {
		t.Fatalf("plan %s, want one update", got)
	}
	if s := plan.update[0]; s.Name != existing[0].Name || *s.Ports[0].Port != 9090 || len(s.Endpoints) != 3 {
		t.Errorf("update %s ports %v endpoints %d", s.Name, s.Ports, len(s.Endpoints))
	}
}

// TestPlanSlices_earlierServiceReplaced: slices owned by an earlier
// Service of the same name are taken over or deleted.
func TestPlanSlices_earlierServiceReplaced(t *testing.T) {
	old := testService()
	old.UID = "old-uid"
	existing := apply(nil, planSlices(old, desiredGroups(old, testPods(150)), nil, 100))
	svc := testService()
	plan := planSlices(svc, desiredGroups(svc, testPods(3)), existing, 100)
	if got := planCounts(plan); got != "0/1/1" {
		t.Fatalf("plan %s, want one update and one delete", got)
	}
	if ref := metav1.GetControllerOf(plan.update[0]); ref.UID != svc.UID || len(plan.update[0].Endpoints) != 3 {
		t.Errorf("update owner %s endpoints %d", ref.UID, len(plan.update[0].Endpoints))
	}
}

// TestPlanSlices_placeholder: a Service selecting nothing keeps one empty
// IPv4 slice without ports; it becomes a real slice when pods come.
func TestPlanSlices_placeholder(t *testing.T) {
	svc := testService()
	plan := planSlices(svc, desiredGroups(svc, nil), nil, 100)
	if got := planCounts(plan); got != "1/0/0" {
		t.Fatalf("plan %s, want one create", got)
	}
	if s := plan.create[0]; s.AddressType != discoveryv1.AddressTypeIPv4 || len(s.Ports) != 0 || s.Endpoints == nil || len(s.Endpoints) != 0 {
		t.Errorf("placeholder %+v", s)
	}
	existing := apply(nil, plan)
	if again := planSlices(svc, desiredGroups(svc, nil), existing, 100); !again.empty() {
		t.Errorf("placeholder replanned: %s", planCounts(again))
	}
	withPods := planSlices(svc, desiredGroups(svc, testPods(2)), existing, 100)
	if got := planCounts(withPods); got != "0/1/0" {
		t.Errorf("pods came: plan %s, want the placeholder updated", got)
	}
	existing = apply(existing, withPods)
	if got := planCounts(planSlices(svc, desiredGroups(svc, nil), existing, 100)); got != "0/1/0" {
		t.Errorf("pods went: plan %s, want the slice emptied in place", got)
	}
}

// TestPlanSlices_duplicateEndpoint: an endpoint listed in two slices
// stays in one.
func TestPlanSlices_duplicateEndpoint(t *testing.T) {
	svc := testService()
	pods := testPods(2)
	existing := apply(nil, planSlices(svc, desiredGroups(svc, pods), nil, 100))
	dup := existing[0].DeepCopy()
	dup.Name, dup.UID = "web-dup", "uid-dup"
	existing = append(existing, dup)
	plan := planSlices(svc, desiredGroups(svc, pods), existing, 100)
	if got := planCounts(plan); got != "0/0/1" {
		t.Errorf("plan %s, want one copy deleted", got)
	}
	if got := endpointCounts(apply(existing, plan)); !slices.Equal(got, []int{2}) {
		t.Errorf("slices %v, want [2]", got)
	}
}

func TestDesiredGroups_endpoints(t *testing.T) {
	svc := testService()
	terminating := testPod("term", "10.42.0.4", true)
	terminating.DeletionTimestamp = &metav1.Time{}
	noPort := testPod("noport", "10.42.0.5", true)
	noPort.Spec.Containers[0].Ports = nil
	noIP := testPod("noip", "", false)
	noIP.Status.PodIPs = nil
	done := testPod("done", "10.42.0.6", false)
	done.Status.Phase = corev1.PodSucceeded
	named := testPod("named", "10.42.0.7", true)
	named.Spec.Hostname, named.Spec.Subdomain = "db-0", "web"
	v6 := testPod("v6", "fd00::1", true)
	pods := []*corev1.Pod{testPod("ready", "10.42.0.2", true), testPod("slow", "10.42.0.3", false), terminating, noPort, noIP, done, named, v6}

	tests := []struct {
		name    string
		publish bool
		want    map[string][]string
	}{
		{"default", false, map[string][]string{
			"IPv4|web/TCP/8080/": {"named 10.42.0.7 true/true/false host=db-0", "ready 10.42.0.2 true/true/false", "slow 10.42.0.3 false/false/false", "term 10.42.0.4 false/true/true"},
			"IPv4|":              {"noport 10.42.0.5 true/true/false"},
		}},
		{"publishNotReadyAddresses", true, map[string][]string{
			"IPv4|web/TCP/8080/": {"named 10.42.0.7 true/true/false host=db-0", "ready 10.42.0.2 true/true/false", "slow 10.42.0.3 true/false/false", "term 10.42.0.4 true/true/true"},
			"IPv4|":              {"noport 10.42.0.5 true/true/false"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc.Spec.PublishNotReadyAddresses = tc.publish
			got := map[string][]string{}
			for key, g := range desiredGroups(svc, pods) {
				for _, ep := range g.endpoints {
					s := fmt.Sprintf("%s %s %v/%v/%v", ep.TargetRef.Name, ep.Addresses[0], *ep.Conditions.Ready, *ep.Conditions.Serving, *ep.Conditions.Terminating)
					if ep.Hostname != nil {
						s += " host=" + *ep.Hostname
					}
					if ep.NodeName == nil || *ep.NodeName != "node-1" {
						t.Errorf("%s: nodeName %v", s, ep.NodeName)
					}
					got[key] = append(got[key], s)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("groups\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

func TestAddressTypes(t *testing.T) {
	tests := []struct {
		name      string
		clusterIP string
		families  []corev1.IPFamily
		want      []discoveryv1.AddressType
	}{
		{"families", "10.43.0.1", []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}, []discoveryv1.AddressType{"IPv6", "IPv4"}},
		{"v4 cluster IP", "10.43.0.1", nil, []discoveryv1.AddressType{"IPv4"}},
		{"v6 cluster IP", "fd00::10", nil, []discoveryv1.AddressType{"IPv6"}},
		{"headless without families", corev1.ClusterIPNone, nil, []discoveryv1.AddressType{"IPv4", "IPv6"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := &corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: tc.clusterIP, IPFamilies: tc.families}}
			if got := addressTypes(svc); !slices.Equal(got, tc.want) {
				t.Errorf("addressTypes %v, want %v", got, tc.want)
			}
		})
	}
}
