package kubelet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// Files of a container under the pod directory: containers/<name>/ holds
// <attempt>.log and <attempt>.termination-log. Logs sit in a directory of
// their own so that no container name (a DNS label, so possibly
// "etc-hosts") can collide with the pod's other files.
const (
	containersDir     = "containers"
	logSuffix         = ".log"
	terminationSuffix = ".termination-log"
)

// containerDir is where a container's logs are kept.
func (k *Kubelet) containerDir(uid types.UID, name string) string {
	return filepath.Join(k.podDir(uid), containersDir, name)
}

// logPath is the log file of one attempt of a container.
func (k *Kubelet) logPath(uid types.UID, name string, attempt uint32) string {
	return filepath.Join(k.containerDir(uid, name), strconv.FormatUint(uint64(attempt), 10)+logSuffix)
}

func (k *Kubelet) terminationPath(uid types.UID, name string, attempt uint32) string {
	return filepath.Join(k.containerDir(uid, name), strconv.FormatUint(uint64(attempt), 10)+terminationSuffix)
}

// containerHash identifies a container's spec; a running container whose
// hash differs from its spec's is restarted.
func containerHash(c *corev1.Container) string {
	b, _ := json.Marshal(c) // a corev1.Container always marshals
	h := fnv.New64a()
	_, _ = h.Write(b)
	return strconv.FormatUint(h.Sum64(), 16)
}

