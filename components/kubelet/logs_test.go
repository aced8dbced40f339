package kubelet_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/kubelet/simulated"
	"kiln.dev/kiln/components/testenv"
)

// kubectl runs the real kubectl against the cluster and returns its
// output; failures fail the test.
func kubectl(t *testing.T, c *cluster, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), testenv.Kubectl(t), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestKubelet_logs_kubectl(t *testing.T) {
	c := startCluster(t)
	testenv.Kubectl(t)
	n := simNode(t, c, "node-logs")

	// Two containers, so kubectl needs -c.
	pod := c.createPod(t, newPod("talker", n.name, map[string]string{
		simulated.AnnotationLog + ".app": "line one\nline two\nline three",
	}, corev1.Container{Name: "app", Image: "busybox"}, corev1.Container{Name: "side", Image: "busybox"}))
	c.waitPod(t, ns, pod.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })

	out := kubectl(t, c, "logs", "talker", "-c", "app")
	want := "sim: app started (attempt 0)\nline one\nline two\nline three\n"
	if out != want {
		t.Errorf("kubectl logs -c app:\n%q\nwant\n%q", out, want)
	}
	if out := kubectl(t, c, "logs", "talker", "-c", "app", "--tail=2"); out != "line two\nline three\n" {
		t.Errorf("--tail=2: %q", out)
	}
	out = kubectl(t, c, "logs", "talker", "-c", "app", "--timestamps", "--tail=1")
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line three\n$`).MatchString(out) {
		t.Errorf("--timestamps: %q", out)
	}
	if out := kubectl(t, c, "logs", "talker", "-c", "app", "--limit-bytes=8"); out != "sim: app" {
		t.Errorf("--limit-bytes=8: %q", out)
	}
	if out := kubectl(t, c, "logs", "talker", "-c", "side"); out != "sim: side started (attempt 0)\n" {
		t.Errorf("-c side: %q", out)
	}

	// --previous: the instance before a restart.
	crash := c.createPod(t, newPod("crasher", n.name, map[string]string{
		simulated.AnnotationExitCode:    "1",
		simulated.AnnotationRunDuration: "200ms",
	}))
	c.waitPod(t, ns, crash.Name, "restarted", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs != nil && cs.RestartCount >= 1
	})
	// It keeps crashing, so which attempt is the previous one depends on
	// timing: any, whole.
	out = kubectl(t, c, "logs", "crasher", "--previous")
	if !regexp.MustCompile(`^sim: app started \(attempt \d+\)\nsim: app exited with code 1\n$`).MatchString(out) {
		t.Errorf("--previous: %q", out)
	}

	// -f follows until the container exits.
	fp := newPod("follower", n.name, map[string]string{
		simulated.AnnotationLogInterval: "100ms",
		simulated.AnnotationRunDuration: "1500ms",
	})
	fp.Spec.RestartPolicy = corev1.RestartPolicyNever
	follow := c.createPod(t, fp)
	c.waitPod(t, ns, follow.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	start := time.Now()
	out = kubectl(t, c, "logs", "-f", "follower")
	t.Logf("kubectl logs -f returned after %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, "tick 3\n") || !strings.HasSuffix(out, "sim: app exited with code 0\n") {
		t.Errorf("-f: %q", out)
	}
}

func TestKubelet_logs_authentication(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-auth")
	pod := c.createPod(t, newPod("quiet", n.name, nil))
	c.waitPod(t, ns, pod.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	nd, err := c.Clientset.CoreV1().Nodes().Get(t.Context(), n.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", nd.Status.DaemonEndpoints.KubeletEndpoint.Port)
	roots := x509.NewCertPool()
	roots.AddCert(c.ca.Cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	get := func(path, token string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz", ""); code != http.StatusOK || body != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	logs := "/containerLogs/default/quiet/app"
	for _, token := range []string{"", "not-a-token"} {
		if code, _ := get(logs, token); code != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", token, code)
		}
	}
	if code, body := get(logs, c.Token); code != http.StatusOK || !strings.Contains(body, "started") {
		t.Errorf("admin token: %d %q", code, body)
	}
	if code, body := get(logs+"?previous=true", c.Token); code != http.StatusBadRequest || !strings.Contains(body, "previous terminated container") {
		t.Errorf("previous without one: %d %q", code, body)
	}
	if code, _ := get("/containerLogs/default/quiet/nope", c.Token); code != http.StatusNotFound {
		t.Errorf("unknown container: %d", code)
	}
}
