package dashboard

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/reconcile"
)

// maxPaths bounds the pods one chain explains.
const maxPaths = 3

// Root-cause reasons a Cause may carry besides a container's own waiting
// reason (CrashLoopBackOff, ErrImagePull, ImagePullBackOff, ...).
const (
	causeUnschedulable  = "Unschedulable"
	causeReadiness      = "ReadinessProbeFailed"
	causeOOMKilled      = "OOMKilled"
	causeNotReady       = "NotReady"
	causePending        = "Pending"
	causeFailed         = "Failed"
	causeNoPods         = "NoPods"
	reasonCrashLoop     = "CrashLoopBackOff"
	reasonErrImagePull  = "ErrImagePull"
	reasonImagePullBack = "ImagePullBackOff"
)

// Chain explains why one managed object is not healthy: the path through
// its children (Deployment → ReplicaSet → Pod) to each root cause.
type Chain struct {
	Source  string `json:"source"`
	Object  Ref    `json:"object"`
	Health  string `json:"health"`
	Message string `json:"message,omitempty"`
	// File is the file of the repository the object came from.
	File         string `json:"file,omitempty"`
	Paths        []Path `json:"paths,omitempty"`
	PathsOmitted int    `json:"pathsOmitted,omitempty"`
}

// Path leads from the object through Via (its ReplicaSet, its Pod) to
// one root cause.
type Path struct {
	Via   []Ref `json:"via,omitempty"`
	Cause Cause `json:"cause"`
}

// Cause is a root cause: why a pod is not ready, or, without pods, why
// its owner has none.
type Cause struct {
	Reason    string `json:"reason"`
	Container string `json:"container,omitempty"`
	Message   string `json:"message,omitempty"`
	// ExitCode is the last exit code of a restarting container.
	ExitCode *int32 `json:"exitCode,omitempty"`
	// Logs are the last lines of the container's previous run; LogsError
	// says why they could not be read.
	Logs      []string `json:"logs,omitempty"`
	LogsError string   `json:"logsError,omitempty"`
}

// chain explains mo, reading at most a few containers' logs (logs).
func (d *Dashboard) chain(mo managedObject, logs *logBudget) Chain {
	e := mo.Entry
	ch := Chain{Source: mo.Source, Object: Ref{Group: e.Group, Version: e.Version, Kind: e.Kind, Namespace: e.Namespace, Name: e.Name},
		Health: mo.Health.Status, Message: mo.Health.Message}
	if m, err := meta.Accessor(mo.Obj); err == nil && mo.Obj != nil {
		ch.File = m.GetAnnotations()[reconcile.AnnotationPath]
	}
	ch.Paths, ch.PathsOmitted = d.paths(mo.Obj, logs)
	return ch
}

// paths finds the root causes below obj.
func (d *Dashboard) paths(obj any, logs *logBudget) ([]Path, int) {
	var out []Path
	omitted := 0
	add := func(via []Ref, p *corev1.Pod) {
		if len(out) == maxPaths {
			omitted++
			return
		}
		out = append(out, Path{Via: append(via, refOf(gkPod, p.Namespace, p.Name)), Cause: d.podCause(p, logs)})
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		rss := byIndex[*appsv1.ReplicaSet](d.cache.replicasets, indexOwner, string(o.UID))
		// The newest ReplicaSet first: it is the one the rollout waits for.
		slices.SortFunc(rss, func(a, b *appsv1.ReplicaSet) int {
			return cmp.Or(cmp.Compare(revision(b), revision(a)), b.CreationTimestamp.Compare(a.CreationTimestamp.Time))
		})
		for _, rs := range rss {
			for _, p := range d.unreadyPods(rs.UID, false) {
				add([]Ref{refOf(gkReplicaSet, rs.Namespace, rs.Name)}, p)
			}
		}
		if len(out) == 0 {
			for _, c := range o.Status.Conditions {
				if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
					out = append(out, Path{Cause: Cause{Reason: c.Reason, Message: c.Message}})
				}
			}
		}
		if len(out) == 0 && len(rss) == 0 {
			out = append(out, Path{Cause: Cause{Reason: causeNoPods, Message: "no ReplicaSet yet: is the controller manager running?"}})
		}
	case *appsv1.ReplicaSet:
		for _, p := range d.unreadyPods(o.UID, false) {
			add(nil, p)
		}
	case *appsv1.StatefulSet:
		for _, p := range d.unreadyPods(o.UID, false) {
			add(nil, p)
		}
	case *appsv1.DaemonSet:
		for _, p := range d.unreadyPods(o.UID, false) {
			add(nil, p)
		}
	case *batchv1.Job:
		for _, p := range d.unreadyPods(o.UID, true) {
			add(nil, p)
		}
	case *corev1.Pod:
		out = append(out, Path{Cause: d.podCause(o, logs)})
	case *corev1.Service:
		if len(o.Spec.Selector) > 0 {
			sel := labels.SelectorFromSet(o.Spec.Selector)
			pods := list[*corev1.Pod](d.cache.pods)
			slices.SortFunc(pods, func(a, b *corev1.Pod) int { return cmp.Compare(a.Name, b.Name) })
			matched := 0
			for _, p := range pods {
				if p.Namespace != o.Namespace || !sel.Matches(labels.Set(p.Labels)) {
					continue
				}
				matched++
				if !podReady(p) && p.DeletionTimestamp == nil {
					add(nil, p)
				}
			}
			if matched == 0 {
				out = append(out, Path{Cause: Cause{Reason: causeNoPods, Message: "no pod matches the selector " + sel.String()}})
			}
		}
	}
	return out, omitted
}

