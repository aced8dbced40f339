package kubelet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// minGracePeriod is the shortest time a container gets to stop, as the
// kubelet's minimumGracePeriodInSeconds: even a forced delete gives
// SIGTERM a moment before SIGKILL.
const minGracePeriod = 2 * time.Second

// sandboxRetry is how soon a pod whose sandbox could not be created is
// tried again; a new pod CIDR wakes every pod at once anyway.
const sandboxRetry = 2 * time.Second

// waiting is why a container is not running, as containerStatuses show it.
type waiting struct{ reason, message string }

// podState is what a pod worker remembers between syncs. Everything else
// is read again from the API (the pod) and the runtime (its containers)
// at each sync, so a restarted kubelet rebuilds it.
type podState struct {
	// startTime is when this kubelet first accepted the pod, unless its
	// status already had one.
	startTime time.Time
	// waiting holds the reason a container does not run (back-off, image
	// pull, bad config) until it starts.
	waiting map[string]waiting
	// pullErrors holds the last pull error of each image that is in
	// back-off, so ImagePullBackOff says why, as Kubernetes 1.30+ does.
	pullErrors map[string]string
	// filesFor is the sandbox that etc-hosts and resolv.conf were written
	// for; volumesAt is when the volumes were last written.
	filesFor  string
	volumesAt time.Time
	// claimPaths maps each persistentVolumeClaim volume to its volume's
	// directory, resolved when the volumes were written.
	claimPaths map[string]string
	// lastStatus is the status last written and lastRV the
	// resourceVersion that write returned, to skip writes of an unchanged
	// status before the informer catches up.
	lastStatus *corev1.PodStatus
	lastRV     int64
	// terminal is set once the pod reached Succeeded or Failed: nothing
	// starts again.
	terminal bool
	// killStarted is when the deletion was first seen; the grace period
	// counts from it. deleteSent says the pod object's final delete was
	// sent.
	killStarted time.Time
	deleteSent  bool
}

func newPodState() podState {
	return podState{waiting: map[string]waiting{}, pullErrors: map[string]string{}, claimPaths: map[string]string{}}
}

// podRuntime is what the runtime holds for one pod.
type podRuntime struct {
	// sandbox is the newest ready sandbox, nil when there is none.
	sandbox   *runtime.Sandbox
	sandboxes []*runtime.Sandbox
	// byName lists each container's instances, newest attempt first.
	byName map[string][]*runtime.ContainerStatus
	all    []*runtime.ContainerStatus
}

// latest is the newest instance of a container, in any sandbox.
func (pr *podRuntime) latest(name string) *runtime.ContainerStatus {
	if l := pr.byName[name]; len(l) > 0 {
		return l[0]
	}
	return nil
}

// previous is the instance before the newest one.
func (pr *podRuntime) previous(name string) *runtime.ContainerStatus {
	if l := pr.byName[name]; len(l) > 1 {
		return l[1]
	}
	return nil
}

// current is the newest instance of a container in the current sandbox:
// what decides the next action. Containers of an older sandbox only count
// for status and restart numbering.
func (pr *podRuntime) current(name string) *runtime.ContainerStatus {
	if pr.sandbox == nil {
		return nil
	}
	for _, c := range pr.byName[name] {
		if c.SandboxID == pr.sandbox.ID {
			return c
		}
	}
	return nil
}

// inspect reads a pod's sandboxes and containers from the runtime.
func (k *Kubelet) inspect(ctx context.Context, uid types.UID) (*podRuntime, error) {
	sbs, err := k.rt.ListPodSandboxes(ctx, runtime.SandboxFilter{PodUID: string(uid)})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	cs, err := k.rt.ListContainers(ctx, runtime.ContainerFilter{PodUID: string(uid)})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	pr := &podRuntime{byName: map[string][]*runtime.ContainerStatus{}, all: cs}
	for _, sb := range sbs {
		if sandboxPodUID(sb) == string(uid) {
			pr.sandboxes = append(pr.sandboxes, sb)
		}
	}
	slices.SortFunc(pr.sandboxes, func(a, b *runtime.Sandbox) int {
		return cmp.Or(cmp.Compare(b.Attempt, a.Attempt), b.CreatedAt.Compare(a.CreatedAt))
	})
	for _, sb := range pr.sandboxes {
		if sb.State == runtime.SandboxReady {
			pr.sandbox = sb
			break
		}
	}
	for _, c := range cs {
		name := containerName(c)
		pr.byName[name] = append(pr.byName[name], c)
	}
	for _, l := range pr.byName {
		slices.SortFunc(l, func(a, b *runtime.ContainerStatus) int {
			return cmp.Or(cmp.Compare(b.Attempt, a.Attempt), b.CreatedAt.Compare(a.CreatedAt))
		})
	}
	return pr, nil
}

