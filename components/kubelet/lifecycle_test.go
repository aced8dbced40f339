package kubelet_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"kiln.dev/kiln/components/kubelet/simulated"
)

func TestKubelet_syncPod_crashLoopBackOff(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-crash")
	pod := c.createPod(t, newPod("crash", n.name, map[string]string{simulated.AnnotationExitCode: "1"}))

	// Delays 0, 200ms, 400ms, 800ms: after four starts the container waits
	// in CrashLoopBackOff with the kubelet's message.
	var waitingMsg string
	got := c.waitPod(t, ns, pod.Name, "CrashLoopBackOff after 3 restarts", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "app")
		if cs == nil || cs.RestartCount < 3 || cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" {
			return false
		}
		waitingMsg = cs.State.Waiting.Message
		return true
	})
	want := fmt.Sprintf("restarting failed container=app pod=crash_default(%s)", pod.UID)
	if !strings.HasPrefix(waitingMsg, "back-off ") || !strings.HasSuffix(waitingMsg, want) {
		t.Errorf("waiting message %q, want \"back-off <d> %s\"", waitingMsg, want)
	}
	cs := containerStatus(got, "app")
	if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 || cs.LastTerminationState.Terminated.Reason != "Error" {
		t.Errorf("lastState %+v, want terminated with exit code 1, reason Error", cs.LastTerminationState)
	}
	if got.Status.Phase != corev1.PodRunning || podReady(got) {
		t.Errorf("phase %s ready %v, want Running and not Ready", got.Status.Phase, podReady(got))
	}

	// The gaps between starts grow: the back-off doubles.
	recs := n.rt.Configs(string(pod.UID), "app")
	if len(recs) < 4 {
		t.Fatalf("%d starts, want at least 4", len(recs))
	}
	var gaps []time.Duration
	for i := 1; i < len(recs); i++ {
		gaps = append(gaps, recs[i].StartedAt.Sub(recs[i-1].StartedAt))
	}
	t.Logf("gaps between starts: %v", gaps)
	// The first restart is at once; then each waits at least its
	// back-off, which doubles: 200ms, 400ms, 800ms...
	for i := 1; i < len(gaps); i++ {
		if want := backoffBase << (i - 1); gaps[i] < want {
			t.Errorf("restart %d after %v, want at least %v: %v", i+1, gaps[i], want, gaps)
		}
	}
	if last := gaps[len(gaps)-1]; last <= gaps[1] {
		t.Errorf("back-off did not grow: %v", gaps)
	}
	for i, r := range recs {
		if r.Config.Attempt != uint32(i) {
			t.Errorf("start %d has attempt %d", i, r.Config.Attempt)
		}
	}
	eventually(t, "BackOff event", func() bool { return hasAll(c.events(t, got), "BackOff", "Started") })
}

func TestKubelet_syncPod_restartPolicies(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-policy")
	cases := []struct {
		name      string
		policy    corev1.RestartPolicy
		exitCode  string
		phase     corev1.PodPhase
		restarted bool
	}{
		{"never-fails", corev1.RestartPolicyNever, "1", corev1.PodFailed, false},
		{"never-succeeds", corev1.RestartPolicyNever, "0", corev1.PodSucceeded, false},
		{"onfailure-succeeds", corev1.RestartPolicyOnFailure, "0", corev1.PodSucceeded, false},
		{"onfailure-fails", corev1.RestartPolicyOnFailure, "3", corev1.PodRunning, true},
		{"always-succeeds", corev1.RestartPolicyAlways, "0", corev1.PodRunning, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPod(tc.name, n.name, map[string]string{
				simulated.AnnotationExitCode:    tc.exitCode,
				simulated.AnnotationRunDuration: "100ms",
			})
			p.Spec.RestartPolicy = tc.policy
			pod := c.createPod(t, p)
			got := c.waitPod(t, ns, pod.Name, "phase "+string(tc.phase), func(p *corev1.Pod) bool {
				cs := containerStatus(p, "app")
				if cs == nil || p.Status.Phase != tc.phase {
					return false
				}
				if tc.restarted {
					return cs.RestartCount >= 1
				}
				return cs.State.Terminated != nil
			})
			cs := containerStatus(got, "app")
			if !tc.restarted {
				if cs.RestartCount != 0 || fmt.Sprint(cs.State.Terminated.ExitCode) != tc.exitCode {
					t.Errorf("status %s, want exit %s without restart", describe(got), tc.exitCode)
				}
				want := "Completed"
				if tc.exitCode != "0" {
					want = "Error"
				}
				if cs.State.Terminated.Reason != want {
					t.Errorf("reason %q, want %q", cs.State.Terminated.Reason, want)
				}
				if r := condition(got, corev1.PodReady); r != corev1.ConditionFalse {
					t.Errorf("Ready = %s on a finished pod", r)
				}
				// It stays that way: no restart.
				time.Sleep(3 * backoffBase)
				if recs := n.rt.Configs(string(pod.UID), "app"); len(recs) != 1 {
					t.Errorf("%d starts, want 1", len(recs))
				}
			}
		})
	}
}

