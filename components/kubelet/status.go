package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// maxTerminationMessage bounds a terminated container's message, as in
// Kubernetes (4 KiB from the file, 80 lines / 2 KiB from the log).
const (
	maxTerminationMessage = 4096
	maxFallbackLines      = 80
	maxFallbackBytes      = 2048
)

// stamp is a status time: API times have second precision, and a status
// must compare equal to itself after a round trip or it would be
// rewritten at every sync.
func stamp(t time.Time) metav1.Time { return metav1.NewTime(t.Truncate(time.Second)) }

// containerID is how status names a container: "<runtime>://<id>".
func (k *Kubelet) containerID(id string) string { return k.runtimeName + "://" + id }

// podStatus computes the pod's status from the runtime's truth. deleting
// means the pod is being torn down: its phase becomes terminal.
func (k *Kubelet) podStatus(pod *corev1.Pod, pr *podRuntime, st *podState, deleting bool) corev1.PodStatus {
	now := stamp(k.now())
	old := st.base(pod)
	s := corev1.PodStatus{
		HostIP:            k.cfg.NodeIP,
		HostIPs:           []corev1.HostIP{{IP: k.cfg.NodeIP}},
		NominatedNodeName: old.NominatedNodeName,
		QOSClass:          old.QOSClass,
	}
	if s.QOSClass == "" {
		s.QOSClass = qosClass(pod)
	}
	if st.startTime.IsZero() {
		st.startTime = k.now()
	}
	start := stamp(st.startTime)
	s.StartTime = &start
	switch {
	case pr.sandbox != nil && !st.terminal:
		s.PodIP = pr.sandbox.IP
	default:
		// A finished or dying pod keeps the address it had.
		s.PodIP = old.PodIP
	}
	if s.PodIP != "" {
		s.PodIPs = []corev1.PodIP{{IP: s.PodIP}}
	}
	initializing := false
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := k.containerStatus(pod, c, pr, st, true, initializing)
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			if !isSidecar(c) || cs.State.Running == nil {
				initializing = true
			}
		}
		s.InitContainerStatuses = append(s.InitContainerStatuses, cs)
	}
	for i := range pod.Spec.Containers {
		s.ContainerStatuses = append(s.ContainerStatuses, k.containerStatus(pod, &pod.Spec.Containers[i], pr, st, false, initializing))
	}
	// The kubelet lists app containers by name; init containers keep the
	// spec's order.
	slices.SortFunc(s.ContainerStatuses, func(a, b corev1.ContainerStatus) int { return strings.Compare(a.Name, b.Name) })
	for i := range pod.Spec.EphemeralContainers {
		c := ephemeralContainer(&pod.Spec.EphemeralContainers[i])
		s.EphemeralContainerStatuses = append(s.EphemeralContainerStatuses, k.containerStatus(pod, c, pr, st, false, initializing))
	}

	terminal := st.terminal || deleting
	s.Phase = podPhase(pod, s.InitContainerStatuses, s.ContainerStatuses, terminal)
	if st.terminal && (old.Phase == corev1.PodSucceeded || old.Phase == corev1.PodFailed) {
		s.Phase = old.Phase // once terminal, always
	}
	s.Conditions = k.podConditions(pod, old, &s, now)
	return s
}

// containerStatus is one container's status: its newest instance's state,
// or why it waits, and the instance before as lastState.
func (k *Kubelet) containerStatus(pod *corev1.Pod, c *corev1.Container, pr *podRuntime, st *podState, init, initializing bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Started: new(false)}
	latest, prev := pr.latest(c.Name), pr.previous(c.Name)
	if latest != nil {
		cs.RestartCount = int32(latest.Attempt)
		cs.ContainerID = k.containerID(latest.ID)
		if latest.ImageID != "" {
			cs.ImageID = latest.ImageID
		}
		switch latest.State {
		case runtime.ContainerRunning:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: stamp(latest.StartedAt)}
			*cs.Started = k.probes.started(latest.ID)
			cs.Ready = k.probes.ready(latest.ID)
		case runtime.ContainerExited:
			cs.State.Terminated = k.terminated(pod, latest)
		default:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		}
		if prev != nil && prev.State == runtime.ContainerExited {
			cs.LastTerminationState.Terminated = k.terminated(pod, prev)
		}
	}
	if w, ok := st.waiting[c.Name]; ok && w.reason != "" && cs.State.Running == nil && !st.terminal {
		if cs.State.Terminated != nil {
			cs.LastTerminationState = corev1.ContainerState{Terminated: cs.State.Terminated}
		}
		cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: w.reason, Message: w.message}}
	}
	if cs.State.Running == nil && cs.State.Terminated == nil && cs.State.Waiting == nil {
		reason := "ContainerCreating"
		if initializing || init {
			reason = "PodInitializing"
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason}
	}
	return cs
}