// startContainer pulls the image, creates and starts one container and
// runs its postStart hook. Failures are recorded as the container's
// waiting reason and an Event; it returns when to try again.
func (k *Kubelet) startContainer(ctx context.Context, w *podWorker, pod *corev1.Pod, pr *podRuntime, c *corev1.Container) time.Duration {
	st := &w.state
	sb := pr.sandbox
	if wait, ok := k.ensureImage(ctx, w, pod, c); !ok {
		return wait
	}
	attempt := k.nextAttempt(pod.UID, c.Name, pr)
	cfg, err := k.containerConfig(ctx, pod, c, sb.IP, attempt, w.state.claimPaths)
	if err != nil {
		st.waiting[c.Name] = waiting{reason: "CreateContainerConfigError", message: err.Error()}
		k.event(pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return k.cfg.BackoffBase
	}
	if err := os.MkdirAll(filepath.Dir(cfg.LogPath), 0o750); err != nil {
		st.waiting[c.Name] = waiting{reason: "CreateContainerError", message: err.Error()}
		return k.cfg.BackoffBase
	}
	if target := ephemeralTarget(pod, c.Name); target != "" {
		// kubectl debug --target: the debug container sees the
		// target's processes, as kube's does.
		if t := pr.current(target); t != nil && t.State == runtime.ContainerRunning {
			cfg.PIDNamespaceOf = t.ID
		}
	}
	id, err := k.rt.CreateContainer(ctx, sb.ID, cfg)
	if err != nil {
		st.waiting[c.Name] = waiting{reason: "CreateContainerError", message: err.Error()}
		k.event(pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return k.cfg.BackoffBase
	}
	k.event(pod, c.Name, corev1.EventTypeNormal, "Created", "Created container %s", c.Name)
	if err := k.rt.StartContainer(ctx, id); err != nil {
		st.waiting[c.Name] = waiting{reason: "RunContainerError", message: err.Error()}
		k.event(pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		// The crash back-off paces the next try, as for a container that
		// exited at once.
		k.crashBackoff.Next(crashKey(pod, c), k.now())
		_ = k.rt.RemoveContainer(ctx, id)
		return k.cfg.BackoffBase
	}
	k.event(pod, c.Name, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	delete(st.waiting, c.Name)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if msg, err := k.runHook(ctx, pod, c, id, sb.IP, c.Lifecycle.PostStart, podGrace(pod)); err != nil {
			k.event(pod, c.Name, corev1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed: %s", msg)
			k.event(pod, c.Name, corev1.EventTypeNormal, "Killing", "FailedPostStartHook")
			_ = k.rt.StopContainer(ctx, id, max(podGrace(pod), minGracePeriod))
		}
	}
	k.removeOldAttempts(ctx, pod.UID, c.Name, pr)
	return 0
}

// nextAttempt numbers a new container: one more than the newest
// instance, or than the newest log file when the runtime forgot its
// containers (a new sandbox, a runtime that lost its state), so that no
// log file is overwritten and restartCount keeps counting.
func (k *Kubelet) nextAttempt(uid types.UID, name string, pr *podRuntime) uint32 {
	var next uint32
	if l := pr.latest(name); l != nil {
		next = l.Attempt + 1
	}
	entries, _ := os.ReadDir(k.containerDir(uid, name))
	for _, e := range entries {
		if n, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), logSuffix), 10, 32); err == nil && strings.HasSuffix(e.Name(), logSuffix) {
			next = max(next, uint32(n)+1)
		}
	}
	return next
}

// removeOldAttempts removes a container's instances and files older than
// the previous one: the newest two are kept for status (lastState) and
// `kubectl logs --previous`.
func (k *Kubelet) removeOldAttempts(ctx context.Context, uid types.UID, name string, pr *podRuntime) {
	old := pr.byName[name]
	if len(old) < 2 {
		return
	}
	// The container just started is not in pr: old[0] is now the
	// previous instance and everything after it goes.
	for _, c := range old[1:] {
		if c.State == runtime.ContainerRunning {
			continue
		}
		if err := k.rt.RemoveContainer(ctx, c.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			k.log.Debug("removing old container", logKeyContainer, name, logKeyError, err)
			continue
		}
		removeLog(k.logPath(uid, name, c.Attempt))
		_ = os.Remove(k.terminationPath(uid, name, c.Attempt))
	}
}

// removeLog removes a container's log file and the files the runtime
// rotated out of it (path.<time>).
func removeLog(path string) {
	_ = os.Remove(path)
	rotated, _ := filepath.Glob(path + ".*")
	for _, f := range rotated {
		_ = os.Remove(f)
	}
}

// containerConfig turns a container's spec into what the runtime needs:
// resolved env, expanded command and args, mounts, resources and user.
func (k *Kubelet) containerConfig(ctx context.Context, pod *corev1.Pod, c *corev1.Container, podIP string, attempt uint32, claims map[string]string) (*runtime.ContainerConfig, error) {
	env, err := k.containerEnv(ctx, pod, c, podIP)
	if err != nil {
		return nil, err
	}
	vars := make(map[string]string, len(env))
	for _, kv := range env {
		vars[kv.Key] = kv.Value
	}
	mounts, err := k.containerMounts(pod, c, attempt, vars, claims)
	if err != nil {
		return nil, err
	}
	labels := podLabels(pod)
	labels[runtime.LabelContainerName] = c.Name
	cfg := &runtime.ContainerConfig{
		Name:        c.Name,
		Attempt:     attempt,
		Image:       c.Image,
		Command:     expandAll(c.Command, vars),
		Args:        expandAll(c.Args, vars),
		Env:         env,
		WorkingDir:  c.WorkingDir,
		Mounts:      mounts,
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		TTY:         c.TTY,
		LogPath:     k.logPath(pod.UID, c.Name, attempt),
		Resources:   containerResources(c),
		Labels:      labels,
		Annotations: map[string]string{runtime.AnnotationContainerHash: containerHash(c)},
	}
	cfg.RunAsUser, cfg.RunAsGroup = runAs(pod, c)
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.FSGroup != nil {
			cfg.SupplementalGroups = append(cfg.SupplementalGroups, *psc.FSGroup)
		}
		cfg.SupplementalGroups = append(cfg.SupplementalGroups, psc.SupplementalGroups...)
	}
	return cfg, nil
}

// runAs is the container's user and group: its securityContext, else the
// pod's.
func runAs(pod *corev1.Pod, c *corev1.Container) (user, group *int64) {
	if psc := pod.Spec.SecurityContext; psc != nil {
		user, group = psc.RunAsUser, psc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			user = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			group = sc.RunAsGroup
		}
	}
	return user, group
}

// CPU cgroup conversions, as the kubelet's.
const (
	minShares      = 2
	quotaPeriod    = 100000 // µs
	minQuotaPeriod = 1000
)

// containerResources converts requests and limits to cgroup settings.
func containerResources(c *corev1.Container) runtime.Resources {
	var r runtime.Resources
	shares := int64(minShares)
	if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		shares = max(q.MilliValue()*1024/1000, minShares)
	} else if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		shares = max(q.MilliValue()*1024/1000, minShares)
	}
	r.CPUShares = shares
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok && !q.IsZero() {
		r.CPUPeriod = quotaPeriod
		r.CPUQuota = max(q.MilliValue()*quotaPeriod/1000, minQuotaPeriod)
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		r.MemoryLimit = q.Value()
	}
	return r
}

