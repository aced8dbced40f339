package kubelet_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"kiln.dev/kiln/components/kubelet/simulated"
)

// healthServer answers probes with 200 while healthy is set, else 500.
func healthServer(t *testing.T) (port int32, healthy *atomic.Bool, hits *atomic.Int64) {
	t.Helper()
	healthy, hits = &atomic.Bool{}, &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/healthz" || r.Header.Get("User-Agent") == "" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	n, _ := strconv.Atoi(p)
	return int32(n), healthy, hits
}

func httpProbe(port int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
		PeriodSeconds:    1,
		TimeoutSeconds:   1,
		SuccessThreshold: 1,
		FailureThreshold: 1,
	}
}

func TestKubelet_probes_readinessGatesReady(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-ready")
	port, healthy, hits := healthServer(t)
	ctr := corev1.Container{Name: "app", Image: "example.com/app:v1", ReadinessProbe: httpProbe(port),
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}}}
	pod := c.createPod(t, newPod("ready", n.name, nil, ctr))

	// Running but not Ready while the probe fails.
	got := c.waitPod(t, ns, pod.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	eventually(t, "a probe", func() bool { return hits.Load() > 0 })
	got = c.waitPod(t, ns, pod.Name, "status after a probe", func(p *corev1.Pod) bool { return true })
	if podReady(got) || containerStatus(got, "app").Ready {
		t.Fatalf("Ready while the readiness probe fails: %s", describe(got))
	}
	if r := condition(got, corev1.ContainersReady); r != corev1.ConditionFalse {
		t.Errorf("ContainersReady = %s", r)
	}

	healthy.Store(true)
	c.waitPod(t, ns, pod.Name, "Ready", podReady)
	healthy.Store(false)
	c.waitPod(t, ns, pod.Name, "not Ready again", func(p *corev1.Pod) bool { return !podReady(p) })
	eventually(t, "Unhealthy event", func() bool { return hasAll(c.events(t, got), "Unhealthy") })
	if recs := n.rt.Configs(string(pod.UID), "app"); len(recs) != 1 {
		t.Errorf("a readiness failure restarted the container: %d starts", len(recs))
	}
}

func TestKubelet_probes_livenessFailureRestarts(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-live")
	port, healthy, _ := healthServer(t)
	healthy.Store(true)
	ctr := corev1.Container{Name: "app", Image: "example.com/app:v1", LivenessProbe: httpProbe(port),
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}}}
	pod := c.createPod(t, newPod("live", n.name, nil, ctr))
	c.waitPod(t, ns, pod.Name, "Ready", podReady)

	healthy.Store(false)
	got := c.waitPod(t, ns, pod.Name, "restarted", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs != nil && cs.RestartCount >= 1
	})
	healthy.Store(true)
	got = c.waitPod(t, ns, pod.Name, "running again", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs.State.Running != nil && cs.LastTerminationState.Terminated != nil
	})
	stops := n.rt.StopCalls(string(pod.UID))
	if len(stops) == 0 || stops[0].Timeout != 30*time.Second {
		t.Errorf("stop calls %+v, want one with the pod's 30s grace period", stops)
	}
	eventually(t, "Killing and Unhealthy events", func() bool { return hasAll(c.events(t, got), "Killing", "Unhealthy") })
}

func TestKubelet_probes_execThroughRuntime(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-exec")
	probe := &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}},
		PeriodSeconds: 1, TimeoutSeconds: 2, SuccessThreshold: 1, FailureThreshold: 1,
	}
	ctr := corev1.Container{Name: "app", Image: "example.com/app:v1", ReadinessProbe: probe}
	pod := c.createPod(t, newPod("exec", n.name, map[string]string{simulated.AnnotationExecExitCode: "1"}, ctr))
	c.waitPod(t, ns, pod.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	eventually(t, "a readiness exec", func() bool {
		return slices.ContainsFunc(n.rt.ExecCalls(string(pod.UID)), func(e simulated.ExecCall) bool {
			return slices.Equal(e.Cmd, []string{"cat", "/tmp/ready"})
		})
	})
	got := c.waitPod(t, ns, pod.Name, "status", func(*corev1.Pod) bool { return true })
	if cs := containerStatus(got, "app"); cs.Ready {
		t.Fatalf("ready with an exec probe exiting 1: %s", describe(got))
	}
	n.rt.SetExecExitCode(string(pod.UID), "app", 0)
	c.waitPod(t, ns, pod.Name, "Ready", podReady)
	for _, e := range n.rt.ExecCalls(string(pod.UID)) {
		if e.Timeout != 2*time.Second {
			t.Errorf("exec %v with timeout %v, want the probe's 2s", e.Cmd, e.Timeout)
		}
	}

	// A startup probe holds the readiness probe back until it passes.
	startup := probe.DeepCopy()
	startup.Exec.Command = []string{"test", "-f", "/started"}
	startup.FailureThreshold = 1000 // never given up on here
	ctr.StartupProbe = startup
	pod = c.createPod(t, newPod("startup", n.name, map[string]string{simulated.AnnotationExecExitCode: "1"}, ctr))
	eventually(t, "a startup exec", func() bool { return len(n.rt.ExecCalls(string(pod.UID))) > 0 })
	got = c.waitPod(t, ns, pod.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if cs := containerStatus(got, "app"); cs.Started == nil || *cs.Started || cs.Ready {
		t.Fatalf("started or ready before the startup probe passed: %s", describe(got))
	}
	for _, e := range n.rt.ExecCalls(string(pod.UID)) {
		if e.Cmd[0] != "test" {
			t.Fatalf("readiness probe ran before the startup probe passed: %v", e.Cmd)
		}
	}
	n.rt.SetExecExitCode(string(pod.UID), "app", 0)
	got = c.waitPod(t, ns, pod.Name, "Ready", podReady)
	if cs := containerStatus(got, "app"); cs.Started == nil || !*cs.Started {
		t.Errorf("started = %v after the startup probe passed", cs.Started)
	}
}
