package kubelet_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"kiln.dev/kiln/components/kubelet/simulated"
)

func TestKubelet_terminatePod_gracePeriod(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-term")
	ctr := corev1.Container{Name: "app", Image: "example.com/app:v1", Lifecycle: &corev1.Lifecycle{
		PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/drain"}}},
	}}
	pod := c.createPod(t, newPod("term", n.name, map[string]string{simulated.AnnotationStopDelay: "300ms"}, ctr,
		corev1.Container{Name: "other", Image: "busybox"}))
	c.waitPod(t, ns, pod.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	podDir := filepath.Join(n.dir, "pods", string(pod.UID))
	if _, err := os.Stat(podDir); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := c.Clientset.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(7))}); err != nil {
		t.Fatal(err)
	}
	c.waitGone(t, ns, pod.Name)
	t.Logf("pod deleted %v after the delete call", time.Since(start).Round(time.Millisecond))

	stops := n.rt.StopCalls(string(pod.UID))
	if len(stops) != 2 {
		t.Fatalf("stop calls %+v, want one per container", stops)
	}
	for _, s := range stops {
		if s.Timeout < 6*time.Second || s.Timeout > 7*time.Second {
			t.Errorf("%s stopped with timeout %v, want the 7s grace period", s.Name, s.Timeout)
		}
	}
	execs := n.rt.ExecCalls(string(pod.UID))
	if len(execs) != 1 || !slices.Equal(execs[0].Cmd, []string{"/bin/drain"}) || execs[0].Name != "app" {
		t.Errorf("exec calls %+v, want the preStop hook of app", execs)
	}
	for _, s := range stops {
		if s.Name == "app" && len(execs) == 1 && s.At.Before(start) {
			t.Errorf("stopped before the delete")
		}
	}
	eventually(t, "containers, sandbox and pod directory removed", func() bool {
		sb, cs := n.rt.Counts()
		_, err := os.Stat(podDir)
		return sb == 0 && cs == 0 && os.IsNotExist(err)
	})
}

func TestKubelet_terminatePod_forcedDeleteCleansUp(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-force")
	pod := c.createPod(t, newPod("forced", n.name, nil))
	c.waitPod(t, ns, pod.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if err := c.Clientset.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "runtime emptied", func() bool {
		sb, cs := n.rt.Counts()
		return sb == 0 && cs == 0
	})
	if stops := n.rt.StopCalls(string(pod.UID)); len(stops) != 1 || stops[0].Timeout != 2*time.Second {
		t.Errorf("stop calls %+v, want one with the 2s minimum", stops)
	}
}

func TestKubelet_ensureImage_pullErrors(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-pull")
	w, err := c.Clientset.CoreV1().Pods(ns).Watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	pod := c.createPod(t, newPod("pull", n.name, map[string]string{simulated.AnnotationPullError: "example.com/missing:v1"},
		corev1.Container{Name: "app", Image: "example.com/missing:v1", ImagePullPolicy: corev1.PullIfNotPresent}))

	// The status goes ErrImagePull, then ImagePullBackOff while the
	// back-off runs, then ErrImagePull again at the next attempt.
	var seen []string
	deadline := time.After(waitLimit)
	for len(seen) < 3 {
		select {
		case ev := <-w.ResultChan():
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted || p.UID != pod.UID {
				continue
			}
			cs := containerStatus(p, "app")
			if cs == nil || cs.State.Waiting == nil {
				continue
			}
			r := cs.State.Waiting.Reason
			if (r == "ErrImagePull" || r == "ImagePullBackOff") && (len(seen) == 0 || seen[len(seen)-1] != r) {
				seen = append(seen, r)
				if r == "ErrImagePull" && cs.State.Waiting.Message == "" {
					t.Error("ErrImagePull without a message")
				}
			}
		case <-deadline:
			t.Fatalf("waiting reasons seen: %v, want ErrImagePull, ImagePullBackOff, ErrImagePull", seen)
		}
	}
	if !slices.Equal(seen, []string{"ErrImagePull", "ImagePullBackOff", "ErrImagePull"}) {
		t.Errorf("waiting reasons %v", seen)
	}
	got := c.waitPod(t, ns, pod.Name, "pending", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodPending })
	eventually(t, "Failed and BackOff events", func() bool { return hasAll(c.events(t, got), "Pulling", "Failed", "BackOff") })

	// imagePullPolicy Never with no image: ErrImageNeverPull, no pull.
	pod = c.createPod(t, newPod("never", n.name, nil, corev1.Container{Name: "app", Image: "example.com/absent:v1", ImagePullPolicy: corev1.PullNever}))
	got = c.waitPod(t, ns, pod.Name, "ErrImageNeverPull", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ErrImageNeverPull"
	})
	if msg := containerStatus(got, "app").State.Waiting.Message; msg != `Container image "example.com/absent:v1" is not present with pull policy of Never` {
		t.Errorf("message %q", msg)
	}
	if slices.Contains(n.rt.Pulls(), "example.com/absent:v1") {
		t.Error("pulled an image with policy Never")
	}
}