func sandboxPodUID(sb *runtime.Sandbox) string {
	if sb.PodUID != "" {
		return sb.PodUID
	}
	return sb.Labels[runtime.LabelPodUID]
}

func containerName(c *runtime.ContainerStatus) string {
	if c.Name != "" {
		return c.Name
	}
	return c.Labels[runtime.LabelContainerName]
}

// syncPod brings one pod closer to its spec and reports its status. It
// returns when to sync again (0: at the resync period) and whether the
// worker is done (the pod is gone and cleaned up).
func (k *Kubelet) syncPod(ctx context.Context, w *podWorker) (time.Duration, bool) {
	pod, gone := w.snapshot()
	if gone {
		return k.cleanupPod(ctx, w, pod)
	}
	if pod.DeletionTimestamp != nil {
		return k.terminatePod(ctx, w, pod), false
	}
	st := &w.state
	log := k.log.With(logKeyPod, podKey(pod))
	pr, err := k.inspect(ctx, pod.UID)
	if err != nil {
		log.Warn("inspecting pod", logKeyError, err)
		return k.cfg.BackoffBase, false
	}
	if st.startTime.IsZero() {
		st.startTime = k.now()
		if pod.Status.StartTime != nil {
			st.startTime = pod.Status.StartTime.Time
		}
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		st.terminal = true
	}

	var next time.Duration
	if !st.terminal && st.lastStatus == nil && len(pod.Status.ContainerStatuses) == 0 && k.mustPull(ctx, pod) {
		// Say at once that the pod was accepted and its containers are
		// being created: pulling an image may take a while. With every
		// image present the pod starts sooner than this write would take.
		if err := k.writeStatus(ctx, w, pod, k.podStatus(pod, pr, st, false)); err != nil && ctx.Err() == nil {
			log.Debug("writing initial pod status", logKeyError, err)
		}
	}
	if !st.terminal {
		next = k.runPod(ctx, w, pod, pr)
		if pr, err = k.inspect(ctx, pod.UID); err != nil {
			log.Warn("inspecting pod", logKeyError, err)
			return k.cfg.BackoffBase, false
		}
	}
	k.probes.sync(ctx, pod, pr)
	status := k.podStatus(pod, pr, st, false)
	if !st.terminal && (status.Phase == corev1.PodSucceeded || status.Phase == corev1.PodFailed) {
		st.terminal = true
	}
	if st.terminal {
		// A finished pod keeps its containers (for logs) but not its
		// network.
		k.probes.stopPod(pod.UID)
		for _, sb := range pr.sandboxes {
			if sb.State == runtime.SandboxReady {
				if err := k.rt.StopPodSandbox(ctx, sb.ID); err != nil {
					log.Warn("stopping sandbox of finished pod", logKeyError, err)
				}
			}
		}
	}
	if err := k.writeStatus(ctx, w, pod, status); err != nil && ctx.Err() == nil {
		log.Warn("writing pod status", logKeyError, err)
		next = min(cmp.Or(next, k.cfg.BackoffBase), k.cfg.BackoffBase)
	}
	return next, false
}

