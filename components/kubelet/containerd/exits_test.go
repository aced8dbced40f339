package containerd

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// TestRuntime_exitIsNeverReportedLost: while containers exit, readers
// poll their status as the kubelet does (ContainerStatus, and
// ListContainers with and without a filter). The exit is recorded in the
// record's labels and then the task is deleted; a reader that read the
// record before the one and the task after the other saw a started
// container with neither, and reported it lost (exit 255, "the
// container's task is gone") instead of its real exit. The e2e test's
// OOM check met that as a flake.
func TestRuntime_exitIsNeverReportedLost(t *testing.T) {
	n := startNode(t, nodeOptions{})
	if err := n.rt.SetPodCIDR(t.Context(), n.cidr); err != nil {
		t.Fatal(err)
	}
	const containers = 12
	sb := n.sandbox(t, "exits", false)
	var ids []string
	for i := range containers {
		ids = append(ids, n.create(t, sb, runtime.ContainerConfig{
			Name:    fmt.Sprintf("exit-%02d", i),
			Command: []string{"/demo-web", "exit", "3"},
		}))
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var lost atomic.Value
	var reads atomic.Int64
	check := func(st *runtime.ContainerStatus) {
		reads.Add(1)
		if st.State == runtime.ContainerExited && (st.ExitCode != 3 || st.Message == lostMessage) {
			lost.Store(fmt.Sprintf("container %s: exit %d %q", st.Name, st.ExitCode, st.Message))
		}
	}
	var wg sync.WaitGroup
	for _, f := range []runtime.ContainerFilter{{}, {PodUID: sb.PodUID}} {
		wg.Go(func() {
			for ctx.Err() == nil {
				cs, err := n.rt.ListContainers(ctx, f)
				if err != nil {
					continue
				}
				for _, st := range cs {
					check(st)
				}
			}
		})
	}
	for _, id := range ids {
		wg.Go(func() {
			for ctx.Err() == nil {
				if st, err := n.rt.ContainerStatus(ctx, id); err == nil {
					check(st)
				}
			}
		})
	}
	for _, id := range ids {
		if err := n.rt.StartContainer(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		n.waitState(t, id, runtime.ContainerExited, 30*time.Second)
	}
	// Every exit is recorded (its task deleted) once the labels say so;
	// keep reading until then.
	eventually(t, 30*time.Second, func() error {
		for _, id := range ids {
			c, err := mustClient(t, n.rt).LoadContainer(t.Context(), id)
			if err != nil {
				return err
			}
			labels, err := c.Labels(t.Context())
			if err != nil {
				return err
			}
			if labels[labelExit] == "" {
				return fmt.Errorf("exit of %s not recorded yet", id)
			}
			if _, err := c.Task(t.Context(), nil); err == nil {
				return fmt.Errorf("task of %s not deleted yet", id)
			}
		}
		return nil
	})
	cancel()
	wg.Wait()
	if v := lost.Load(); v != nil {
		t.Fatalf("an exit was read as lost: %s (of %d reads)", v, reads.Load())
	}
	t.Logf("%d status reads while %d containers exited", reads.Load(), containers)
}