func TestKubelet_syncPod_initContainersInOrder(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-init")
	p := newPod("init", n.name, map[string]string{
		simulated.AnnotationRunDuration + ".first":  "150ms",
		simulated.AnnotationRunDuration + ".second": "150ms",
	})
	p.Spec.InitContainers = []corev1.Container{
		{Name: "first", Image: "busybox"},
		{Name: "second", Image: "busybox"},
	}
	pod := c.createPod(t, p)
	var sawInitializing bool
	got := c.waitPod(t, ns, pod.Name, "Running", func(p *corev1.Pod) bool {
		if p.Status.Phase == corev1.PodPending && condition(p, corev1.PodInitialized) == corev1.ConditionFalse {
			if cs := containerStatus(p, "app"); cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "PodInitializing" {
				sawInitializing = true
			}
		}
		return p.Status.Phase == corev1.PodRunning && podReady(p)
	})
	if !sawInitializing {
		t.Error("never saw the pod Pending, not Initialized, with app waiting in PodInitializing")
	}
	if condition(got, corev1.PodInitialized) != corev1.ConditionTrue {
		t.Errorf("Initialized = %s", condition(got, corev1.PodInitialized))
	}
	if len(got.Status.InitContainerStatuses) != 2 || got.Status.InitContainerStatuses[0].Name != "first" {
		t.Fatalf("initContainerStatuses %+v, want first and second in spec order", got.Status.InitContainerStatuses)
	}
	for _, s := range got.Status.InitContainerStatuses {
		if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 || s.State.Terminated.Reason != "Completed" {
			t.Errorf("init container %s: %s", s.Name, state(s.State))
		}
	}
	first := n.rt.Configs(string(pod.UID), "first")
	second := n.rt.Configs(string(pod.UID), "second")
	app := n.rt.Configs(string(pod.UID), "app")
	if len(first) != 1 || len(second) != 1 || len(app) != 1 {
		t.Fatalf("starts: first %d, second %d, app %d; want one each", len(first), len(second), len(app))
	}
	if !second[0].CreatedAt.After(first[0].StartedAt.Add(100*time.Millisecond)) || !app[0].CreatedAt.After(second[0].StartedAt.Add(100*time.Millisecond)) {
		t.Errorf("out of order: first started %v, second created %v started %v, app created %v",
			first[0].StartedAt, second[0].CreatedAt, second[0].StartedAt, app[0].CreatedAt)
	}

	// A failing init container with restartPolicy Never fails the pod,
	// and the app container never starts.
	bad := newPod("init-fails", n.name, map[string]string{simulated.AnnotationExitCode + ".first": "2"})
	bad.Spec.RestartPolicy = corev1.RestartPolicyNever
	bad.Spec.InitContainers = []corev1.Container{{Name: "first", Image: "busybox"}}
	bad = c.createPod(t, bad)
	got = c.waitPod(t, ns, bad.Name, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if cs := containerStatus(got, "first"); cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 2 {
		t.Errorf("init container: %s", state(cs.State))
	}
	if recs := n.rt.Configs(string(bad.UID), "app"); len(recs) != 0 {
		t.Errorf("app container started %d times after its init container failed", len(recs))
	}
}
