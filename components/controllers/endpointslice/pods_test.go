package endpointslice

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestFindPort(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{
			{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP}}},
		},
		InitContainers: []corev1.Container{
			{Name: "sidecar", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 15001}}},
			{Name: "init", Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 7000}}},
		},
	}}
	tests := []struct {
		name  string
		port  corev1.ServicePort
		want  int32
		found bool
	}{
		{"number", corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(9000)}, 9000, true},
		{"unset is the port", corev1.ServicePort{Port: 80}, 80, true},
		{"name, protocol defaulted", corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http")}, 8080, true},
		{"name and protocol", corev1.ServicePort{Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")}, 5353, true},
		{"name, other protocol", corev1.ServicePort{Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("dns")}, 0, false},
		{"sidecar port", corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("proxy")}, 15001, true},
		{"plain init container port", corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("setup")}, 0, false},
		{"missing name", corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("grpc")}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, found := findPort(pod, &tc.port)
			if got != tc.want || found != tc.found {
				t.Errorf("findPort = %d, %v; want %d, %v", got, found, tc.want, tc.found)
			}
		})
	}
}

func TestPodEndpointChanged(t *testing.T) {
	base := testPod("p", "10.42.0.2", true)
	tests := []struct {
		name   string
		mutate func(*corev1.Pod)
		want   bool
	}{
		{"annotation only", func(p *corev1.Pod) { p.Annotations = map[string]string{"a": "b"} }, false},
		{"labels", func(p *corev1.Pod) { p.Labels = map[string]string{"app": "other"} }, true},
		{"readiness", func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }, true},
		{"IP", func(p *corev1.Pod) { p.Status.PodIPs = []corev1.PodIP{{IP: "10.42.0.3"}} }, true},
		{"terminal", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }, true},
		{"hostname", func(p *corev1.Pod) { p.Spec.Hostname = "h" }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur := base.DeepCopy()
			tc.mutate(cur)
			if got := podEndpointChanged(base, cur); got != tc.want {
				t.Errorf("podEndpointChanged = %v, want %v", got, tc.want)
			}
		})
	}
}
