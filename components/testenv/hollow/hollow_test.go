package hollow_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/components/testenv/hollow"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Hollow nodes run the Pods bound to them; a stopped one stops renewing
// its Lease and a restarted one adopts the containers it left running.
func TestStart_stopRestart(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	nodes := hollow.Start(t, env, hollow.Options{Nodes: 2, Kubelet: func(c *kubelet.Config) {
		c.LeaseDuration = time.Second
		c.StatusPeriod = 200 * time.Millisecond
	}})
	if nodes[0].Name != "hollow-000" || nodes[1].Name != "hollow-001" {
		t.Fatalf("names %s, %s", nodes[0].Name, nodes[1].Name)
	}
	n, err := cs.CoreV1().Nodes().Get(t.Context(), "hollow-001", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Status.Capacity.Pods().Value(); got != 110 {
		t.Errorf("pods capacity %d, want 110", got)
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "hollow-001",
			Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if _, err := cs.CoreV1().Pods("default").Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var running *corev1.Pod
	eventually(t, "the pod Ready with an IP from the node's /24", func() bool {
		running, err = cs.CoreV1().Pods("default").Get(t.Context(), "p", metav1.GetOptions{})
		return err == nil && podReady(running) && running.Status.PodIP != ""
	})
	if ip := running.Status.PodIP; len(ip) < 8 || ip[:8] != "10.42.1." {
		t.Errorf("pod IP %s, want one of hollow-001's 10.42.1.0/24", ip)
	}

	renewTime := func() time.Time {
		l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(t.Context(), "hollow-001", metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil {
			t.Fatalf("lease: %v", err)
		}
		return l.Spec.RenewTime.Time
	}
	nodes[1].Stop()
	stopped := renewTime()
	time.Sleep(time.Second) // four renew periods
	if got := renewTime(); !got.Equal(stopped) {
		t.Fatalf("lease renewed at %v after Stop", got)
	}

	nodes[1].Restart()
	eventually(t, "the lease renewed again", func() bool { return renewTime().After(stopped) })
	again, err := cs.CoreV1().Pods("default").Get(t.Context(), "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := again.Status.ContainerStatuses[0], running.Status.ContainerStatuses[0]; a.ContainerID != b.ContainerID || a.RestartCount != 0 {
		t.Errorf("container %s (restarts %d) after the restart, want %s adopted", a.ContainerID, a.RestartCount, b.ContainerID)
	}
}
