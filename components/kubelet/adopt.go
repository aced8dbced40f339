package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// removeOrphans runs once at start, before any pod worker: it removes
// the sandboxes, containers and pod directories of pods that are no
// longer bound to this node (deleted while the kubelet was down). What
// belongs to pods that still are is left alone; their workers adopt it,
// and a running container whose spec hash matches keeps running.
func (k *Kubelet) removeOrphans(ctx context.Context, pods []corev1.Pod) error {
	live := map[types.UID]bool{}
	for i := range pods {
		live[pods[i].UID] = true
	}
	sbs, err := k.rt.ListPodSandboxes(ctx, runtime.SandboxFilter{})
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	cs, err := k.rt.ListContainers(ctx, runtime.ContainerFilter{})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	orphans := map[types.UID]*podRuntime{}
	get := func(uid types.UID) *podRuntime {
		pr, ok := orphans[uid]
		if !ok {
			pr = &podRuntime{}
			orphans[uid] = pr
		}
		return pr
	}
	for _, sb := range sbs {
		if uid := types.UID(sandboxPodUID(sb)); !live[uid] {
			pr := get(uid)
			pr.sandboxes = append(pr.sandboxes, sb)
		}
	}
	for _, c := range cs {
		uid := types.UID(c.PodUID)
		if uid == "" {
			uid = types.UID(c.Labels[runtime.LabelPodUID])
		}
		if !live[uid] {
			pr := get(uid)
			pr.all = append(pr.all, c)
		}
	}
	var errs []error
	for uid, pr := range orphans {
		k.log.Info("removing orphaned pod", logKeyPod, uid, "containers", len(pr.all), "sandboxes", len(pr.sandboxes))
		if err := k.removePod(ctx, uid, pr); err != nil {
			errs = append(errs, err)
		}
	}
	// Directories of pods whose containers were already gone.
	entries, _ := os.ReadDir(filepath.Join(k.cfg.RootDir, "pods"))
	for _, e := range entries {
		if uid := types.UID(e.Name()); e.IsDir() && !live[uid] && orphans[uid] == nil {
			if err := removePodDir(k.podDir(uid)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
