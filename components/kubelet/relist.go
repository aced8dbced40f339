package kubelet

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// relistLoop lists the runtime's containers and sandboxes every
// RelistPeriod and wakes the worker of every pod whose containers changed
// state, appeared or vanished: how the kubelet learns that a container
// exited (its PLEG). Runtime errors are retried at the next period.
func (k *Kubelet) relistLoop(ctx context.Context) {
	t := time.NewTicker(k.cfg.RelistPeriod)
	defer t.Stop()
	type seen struct {
		pod   types.UID
		state int
	}
	prev := map[string]seen{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cs, err := k.rt.ListContainers(ctx, runtime.ContainerFilter{})
		if err != nil {
			continue
		}
		sbs, err := k.rt.ListPodSandboxes(ctx, runtime.SandboxFilter{})
		if err != nil {
			continue
		}
		cur := make(map[string]seen, len(cs)+len(sbs))
		for _, c := range cs {
			cur["c/"+c.ID] = seen{types.UID(c.PodUID), int(c.State)}
		}
		for _, sb := range sbs {
			cur["s/"+sb.ID] = seen{types.UID(sandboxPodUID(sb)), int(sb.State)}
		}
		woken := map[types.UID]bool{}
		for id, s := range cur {
			if p, ok := prev[id]; (!ok || p.state != s.state) && !woken[s.pod] {
				woken[s.pod] = true
				k.wakePod(s.pod)
			}
		}
		for id, p := range prev {
			if _, ok := cur[id]; !ok && !woken[p.pod] {
				woken[p.pod] = true
				k.wakePod(p.pod)
			}
		}
		prev = cur
	}
}
