package containerd

import (
	"testing"
	"time"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// TestRuntime_containerStats: a container that holds 40 MiB shows at
// least that as its working set, and the CPU time it spent doing so.
func TestRuntime_containerStats(t *testing.T) {
	n := startNode(t, nodeOptions{})
	sb := n.sandbox(t, "stats", true)
	id := n.run(t, sb, runtime.ContainerConfig{Name: "alloc", Command: []string{"/demo-web", "alloc", "40"}})
	n.waitState(t, id, runtime.ContainerRunning, 20*time.Second)
	const want = 40 << 20
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := n.rt.ContainerStats(t.Context(), id)
		if err != nil {
			t.Fatalf("ContainerStats: %v", err)
		}
		if st.MemoryWorkingSet >= want && st.CPU > 0 {
			t.Logf("working set %d MiB, CPU %v", st.MemoryWorkingSet>>20, st.CPU)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("working set %d bytes, CPU %v; want at least %d bytes and some CPU", st.MemoryWorkingSet, st.CPU, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := n.rt.StopContainer(t.Context(), id, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := n.rt.ContainerStats(t.Context(), "no-such-container"); err == nil {
		t.Error("stats of a missing container")
	}
}