// terminated is an exited instance's state, with the termination message
// from its file, or from the end of its log when the container asks for
// that and failed.
func (k *Kubelet) terminated(pod *corev1.Pod, c *runtime.ContainerStatus) *corev1.ContainerStateTerminated {
	t := &corev1.ContainerStateTerminated{
		ExitCode:    c.ExitCode,
		Reason:      c.Reason,
		Message:     c.Message,
		StartedAt:   stamp(c.StartedAt),
		FinishedAt:  stamp(c.FinishedAt),
		ContainerID: k.containerID(c.ID),
	}
	if t.Reason == "" {
		t.Reason = "Completed"
		if t.ExitCode != 0 {
			t.Reason = "Error"
		}
	}
	if t.Message == "" {
		name := containerName(c)
		if b, err := readLimited(k.terminationPath(pod.UID, name, c.Attempt), maxTerminationMessage); err == nil && len(b) > 0 {
			t.Message = string(b)
		} else if spec := findContainer(pod, name); spec != nil && spec.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError && c.ExitCode != 0 {
			t.Message = tailText(k.logPath(pod.UID, name, c.Attempt), maxFallbackLines, maxFallbackBytes)
		}
	}
	return t
}

func readLimited(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := f.Read(buf)
	if m == 0 {
		return nil, err
	}
	return buf[:m], nil
}

// podPhase is the kubelet's getPhase: Pending until the init containers
// are done and every app container has started, Running while any runs
// or will restart, Succeeded or Failed once all are done for good. A pod
// that is terminal (finished, or being deleted) gets a terminal phase
// whatever its containers did.
func podPhase(pod *corev1.Pod, inits, apps []corev1.ContainerStatus, terminal bool) corev1.PodPhase {
	var pendingInit, failedInit int
	var unknown, running, waiting, stopped, succeeded int
	for i, s := range inits {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			switch {
			case s.State.Running != nil:
				running++
			case s.State.Terminated != nil, s.LastTerminationState.Terminated != nil:
				// Neither running nor stopped: only the app containers
				// decide.
			default:
				waiting++
			}
			continue
		}
		switch {
		case s.State.Running != nil:
			pendingInit++
		case s.State.Terminated != nil:
			if s.State.Terminated.ExitCode != 0 {
				failedInit++
			}
		case s.LastTerminationState.Terminated != nil:
			if s.LastTerminationState.Terminated.ExitCode != 0 {
				failedInit++
			}
		default:
			pendingInit++
		}
	}
	for _, s := range apps {
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.State.Waiting != nil && s.LastTerminationState.Terminated != nil:
			stopped++
		case s.State.Waiting != nil:
			waiting++
		default:
			unknown++
		}
	}
	policy := pod.Spec.RestartPolicy
	phase := corev1.PodPending
	switch {
	case failedInit > 0 && policy == corev1.RestartPolicyNever:
		phase = corev1.PodFailed
	case pendingInit > 0, waiting > 0:
		phase = corev1.PodPending
	case running > 0 && unknown == 0:
		phase = corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		switch {
		case terminal && stopped == succeeded:
			phase = corev1.PodSucceeded
		case terminal:
			phase = corev1.PodFailed
		case policy == corev1.RestartPolicyAlways:
			phase = corev1.PodRunning
		case stopped == succeeded:
			phase = corev1.PodSucceeded
		case policy == corev1.RestartPolicyNever:
			phase = corev1.PodFailed
		default:
			phase = corev1.PodRunning
		}
	}
	if terminal && phase != corev1.PodSucceeded && phase != corev1.PodFailed {
		phase = corev1.PodFailed
	}
	return phase
}

