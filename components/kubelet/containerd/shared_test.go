package containerd

import (
	"fmt"
	"testing"
	"time"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// TestRuntime_sharedContainerd runs two runtimes, as two kubelets on one
// host would: the second uses the first's containerd (Endpoint) and data
// dir, in its own namespace, with its own bridge and pod CIDR. Each sees
// only its own pods, and both serve.
func TestRuntime_sharedContainerd(t *testing.T) {
	a := startNode(t, nodeOptions{})
	// The second node's /24 is the one after the first's, so the two
	// never collide.
	var x, y int
	if _, err := fmt.Sscanf(a.cidr, "10.%d.%d.0/24", &x, &y); err != nil {
		t.Fatalf("pod CIDR %s: %v", a.cidr, err)
	}
	b := startNode(t, nodeOptions{root: a.root, endpoint: a.rt.Address(), cidr: fmt.Sprintf("10.%d.%d.0/24", x, (y+1)%256)})
	if b.rt.daemon != nil {
		t.Fatal("a runtime with an endpoint supervises a containerd")
	}
	var ids []string
	var ips []string
	for _, n := range []*testNode{a, b} {
		if err := n.rt.SetPodCIDR(t.Context(), n.cidr); err != nil {
			t.Fatal(err)
		}
		sb := n.sandbox(t, "web-"+n.ns, false)
		ids = append(ids, n.run(t, sb, runtime.ContainerConfig{Name: "web"}))
		ips = append(ips, sb.IP)
	}
	for i, n := range []*testNode{a, b} {
		eventually(t, 20*time.Second, func() error {
			_, err := httpGet("http://" + ips[i] + ":8080/")
			return err
		})
		cs, err := n.rt.ListContainers(t.Context(), runtime.ContainerFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 1 || cs[0].ID != ids[i] {
			t.Fatalf("node %d lists %d containers, want only its own", i, len(cs))
		}
		sbs, err := n.rt.ListPodSandboxes(t.Context(), runtime.SandboxFilter{})
		if err != nil || len(sbs) != 1 {
			t.Fatalf("node %d lists %d sandboxes (%v), want 1", i, len(sbs), err)
		}
		if _, err := n.rt.ContainerStatus(t.Context(), ids[1-i]); !isNotFoundErr(err) {
			t.Fatalf("node %d sees the other's container: %v", i, err)
		}
	}
	if a.rt.netName() == b.rt.netName() || a.rt.confFile() == b.rt.confFile() {
		t.Fatalf("shared network names: %s %s", a.rt.netName(), b.rt.confFile())
	}
}