func TestKubelet_Run_restartAdoptsRunningContainers(t *testing.T) {
	c := startCluster(t)
	rt := simulated.New(simulated.Config{SandboxIP: "127.0.0.1"})
	dir := t.TempDir()
	n := startKubelet(t, c, "node-restart", rt, dir, nil)
	var pods []*corev1.Pod
	for _, name := range []string{"keep-a", "keep-b", "keep-c", "deleted"} {
		p := newPod(name, n.name, nil)
		if name == "keep-c" {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox"}}
			p.Annotations = map[string]string{simulated.AnnotationExitCode + ".init": "0"}
		}
		pods = append(pods, c.createPod(t, p))
	}
	ids := map[string]string{}
	for _, p := range pods {
		got := c.waitPod(t, ns, p.Name, "Ready", podReady)
		ids[p.Name] = containerStatus(got, "app").ContainerID
	}
	n.stop()

	// While the kubelet is down, one pod is deleted for good.
	if err := c.Clientset.CoreV1().Pods(ns).Delete(t.Context(), "deleted", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	before := len(rt.Configs(string(pods[0].UID), ""))

	n2 := startKubelet(t, c, "node-restart", rt, dir, nil)
	deleted := pods[3]
	eventually(t, "the deleted pod's containers and directory removed", func() bool {
		_, running := rt.Running(string(deleted.UID), "app")
		_, err := os.Stat(filepath.Join(dir, "pods", string(deleted.UID)))
		return !running && os.IsNotExist(err)
	})
	if len(rt.StopCalls(string(deleted.UID))) != 1 {
		t.Errorf("stop calls for the deleted pod: %+v", rt.StopCalls(string(deleted.UID)))
	}
	for _, p := range pods[:3] {
		got := c.waitPod(t, ns, p.Name, "Ready", podReady)
		cs := containerStatus(got, "app")
		if cs.ContainerID != ids[p.Name] || cs.RestartCount != 0 {
			t.Errorf("%s: container %s restarts %d, want the same container %s", p.Name, cs.ContainerID, cs.RestartCount, ids[p.Name])
		}
	}
	// Give the new kubelet a few syncs to do something wrong.
	time.Sleep(500 * time.Millisecond)
	for _, p := range pods[:3] {
		if got := len(rt.Configs(string(p.UID), "")); got != map[bool]int{true: 2, false: 1}[p.Name == "keep-c"] {
			t.Errorf("%s: %d containers created in all, want no new ones", p.Name, got)
		}
	}
	if after := len(rt.Configs(string(pods[0].UID), "")); after != before {
		t.Errorf("keep-a: %d creates before the restart, %d after", before, after)
	}
	_ = n2
}