// runPod does the next steps for a live pod: kill what must go, ensure
// the sandbox, its files and volumes, then run init containers in order
// and the app containers. It returns when to look again (0: nothing
// pending).
func (k *Kubelet) runPod(ctx context.Context, w *podWorker, pod *corev1.Pod, pr *podRuntime) time.Duration {
	st := &w.state
	log := k.log.With(logKeyPod, podKey(pod))
	if err := os.MkdirAll(k.podDir(pod.UID), 0o750); err != nil {
		log.Warn("creating pod directory", logKeyError, err)
		return k.cfg.BackoffBase
	}
	k.killUnwanted(ctx, pod, pr)

	if pr.sandbox == nil {
		sb, err := k.newSandbox(ctx, pod, pr)
		if err != nil {
			k.event(pod, "", corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			log.Debug("creating sandbox", logKeyError, err)
			return sandboxRetry
		}
		pr.sandbox = sb
		pr.byName = map[string][]*runtime.ContainerStatus{}
		pr.all = nil
		st.volumesAt = time.Time{}
	}
	if st.filesFor != pr.sandbox.ID {
		if err := k.writeNetworkFiles(pod, pr.sandbox.IP); err != nil {
			log.Warn("writing etc-hosts and resolv.conf", logKeyError, err)
			return k.cfg.BackoffBase
		}
		st.filesFor = pr.sandbox.ID
	}
	if st.volumesAt.IsZero() || k.now().Sub(st.volumesAt) >= k.cfg.ResyncPeriod {
		if err := k.writeVolumes(ctx, pod, pr.sandbox.IP, st.claimPaths); err != nil {
			k.event(pod, "", corev1.EventTypeWarning, "FailedMount", "MountVolume.SetUp failed: %v", err)
			// A claim not bound yet is said, so that a pod waiting for
			// its volume does not look stuck for no reason.
			var pending *claimPendingError
			msg := ""
			if errors.As(err, &pending) {
				msg = pending.Error()
			}
			for _, c := range allContainers(pod) {
				if pr.current(c.Name) == nil {
					st.waiting[c.Name] = waiting{reason: "ContainerCreating", message: msg}
				}
			}
			return k.cfg.BackoffBase
		}
		st.volumesAt = k.now()
	}

	initDone, next := k.runInitContainers(ctx, w, pod, pr)
	if !initDone {
		return next
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if d := k.runContainer(ctx, w, pod, pr, c, pod.Spec.RestartPolicy); d > 0 {
			next = minPositive(next, d)
		}
	}
	// Ephemeral containers (kubectl debug) run once, never restarted.
	for i := range pod.Spec.EphemeralContainers {
		if d := k.runContainer(ctx, w, pod, pr, ephemeralContainer(&pod.Spec.EphemeralContainers[i]), corev1.RestartPolicyNever); d > 0 {
			next = minPositive(next, d)
		}
	}
	return next
}

// runInitContainers starts the next init container that has not
// succeeded, one at a time. Restartable ("sidecar") init containers count
// as done once running and keep running beside the app containers.
func (k *Kubelet) runInitContainers(ctx context.Context, w *podWorker, pod *corev1.Pod, pr *podRuntime) (bool, time.Duration) {
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cur := pr.current(c.Name)
		if isSidecar(c) {
			d := k.runContainer(ctx, w, pod, pr, c, corev1.RestartPolicyAlways)
			if cur = k.currentAfterStart(ctx, pod, c.Name); cur == nil || cur.State != runtime.ContainerRunning {
				return false, d
			}
			continue
		}
		if cur != nil && cur.State == runtime.ContainerExited && cur.ExitCode == 0 {
			continue
		}
		policy := pod.Spec.RestartPolicy
		if policy == corev1.RestartPolicyAlways {
			// An init container that fails is retried, whatever the pod's
			// policy says, unless that policy is Never.
			policy = corev1.RestartPolicyOnFailure
		}
		return false, k.runContainer(ctx, w, pod, pr, c, policy)
	}
	return true, 0
}

// currentAfterStart reads a container again after runContainer may have
// started it.
func (k *Kubelet) currentAfterStart(ctx context.Context, pod *corev1.Pod, name string) *runtime.ContainerStatus {
	pr, err := k.inspect(ctx, pod.UID)
	if err != nil {
		return nil
	}
	return pr.current(name)
}