// revision is a ReplicaSet's deployment revision, 0 without one.
func revision(rs *appsv1.ReplicaSet) int64 {
	n, _ := strconv.ParseInt(rs.Annotations["deployment.kubernetes.io/revision"], 10, 64)
	return n
}

// unreadyPods are the pods the controller owner has that are not ready
// and not on their way out; failed pods count for a Job (withFailed).
func (d *Dashboard) unreadyPods(owner types.UID, withFailed bool) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range byIndex[*corev1.Pod](d.cache.pods, indexOwner, string(owner)) {
		switch {
		case p.DeletionTimestamp != nil, p.Status.Phase == corev1.PodSucceeded:
		case p.Status.Phase == corev1.PodFailed && !withFailed:
		case !podReady(p):
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func podReady(p *corev1.Pod) bool {
	c := podCondition(p, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// podCause is the root cause of a pod not being ready, checked in the
// order a person would: not placed, not started, crashing, not passing
// its readiness probe.
func (d *Dashboard) podCause(p *corev1.Pod, logs *logBudget) Cause {
	if c := podCondition(p, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse {
		msg := c.Message
		if msg == "" {
			if ev := d.lastEvent(p, "FailedScheduling"); ev != nil {
				msg = ev.Message
			}
		}
		return Cause{Reason: cmp.Or(c.Reason, causeUnschedulable), Message: cmp.Or(msg, "the scheduler found no node")}
	}
	if p.Status.Phase == corev1.PodFailed {
		return Cause{Reason: causeFailed, Message: strings.TrimSpace(p.Status.Reason + " " + p.Status.Message)}
	}
	statuses := append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...)
	images := map[string]string{}
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		images[c.Name] = c.Image
	}
	for _, cs := range statuses {
		last := cs.LastTerminationState.Terminated
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "", "ContainerCreating", "PodInitializing":
			case reasonCrashLoop:
				c := Cause{Reason: reasonCrashLoop, Container: cs.Name, Message: w.Message}
				if last != nil {
					code := last.ExitCode
					c.ExitCode = &code
					if last.Reason == causeOOMKilled {
						c.Reason = causeOOMKilled
						c.Message = "killed for exceeding its memory limit; restarting with back-off"
					}
				}
				c.Logs, c.LogsError = logs.get(p, cs.Name, cs.RestartCount)
				return c
			case reasonErrImagePull, reasonImagePullBack:
				msg := w.Message
				if imageNotFound(msg) {
					msg = fmt.Sprintf("image %s not found: %s", images[cs.Name], msg)
				}
				return Cause{Reason: w.Reason, Container: cs.Name, Message: msg}
			default:
				return Cause{Reason: w.Reason, Container: cs.Name, Message: w.Message}
			}
		}
		if t := cs.State.Terminated; t != nil && t.Reason == causeOOMKilled {
			code := t.ExitCode
			return Cause{Reason: causeOOMKilled, Container: cs.Name, ExitCode: &code, Message: "killed for exceeding its memory limit"}
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil || cs.Ready {
			continue
		}
		if ev := d.lastEvent(p, "Unhealthy"); ev != nil && strings.Contains(ev.Message, "Readiness") {
			return Cause{Reason: causeReadiness, Container: cs.Name, Message: ev.Message}
		}
		c := Cause{Reason: causeNotReady, Container: cs.Name, Message: "running, not ready yet"}
		if last := cs.LastTerminationState.Terminated; last != nil && last.Reason == causeOOMKilled {
			code := last.ExitCode
			c = Cause{Reason: causeOOMKilled, Container: cs.Name, ExitCode: &code, Message: "restarted after exceeding its memory limit"}
		}
		return c
	}
	if p.Spec.NodeName == "" {
		return Cause{Reason: causePending, Message: "waiting for the scheduler"}
	}
	if p.Status.Phase == corev1.PodPending || p.Status.Phase == "" {
		return Cause{Reason: causePending, Message: "on node " + p.Spec.NodeName + ", containers not started yet"}
	}
	return Cause{Reason: causeNotReady, Message: "phase " + string(p.Status.Phase) + ", not ready"}
}

// imageNotFound recognises a registry's or containerd's "no such image".
func imageNotFound(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "not found") || strings.Contains(m, "manifest unknown") || strings.Contains(m, "does not exist")
}

// lastEvent is the newest event of reason about p.
func (d *Dashboard) lastEvent(p *corev1.Pod, reason string) *corev1.Event {
	var best *corev1.Event
	for _, e := range byIndex[*corev1.Event](d.cache.events, indexInvolved, involvedKey("Pod", p.Namespace, p.Name)) {
		if e.Reason != reason || e.InvolvedObject.UID != "" && e.InvolvedObject.UID != p.UID {
			continue
		}
		if best == nil || eventTime(e).After(eventTime(best)) {
			best = e
		}
	}
	return best
}

// eventTime is when an event last happened.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// podStatus is the one-word state kubectl get pods shows.
func podStatus(p *corev1.Pod) string {
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	for _, cs := range p.Status.InitContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "PodInitializing" {
			return "Init:" + w.Reason
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return "Init:" + cmp.Or(t.Reason, "Error")
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			reason = cs.State.Waiting.Reason
		case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
			reason = cs.State.Terminated.Reason
		}
	}
	if p.DeletionTimestamp != nil {
		return "Terminating"
	}
	if reason == "" {
		return string(corev1.PodPending)
	}
	return reason
}

// readyCount is "ready/total" containers.
func readyCount(p *corev1.Pod) string {
	ready := 0
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Ready {
			ready++
		}
	}
	return fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers))
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, cs := range p.Status.ContainerStatuses {
		n += cs.RestartCount
	}
	return n
}