// podConditions computes Initialized, ContainersReady and Ready, keeps
// PodScheduled (the scheduler's) and every condition the kubelet does not
// own, and keeps a condition's transition time while its status holds.
func (k *Kubelet) podConditions(pod *corev1.Pod, base corev1.PodStatus, s *corev1.PodStatus, now metav1.Time) []corev1.PodCondition {
	old := map[corev1.PodConditionType]corev1.PodCondition{}
	for _, c := range base.Conditions {
		old[c.Type] = c
	}
	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg, LastTransitionTime: now}
		if ok {
			c.Status, c.Reason, c.Message = corev1.ConditionTrue, "", ""
		}
		if o, found := old[t]; found && o.Status == c.Status {
			c.LastTransitionTime = o.LastTransitionTime
		}
		return c
	}
	terminal := s.Phase == corev1.PodSucceeded || s.Phase == corev1.PodFailed

	var notInit []string
	for i, cs := range s.InitContainerStatuses {
		done := cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		if isSidecar(&pod.Spec.InitContainers[i]) {
			done = cs.State.Running != nil && cs.Started != nil && *cs.Started
		}
		if !done {
			notInit = append(notInit, cs.Name)
		}
	}
	var notReady []string
	for _, cs := range s.ContainerStatuses {
		if !cs.Ready {
			notReady = append(notReady, cs.Name)
		}
	}
	for i, c := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) && !s.InitContainerStatuses[i].Ready {
			notReady = append(notReady, c.Name)
		}
	}
	initialized := cond(corev1.PodInitialized, len(notInit) == 0, "ContainersNotInitialized",
		fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notInit, " ")))
	if terminal && len(notInit) > 0 && s.Phase == corev1.PodSucceeded {
		initialized = cond(corev1.PodInitialized, true, "", "")
	}
	var containersReady corev1.PodCondition
	switch {
	case terminal:
		containersReady = cond(corev1.ContainersReady, false, "PodCompleted", "")
	case len(notReady) > 0:
		containersReady = cond(corev1.ContainersReady, false, "ContainersNotReady",
			fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " ")))
	default:
		containersReady = cond(corev1.ContainersReady, true, "", "")
	}
	ready := containersReady
	ready.Type = corev1.PodReady
	if o, found := old[corev1.PodReady]; found && o.Status == ready.Status {
		ready.LastTransitionTime = o.LastTransitionTime
	} else {
		ready.LastTransitionTime = now
	}
	if ready.Status == corev1.ConditionTrue {
		var missing []string
		for _, g := range pod.Spec.ReadinessGates {
			if c, ok := old[g.ConditionType]; !ok || c.Status != corev1.ConditionTrue {
				missing = append(missing, string(g.ConditionType))
			}
		}
		if len(missing) > 0 {
			ready = cond(corev1.PodReady, false, "ReadinessGatesNotReady",
				fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", strings.Join(missing, ", ")))
		}
	}

	scheduled, ok := old[corev1.PodScheduled]
	if !ok {
		scheduled = corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now}
	}
	out := []corev1.PodCondition{initialized, ready, containersReady, scheduled}
	for _, c := range base.Conditions {
		switch c.Type {
		case corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled:
		default:
			out = append(out, c)
		}
	}
	return out
}

// qosClass is the pod's QoS class, as Kubernetes computes it from cpu
// and memory requests and limits.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	guaranteed := true
	for _, c := range allContainers(pod) {
		for _, rn := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[rn]
			lim, hasLim := c.Resources.Limits[rn]
			if hasReq && !req.IsZero() {
				add(requests, rn, req)
			}
			if hasLim && !lim.IsZero() {
				add(limits, rn, lim)
			}
			if !hasLim || lim.IsZero() || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case len(requests) == 0 && len(limits) == 0:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

func add(l corev1.ResourceList, rn corev1.ResourceName, q resource.Quantity) {
	cur := l[rn]
	cur.Add(q)
	l[rn] = cur
}

// writeStatus sends the status when it differs from what the API server
// holds, as a strategic merge patch with the pod's UID as precondition,
// the way the kubelet's status manager does.
func (k *Kubelet) writeStatus(ctx context.Context, w *podWorker, pod *corev1.Pod, status corev1.PodStatus) error {
	st := &w.state
	base := st.base(pod)
	if apiequality.Semantic.DeepEqual(base, status) {
		return nil
	}
	patch, err := statusPatch(pod.UID, base, status)
	if err != nil {
		return err
	}
	out, err := k.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // gone or replaced: the informer will say
		}
		return fmt.Errorf("patch status: %w", err)
	}
	st.lastStatus = out.Status.DeepCopy()
	if rv, err := strconv.ParseInt(out.ResourceVersion, 10, 64); err == nil {
		st.lastRV = rv
	}
	w.mu.Lock()
	w.echoRV = out.ResourceVersion
	w.mu.Unlock()
	return nil
}

// base is the pod's status as the API server holds it: the informer's
// copy, or the status this kubelet last wrote when the informer has not
// caught up with that write yet.
func (st *podState) base(pod *corev1.Pod) corev1.PodStatus {
	if rv, err := strconv.ParseInt(pod.ResourceVersion, 10, 64); err == nil && rv < st.lastRV && st.lastStatus != nil {
		return *st.lastStatus
	}
	return pod.Status
}

// statusPatch is a two-way strategic merge patch from old to new status
// that also requires the pod's UID.
func statusPatch(uid types.UID, old, cur corev1.PodStatus) ([]byte, error) {
	type view struct {
		Metadata struct {
			UID types.UID `json:"uid"`
		} `json:"metadata"`
		Status corev1.PodStatus `json:"status"`
	}
	var a, b view
	a.Metadata.UID, a.Status = uid, old
	b.Metadata.UID, b.Status = uid, cur
	oldJSON, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	newJSON, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, newJSON, &corev1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("status patch: %w", err)
	}
	// The UID is unchanged, so the diff left it out: put it back as the
	// precondition.
	var m map[string]any
	if err := json.Unmarshal(patch, &m); err != nil {
		return nil, err
	}
	m["metadata"] = map[string]any{"uid": string(uid)}
	return json.Marshal(m)
}
