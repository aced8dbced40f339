package endpointslice

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// testService selects app=web; port "web" 80 targets the container port
// named "http".
func testService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "svc-uid", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{
			Selector:   map[string]string{"app": "web"},
			ClusterIP:  "10.43.0.10",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Name: "web", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}},
		},
	}
}

// testPod is a running pod on node-1 with container port http=8080.
func testPod(name, ip string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
			Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}},
		},
	}
}

// testPods are n ready pods p-000... with IPs 10.42.x.y.
func testPods(n int) []*corev1.Pod {
	pods := make([]*corev1.Pod, n)
	for i := range pods {
		pods[i] = testPod(fmt.Sprintf("p-%03d", i), fmt.Sprintf("10.42.%d.%d", i/250, i%250+1), true)
	}
	return pods
}

// apply plays a plan against the existing slices as the API server
// would, naming created slices slice-<n>.
func apply(existing []*discoveryv1.EndpointSlice, plan slicePlan) []*discoveryv1.EndpointSlice {
	byName := map[string]*discoveryv1.EndpointSlice{}
	var order []string
	for _, s := range existing {
		byName[s.Name] = s
		order = append(order, s.Name)
	}
	for _, s := range plan.update {
		byName[s.Name] = s
	}
	for _, s := range plan.delete {
		delete(byName, s.Name)
	}
	for i, s := range plan.create {
		s = s.DeepCopy()
		s.Name = fmt.Sprintf("%sgen%d-%d", s.GenerateName, len(order), i)
		s.UID = types.UID("uid-" + s.Name)
		byName[s.Name] = s
		order = append(order, s.Name)
	}
	var out []*discoveryv1.EndpointSlice
	for _, n := range order {
		if s, ok := byName[n]; ok {
			out = append(out, s)
		}
	}
	return out
}

// planCounts summarises a plan as "create/update/delete".
func planCounts(p slicePlan) string {
	return fmt.Sprintf("%d/%d/%d", len(p.create), len(p.update), len(p.delete))
}

// endpointCounts are the numbers of endpoints of the slices, in order.
func endpointCounts(list []*discoveryv1.EndpointSlice) []int {
	out := make([]int, len(list))
	for i, s := range list {
		out[i] = len(s.Endpoints)
	}
	return out
}