func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// runContainer starts a container that is not running, if policy says
// it should run (again) and its back-off allows. It returns when the
// back-off ends (0: nothing to wait for).
func (k *Kubelet) runContainer(ctx context.Context, w *podWorker, pod *corev1.Pod, pr *podRuntime, c *corev1.Container, policy corev1.RestartPolicy) time.Duration {
	st := &w.state
	cur := pr.current(c.Name)
	if cur != nil {
		switch cur.State {
		case runtime.ContainerRunning:
			delete(st.waiting, c.Name)
			return 0
		case runtime.ContainerCreated, runtime.ContainerUnknown:
			// Left behind by a sync or a kubelet that stopped halfway:
			// start over.
			_ = k.rt.StopContainer(ctx, cur.ID, minGracePeriod)
			if err := k.rt.RemoveContainer(ctx, cur.ID); err != nil {
				k.log.Warn("removing unstarted container", logKeyPod, podKey(pod), logKeyContainer, c.Name, logKeyError, err)
			}
		case runtime.ContainerExited:
			if !shouldRestart(policy, cur.ExitCode) {
				delete(st.waiting, c.Name)
				return 0
			}
			if wait, msg := k.crashWait(pod, c, cur); wait > 0 {
				if st.waiting[c.Name].reason != "CrashLoopBackOff" {
					k.event(pod, c.Name, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", c.Name, formatPod(pod))
				}
				st.waiting[c.Name] = waiting{reason: "CrashLoopBackOff", message: msg}
				return wait
			}
		}
	}
	return k.startContainer(ctx, w, pod, pr, c)
}

// shouldRestart applies a restart policy to an exited container.
func shouldRestart(policy corev1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// crashWait is the crash back-off as the kubelet keeps it: a container
// that exited within its back-off window waits out the rest of it; else
// the window doubles (up to BackoffMax, reset after twice that without a
// crash) and it restarts now.
func (k *Kubelet) crashWait(pod *corev1.Pod, c *corev1.Container, cur *runtime.ContainerStatus) (time.Duration, string) {
	key := crashKey(pod, c)
	if k.crashBackoff.IsInBackOffSince(key, cur.FinishedAt) {
		d := k.crashBackoff.Get(key)
		if wait := cur.FinishedAt.Add(d).Sub(k.now()); wait > 0 {
			return wait, fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", d, c.Name, formatPod(pod))
		}
	}
	k.crashBackoff.Next(key, cur.FinishedAt)
	return 0, ""
}

func crashKey(pod *corev1.Pod, c *corev1.Container) string {
	return string(pod.UID) + "/" + c.Name + "/" + containerHash(c)
}

// killUnwanted stops running containers that must restart: their spec
// changed, or a liveness or startup probe failed.
func (k *Kubelet) killUnwanted(ctx context.Context, pod *corev1.Pod, pr *podRuntime) {
	for _, c := range pr.all {
		if c.State != runtime.ContainerRunning {
			continue
		}
		name := containerName(c)
		spec := findContainer(pod, name)
		var why, probeGrace string
		switch {
		case spec == nil:
			why = fmt.Sprintf("Container %s is not in the pod's spec, will be killed", name)
		case pr.sandbox == nil || c.SandboxID != pr.sandbox.ID:
			why = fmt.Sprintf("Container %s is in a sandbox that is gone, will be restarted", name)
		case c.Annotations[runtime.AnnotationContainerHash] != containerHash(spec):
			why = fmt.Sprintf("Container %s definition changed, will be restarted", name)
		default:
			if failed, kind := k.probes.failed(c.ID); failed {
				why = fmt.Sprintf("Container %s failed %s probe, will be restarted", name, kind)
				probeGrace = kind
			}
		}
		if why == "" {
			continue
		}
		grace := podGrace(pod)
		if spec != nil && probeGrace != "" {
			if p := probeFor(spec, probeGrace); p != nil && p.TerminationGracePeriodSeconds != nil {
				grace = time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
			}
		}
		k.event(pod, name, corev1.EventTypeNormal, "Killing", "%s", why)
		k.probes.stopContainer(c.ID)
		if err := k.rt.StopContainer(ctx, c.ID, max(grace, minGracePeriod)); err != nil {
			k.log.Warn("stopping container", logKeyPod, podKey(pod), logKeyContainer, name, logKeyError, err)
			continue
		}
		if cs, err := k.rt.ContainerStatus(ctx, c.ID); err == nil {
			*c = *cs
		}
	}
}

// podGrace is the pod's terminationGracePeriodSeconds.
func podGrace(pod *corev1.Pod) time.Duration {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return corev1.DefaultTerminationGracePeriodSeconds * time.Second
}

// newSandbox removes what is left of the pod's earlier sandboxes and
// creates a new one. A pod's containers all start over in a new sandbox,
// init containers included, as in Kubernetes.
func (k *Kubelet) newSandbox(ctx context.Context, pod *corev1.Pod, pr *podRuntime) (*runtime.Sandbox, error) {
	var attempt uint32
	for _, sb := range pr.sandboxes {
		attempt = max(attempt, sb.Attempt+1)
	}
	if err := k.removeContainers(ctx, pr.all, minGracePeriod); err != nil {
		return nil, err
	}
	for _, sb := range pr.sandboxes {
		if err := k.removeSandbox(ctx, sb.ID); err != nil {
			return nil, err
		}
	}
	cfg := &runtime.SandboxConfig{
		PodUID:      string(pod.UID),
		Namespace:   pod.Namespace,
		Name:        pod.Name,
		Attempt:     attempt,
		Hostname:    podHostname(pod),
		HostNetwork: pod.Spec.HostNetwork,
		Ports:       hostPorts(pod),
		Labels:      podLabels(pod),
		Annotations: pod.Annotations,
	}
	sb, err := k.rt.RunPodSandbox(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return sb, nil
}

// removeContainers stops and removes containers.
func (k *Kubelet) removeContainers(ctx context.Context, cs []*runtime.ContainerStatus, grace time.Duration) error {
	var errs []error
	for _, c := range cs {
		k.probes.stopContainer(c.ID)
		if c.State == runtime.ContainerRunning {
			if err := k.rt.StopContainer(ctx, c.ID, grace); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				errs = append(errs, fmt.Errorf("stop container %s: %w", c.ID, err))
				continue
			}
		}
		if err := k.rt.RemoveContainer(ctx, c.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (k *Kubelet) removeSandbox(ctx context.Context, id string) error {
	if err := k.rt.StopPodSandbox(ctx, id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return fmt.Errorf("stop sandbox %s: %w", id, err)
	}
	if err := k.rt.RemovePodSandbox(ctx, id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return fmt.Errorf("remove sandbox %s: %w", id, err)
	}
	return nil
}

// podLabels are the labels of a pod's sandbox and containers.
func podLabels(pod *corev1.Pod) map[string]string {
	return map[string]string{
		runtime.LabelPodUID:       string(pod.UID),
		runtime.LabelPodName:      pod.Name,
		runtime.LabelPodNamespace: pod.Namespace,
	}
}

// hostPorts lists the container ports with a hostPort.
func hostPorts(pod *corev1.Pod) []runtime.PortMapping {
	var out []runtime.PortMapping
	for _, c := range allContainers(pod) {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			out = append(out, runtime.PortMapping{Protocol: string(cmp.Or(p.Protocol, corev1.ProtocolTCP)),
				ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIP: p.HostIP})
		}
	}
	return out
}

// podHostname is the pod's hostname: spec.hostname or its name, cut to
// 63 characters as the kubelet does.
func podHostname(pod *corev1.Pod) string {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = h[:63]
	}
	for len(h) > 0 && (h[len(h)-1] == '-' || h[len(h)-1] == '.') {
		h = h[:len(h)-1]
	}
	return h
}

// allContainers lists init then app containers.
func allContainers(pod *corev1.Pod) []*corev1.Container {
	out := make([]*corev1.Container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	for i := range pod.Spec.InitContainers {
		out = append(out, &pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

// findContainer finds a container of pod by name, ephemeral ones too.
func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, c := range allContainers(pod) {
		if c.Name == name {
			return c
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return ephemeralContainer(&pod.Spec.EphemeralContainers[i])
		}
	}
	return nil
}

// ephemeralTarget is the target container of pod's ephemeral container
// name, "" if none or if name is not an ephemeral container.
func ephemeralTarget(pod *corev1.Pod, name string) string {
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return pod.Spec.EphemeralContainers[i].TargetContainerName
		}
	}
	return ""
}

// ephemeralContainer is an ephemeral container as a container: the
// fields are the same, those it may not set are empty.
func ephemeralContainer(ec *corev1.EphemeralContainer) *corev1.Container {
	return (*corev1.Container)(&ec.EphemeralContainerCommon)
}

func isInit(pod *corev1.Pod, name string) bool {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return true
		}
	}
	return false
}

// podKey is "namespace/name", the key logs use.
func podKey(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }

// formatPod is how the kubelet names a pod in messages: name_ns(uid).
func formatPod(pod *corev1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// minPositive is the smaller of two durations, ignoring zeros.
func minPositive(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

// mustPull reports whether starting pod may pull an image: one is missing
// locally or asks to be pulled every time.
func (k *Kubelet) mustPull(ctx context.Context, pod *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.ImagePullPolicy == corev1.PullAlways {
				return true
			}
			if _, err := k.rt.ImageStatus(ctx, c.Image); err != nil {
				return true
			}
		}
	}
	return false
}
