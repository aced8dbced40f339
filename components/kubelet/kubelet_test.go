package kubelet_test

// Tests of the kubelet against a real etcd and API server (testenv) with
// the simulated runtime: no root, no containerd. Durations (back-off,
// lease, relist) are shortened through Config.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/kubelet/simulated"
)

func TestNew_validates(t *testing.T) {
	_, err := kubelet.New(kubelet.Config{})
	if err == nil {
		t.Fatal("New accepted an empty Config")
	}
	for _, field := range []string{"Client", "NodeName", "Runtime", "RootDir", "TLS"} {
		if !strings.Contains(err.Error(), "Config."+field) {
			t.Errorf("error %q does not name Config.%s", err, field)
		}
	}
}

func TestKubelet_Run_registersNodeAndRenewsLease(t *testing.T) {
	c := startCluster(t)
	rt := simulated.New(simulated.Config{})
	n := startKubelet(t, c, "node-reg", rt, "", func(cfg *kubelet.Config) {
		cfg.NodeLabels = map[string]string{"pool": "sim"}
		cfg.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64")}
		cfg.NoHostPressure = false
	})
	ctx := t.Context()
	nodes := c.Clientset.CoreV1().Nodes()

	// Without a pod CIDR the simulated network is not ready: the Node is
	// registered, not Ready, and says why.
	var nd *corev1.Node
	eventually(t, "node status posted", func() bool {
		var err error
		nd, err = nodes.Get(ctx, n.name, metav1.GetOptions{})
		return err == nil && len(nd.Status.Conditions) == 4
	})
	ready := nodeCondition(nd, corev1.NodeReady)
	if ready.Status != corev1.ConditionFalse || !strings.Contains(ready.Message, "no pod CIDR") {
		t.Errorf("Ready = %s %q, want False saying no pod CIDR", ready.Status, ready.Message)
	}
	for _, ct := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		if got := nodeCondition(nd, ct); got.Status != corev1.ConditionFalse || got.Reason == "" {
			t.Errorf("%s = %s (%s), want False with a reason", ct, got.Status, got.Reason)
		}
	}
	if got := nd.Status.Capacity[corev1.ResourceCPU]; got.Cmp(resource.MustParse("64")) != 0 {
		t.Errorf("capacity cpu = %s, want the override 64", got.String())
	}
	if got := nd.Status.Capacity[corev1.ResourcePods]; got.Value() != 110 {
		t.Errorf("capacity pods = %s, want 110", got.String())
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		if q, ok := nd.Status.Capacity[r]; !ok || q.IsZero() {
			t.Errorf("capacity %s = %v, want the host's", r, q.String())
		}
		if _, ok := nd.Status.Allocatable[r]; !ok {
			t.Errorf("allocatable has no %s", r)
		}
	}
	for k, v := range map[string]string{"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "pool": "sim"} {
		if nd.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, nd.Labels[k], v)
		}
	}
	if nd.Labels["kubernetes.io/arch"] == "" {
		t.Error("no kubernetes.io/arch label")
	}
	wantAddrs := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: n.name}}
	if len(nd.Status.Addresses) != 2 || nd.Status.Addresses[0] != wantAddrs[0] || nd.Status.Addresses[1] != wantAddrs[1] {
		t.Errorf("addresses = %v, want %v", nd.Status.Addresses, wantAddrs)
	}
	if nd.Status.DaemonEndpoints.KubeletEndpoint.Port == 0 {
		t.Error("no kubelet endpoint port")
	}
	info := nd.Status.NodeInfo
	if info.ContainerRuntimeVersion != "sim://0.1.0" || info.KubeletVersion == "" || info.KernelVersion == "" || info.OSImage == "" {
		t.Errorf("nodeInfo = %+v", info)
	}

	// The node IPAM controller's part, played by the test: a pod CIDR
	// makes the network ready.
	nd.Spec.PodCIDR = "10.42.7.0/24"
	if _, err := nodes.Update(ctx, nd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node Ready after the pod CIDR is set", func() bool {
		nd, err := nodes.Get(ctx, n.name, metav1.GetOptions{})
		return err == nil && nodeReady(nd)
	})
	pod := c.createPod(t, newPod("cidr", n.name, nil))
	pod = c.waitPod(t, ns, pod.Name, "running", func(p *corev1.Pod) bool { return p.Status.PodIP != "" })
	if !strings.HasPrefix(pod.Status.PodIP, "10.42.7.") {
		t.Errorf("pod IP %s is not from the pod CIDR 10.42.7.0/24", pod.Status.PodIP)
	}

	// The Lease is renewed every quarter of its 400ms.
	leases := c.Clientset.CoordinationV1().Leases("kube-node-lease")
	var first time.Time
	eventually(t, "lease created", func() bool {
		l, err := leases.Get(ctx, n.name, metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil {
			return false
		}
		first = l.Spec.RenewTime.Time
		return *l.Spec.HolderIdentity == n.name && *l.Spec.LeaseDurationSeconds == 1 && len(l.OwnerReferences) == 1
	})
	eventually(t, "lease renewed", func() bool {
		l, err := leases.Get(ctx, n.name, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime.After(first)
	})
}

func nodeCondition(n *corev1.Node, t corev1.NodeConditionType) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func TestKubelet_syncPod_runningAndReady(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-run")
	pod := newPod("web", n.name, nil,
		corev1.Container{Name: "web", Image: "example.com/web:v1"},
		corev1.Container{Name: "sidecar", Image: "busybox"})
	pod = c.createPod(t, pod)
	start := time.Now()
	got := c.waitPod(t, ns, pod.Name, "Running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && podReady(p)
	})
	t.Logf("pod Running and Ready %v after create", time.Since(start).Round(time.Millisecond))
	s := got.Status
	if s.PodIP != "127.0.0.1" || len(s.PodIPs) != 1 || s.PodIPs[0].IP != "127.0.0.1" {
		t.Errorf("podIP %q podIPs %v", s.PodIP, s.PodIPs)
	}
	if s.HostIP != "127.0.0.1" || len(s.HostIPs) != 1 {
		t.Errorf("hostIP %q hostIPs %v", s.HostIP, s.HostIPs)
	}
	if s.StartTime == nil || s.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("startTime %v qosClass %q", s.StartTime, s.QOSClass)
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		if condition(got, ct) != corev1.ConditionTrue {
			t.Errorf("condition %s = %q, want True", ct, condition(got, ct))
		}
	}
	if len(s.ContainerStatuses) != 2 || s.ContainerStatuses[0].Name != "sidecar" || s.ContainerStatuses[1].Name != "web" {
		t.Fatalf("containerStatuses %+v, want sidecar and web, by name", s.ContainerStatuses)
	}
	for _, cs := range s.ContainerStatuses {
		if cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started || cs.RestartCount != 0 {
			t.Errorf("%s: %+v", cs.Name, cs)
		}
		if !strings.HasPrefix(cs.ContainerID, "sim://") || !strings.Contains(cs.ImageID, "@sha256:") {
			t.Errorf("%s: containerID %q imageID %q", cs.Name, cs.ContainerID, cs.ImageID)
		}
	}
	if img := containerStatus(got, "sidecar").Image; img != "busybox" {
		t.Errorf("image = %q, want the spec's", img)
	}
	eventually(t, "events Pulling, Pulled, Created, Started", func() bool {
		return hasAll(c.events(t, got), "Pulling", "Pulled", "Created", "Started")
	})

	// An unchanged pod is not written again.
	rv := got.ResourceVersion
	time.Sleep(500 * time.Millisecond)
	again, err := c.Clientset.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != rv {
		t.Errorf("pod rewritten without a change: resourceVersion %s -> %s; %s", rv, again.ResourceVersion, describe(again))
	}
}

// A hundred hollow nodes fit in one test process: each registers, gets
// Ready and runs a pod. Under the race detector, which makes everything
// several times slower on a small machine, 25 do.
func TestKubelet_Run_hundredHollowNodes(t *testing.T) {
	nodes := 100
	if raceEnabled {
		nodes = 25
	}
	c := startCluster(t)
	startHollow(t, c, nodes)
	for i := range nodes {
		c.createPod(t, newPod(fmt.Sprintf("h%03d", i), fmt.Sprintf("hollow-%03d", i), nil))
	}
	eventually(t, "a Running pod on every hollow node", func() bool {
		l, err := c.Clientset.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		n := 0
		for i := range l.Items {
			if p := &l.Items[i]; p.Status.Phase == corev1.PodRunning && strings.HasPrefix(p.Status.PodIP, "10.42.") {
				n++
			}
		}
		return n == nodes
	})
}
