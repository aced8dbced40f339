package kubelet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// terminatePod ends a pod whose deletion started: every running container
// gets its preStop hook and SIGTERM, then SIGKILL once the grace period
// (counted from when this kubelet first saw the deletion) runs out; then
// the sandbox stops, the final status is written and the pod object is
// deleted for good (grace period 0, UID precondition), as the kubelet's
// status manager does. What is left on the node goes once the pod has
// left the API (cleanupPod). It returns when to look again.
func (k *Kubelet) terminatePod(ctx context.Context, w *podWorker, pod *corev1.Pod) time.Duration {
	st := &w.state
	log := k.log.With(logKeyPod, podKey(pod))
	if st.killStarted.IsZero() {
		st.killStarted = k.now()
	}
	grace := podGrace(pod)
	if g := pod.DeletionGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	pr, err := k.inspect(ctx, pod.UID)
	if err != nil {
		log.Warn("inspecting pod", logKeyError, err)
		return k.cfg.BackoffBase
	}
	if err := k.killPod(ctx, pod, pr, st.killStarted.Add(grace)); err != nil {
		log.Warn("killing pod", logKeyError, err)
		return k.cfg.BackoffBase
	}
	if pr, err = k.inspect(ctx, pod.UID); err != nil {
		log.Warn("inspecting pod", logKeyError, err)
		return k.cfg.BackoffBase
	}
	st.terminal = true
	status := k.podStatus(pod, pr, st, true)
	if err := k.writeStatus(ctx, w, pod, status); err != nil {
		log.Warn("writing final pod status", logKeyError, err)
	}
	if !st.deleteSent {
		uid := pod.UID
		err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64(0)),
			Preconditions:      &metav1.Preconditions{UID: &uid},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			log.Warn("deleting pod", logKeyError, err)
			return k.cfg.BackoffBase
		}
		st.deleteSent = true
		log.Debug("pod terminated and deleted")
	}
	// The informer's delete event wakes the worker for the cleanup.
	return 0
}

// killPod stops the pod's running containers in parallel, each after its
// preStop hook, all within deadline (but at least minGracePeriod each),
// then stops its sandboxes.
func (k *Kubelet) killPod(ctx context.Context, pod *corev1.Pod, pr *podRuntime, deadline time.Time) error {
	k.probes.stopPod(pod.UID)
	var wg sync.WaitGroup
	errs := make([]error, len(pr.all))
	for i, c := range pr.all {
		if c.State != runtime.ContainerRunning {
			continue
		}
		wg.Go(func() {
			errs[i] = k.killContainer(ctx, pod, c, pr, deadline)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, sb := range pr.sandboxes {
		if sb.State != runtime.SandboxReady {
			continue
		}
		if err := k.rt.StopPodSandbox(ctx, sb.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			return fmt.Errorf("stop sandbox %s: %w", sb.ID, err)
		}
	}
	return nil
}

// killContainer runs a container's preStop hook, then stops it with what
// is left of the grace period.
func (k *Kubelet) killContainer(ctx context.Context, pod *corev1.Pod, c *runtime.ContainerStatus, pr *podRuntime, deadline time.Time) error {
	name := containerName(c)
	spec := findContainer(pod, name)
	k.event(pod, name, corev1.EventTypeNormal, "Killing", "Stopping container %s", name)
	if spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil {
		ip := ""
		if pr.sandbox != nil {
			ip = pr.sandbox.IP
		}
		if msg, err := k.runHook(ctx, pod, spec, c.ID, ip, spec.Lifecycle.PreStop, time.Until(deadline)); err != nil {
			k.event(pod, name, corev1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %s", msg)
		}
	}
	timeout := max(time.Until(deadline).Round(time.Second), minGracePeriod)
	if err := k.rt.StopContainer(ctx, c.ID, timeout); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return fmt.Errorf("stop container %s: %w", name, err)
	}
	return nil
}

// cleanupPod removes everything of a pod that left the API: containers
// (killed first if a forced delete left them running), sandboxes, files
// and back-off entries. It reports the worker done once all is gone.
func (k *Kubelet) cleanupPod(ctx context.Context, w *podWorker, pod *corev1.Pod) (time.Duration, bool) {
	st := &w.state
	log := k.log.With(logKeyPod, podKey(pod))
	pr, err := k.inspect(ctx, pod.UID)
	if err != nil {
		log.Warn("inspecting pod", logKeyError, err)
		return k.cfg.BackoffBase, false
	}
	if st.killStarted.IsZero() {
		st.killStarted = k.now()
	}
	grace := time.Duration(0)
	if g := pod.DeletionGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if err := k.killPod(ctx, pod, pr, st.killStarted.Add(grace)); err != nil {
		log.Warn("killing pod", logKeyError, err)
		return k.cfg.BackoffBase, false
	}
	if pr, err = k.inspect(ctx, pod.UID); err != nil {
		log.Warn("inspecting pod", logKeyError, err)
		return k.cfg.BackoffBase, false
	}
	if err := k.removePod(ctx, pod.UID, pr); err != nil {
		log.Warn("removing pod", logKeyError, err)
		return k.cfg.BackoffBase, false
	}
	for _, c := range allContainers(pod) {
		k.crashBackoff.DeleteEntry(crashKey(pod, c))
		k.pullBackoff.DeleteEntry(string(pod.UID) + "/" + c.Image)
	}
	log.Debug("pod cleaned up")
	return 0, true
}

// removePod removes a pod's containers, sandboxes and directory.
func (k *Kubelet) removePod(ctx context.Context, uid types.UID, pr *podRuntime) error {
	if err := k.removeContainers(ctx, pr.all, minGracePeriod); err != nil {
		return err
	}
	for _, sb := range pr.sandboxes {
		if err := k.removeSandbox(ctx, sb.ID); err != nil {
			return err
		}
	}
	k.probes.stopPod(uid)
	if err := removePodDir(k.podDir(uid)); err != nil {
		return fmt.Errorf("remove pod directory: %w", err)
	}
	return nil
}