// ensureImage makes the container's image present as its
// imagePullPolicy says, with the kubelet's image pull back-off. It
// reports false (and when to retry) when the container cannot start yet.
func (k *Kubelet) ensureImage(ctx context.Context, w *podWorker, pod *corev1.Pod, c *corev1.Container) (time.Duration, bool) {
	st := &w.state
	present := false
	if _, err := k.rt.ImageStatus(ctx, c.Image); err == nil {
		present = true
	} else if !errors.Is(err, runtime.ErrNotFound) {
		st.waiting[c.Name] = waiting{reason: "ErrImageInspect", message: fmt.Sprintf("Failed to inspect image %q: %v", c.Image, err)}
		return k.cfg.BackoffBase, false
	}
	policy := c.ImagePullPolicy
	if policy == "" {
		policy = corev1.PullIfNotPresent
	}
	switch {
	case policy == corev1.PullNever && !present:
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		if st.waiting[c.Name].reason != "ErrImageNeverPull" {
			k.event(pod, c.Name, corev1.EventTypeWarning, "ErrImageNeverPull", "%s", msg)
		}
		st.waiting[c.Name] = waiting{reason: "ErrImageNeverPull", message: msg}
		return k.cfg.BackoffBase, false
	case policy != corev1.PullAlways && present:
		k.event(pod, c.Name, corev1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
		return 0, true
	}
	key := string(pod.UID) + "/" + c.Image
	now := k.now()
	if k.pullBackoff.IsInBackOffSinceUpdate(key, now) {
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		k.event(pod, c.Name, corev1.EventTypeNormal, "BackOff", "%s", msg)
		if last := st.pullErrors[c.Image]; last != "" {
			msg += ": ErrImagePull: " + last
		}
		st.waiting[c.Name] = waiting{reason: "ImagePullBackOff", message: msg}
		return k.cfg.BackoffBase / 2, false
	}
	k.event(pod, c.Name, corev1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	start := k.now()
	if _, err := k.rt.PullImage(ctx, c.Image, k.pullCredentials(ctx, pod, c.Name)); err != nil {
		k.pullBackoff.Next(key, k.now())
		k.event(pod, c.Name, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
		k.event(pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		st.waiting[c.Name] = waiting{reason: "ErrImagePull", message: err.Error()}
		st.pullErrors[c.Image] = err.Error()
		// Sync again soon, so that the status moves on to
		// ImagePullBackOff while the back-off runs.
		return k.cfg.BackoffBase / 2, false
	}
	k.pullBackoff.Reset(key)
	delete(st.pullErrors, c.Image)
	k.event(pod, c.Name, corev1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s", c.Image, k.now().Sub(start).Round(time.Millisecond))
	return 0, true
}

// containerMounts binds the pod's volumes, etc-hosts, resolv.conf and the
// termination log into the container.
func (k *Kubelet) containerMounts(pod *corev1.Pod, c *corev1.Container, attempt uint32, vars map[string]string, claims map[string]string) ([]runtime.Mount, error) {
	vols := map[string]*corev1.Volume{}
	for i := range pod.Spec.Volumes {
		vols[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var mounts []runtime.Mount
	taken := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volume mount %q: no volume of that name", vm.Name)
		}
		host, err := k.volumePath(pod, v, claims)
		if err != nil {
			return nil, err
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expand(vm.SubPathExpr, mapping(vars))
		}
		if sub != "" {
			if host, err = subPath(host, sub, v); err != nil {
				return nil, fmt.Errorf("volume mount %q: %w", vm.Name, err)
			}
		}
		mounts = append(mounts, runtime.Mount{ContainerPath: vm.MountPath, HostPath: host, ReadOnly: vm.ReadOnly || readOnlyVolume(v)})
		taken[filepath.Clean(vm.MountPath)] = true
	}
	dir := k.podDir(pod.UID)
	if !taken["/etc/hosts"] {
		mounts = append(mounts, runtime.Mount{ContainerPath: "/etc/hosts", HostPath: filepath.Join(dir, hostsFile)})
	}
	if !taken["/etc/resolv.conf"] {
		mounts = append(mounts, runtime.Mount{ContainerPath: "/etc/resolv.conf", HostPath: filepath.Join(dir, resolvFile)})
	}
	if p := c.TerminationMessagePath; p != "" && !taken[filepath.Clean(p)] {
		path := k.terminationPath(pod.UID, c.Name, attempt)
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, err
		}
		// Writable by any user the container runs as: that is its point.
		if err := os.WriteFile(path, nil, 0o666); err != nil {
			return nil, err
		}
		if err := os.Chmod(path, 0o666); err != nil {
			return nil, err
		}
		mounts = append(mounts, runtime.Mount{ContainerPath: p, HostPath: path})
	}
	return mounts, nil
}
