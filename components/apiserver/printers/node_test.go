package printers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func node(name string, labels map[string]string, ready corev1.ConditionStatus, unschedulable bool) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: objMeta(name),
		Spec:       corev1.NodeSpec{Unschedulable: unschedulable},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeHostName, Address: name},
				{Type: corev1.NodeInternalIP, Address: "192.168.1.10"},
			},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:          "v1.32.0-kiln",
				OSImage:                 "Debian GNU/Linux 12 (bookworm)",
				KernelVersion:           "6.1.0-18-amd64",
				ContainerRuntimeVersion: "containerd://2.0.2",
			},
		},
	}
	n.Namespace = ""
	n.Labels = labels
	if ready != "" {
		n.Status.Conditions = []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
			{Type: corev1.NodeReady, Status: ready},
		}
	}
	return n
}

func TestRow_nodes(t *testing.T) {
	wide := []interface{}{"192.168.1.10", "<none>", "Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64", "containerd://2.0.2"}
	cells := func(name, status, roles string) []interface{} {
		return append([]interface{}{name, status, roles, "5m", "v1.32.0-kiln"}, wide...)
	}
	bare := node("bare", nil, "", false)
	bare.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeExternalIP, Address: "203.0.113.7"}}
	bare.Status.NodeInfo = corev1.NodeSystemInfo{}

	runRows(t, "", "nodes", []rowCase{
		{
			name: "ready control plane",
			obj:  node("cp-1", map[string]string{"node-role.kubernetes.io/control-plane": "", "kubernetes.io/os": "linux"}, corev1.ConditionTrue, false),
			want: cells("cp-1", "Ready", "control-plane"),
		},
		{
			name: "not ready and cordoned",
			obj:  node("w-1", nil, corev1.ConditionFalse, true),
			want: cells("w-1", "NotReady,SchedulingDisabled", "<none>"),
		},
		{
			name: "ready unknown reads not ready",
			obj:  node("w-2", nil, corev1.ConditionUnknown, false),
			want: cells("w-2", "NotReady", "<none>"),
		},
		{
			name: "no ready condition",
			obj:  node("w-3", nil, "", false),
			want: cells("w-3", "Unknown", "<none>"),
		},
		{
			name: "roles sorted and unique",
			obj: node("w-4", map[string]string{
				"node-role.kubernetes.io/worker":        "",
				"node-role.kubernetes.io/control-plane": "",
				"node-role.kubernetes.io/":              "",
				"kubernetes.io/role":                    "worker",
			}, corev1.ConditionTrue, false),
			want: cells("w-4", "Ready", "control-plane,worker"),
		},
		{
			name: "nothing reported",
			obj:  bare,
			want: []interface{}{"bare", "Unknown", "<none>", "5m", "", "<none>", "203.0.113.7", "<unknown>", "<unknown>", "<unknown>"},
		},
	})
}
