package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kiln.dev/kiln/components/testenv"
)

// TestDemo_makeRun is the README's `make run` on this machine, end to
// end: the demo image built as `make images` builds it into DATA_DIR/images,
// then the real binary started as `make run` starts it
// (`kiln server --data-dir DIR --source dir:examples-repo`, on a copy of
// examples-repo/), with every component on: the sync applies the demo, the
// scheduler places it, the kubelet runs it in real containerd with CNI,
// the proxy writes real iptables rules and the cluster DNS answers pods.
// The flags beyond make run's keep it beside other tests (its own ports
// and node name) and name the node's address: --node-ip is what kiln picks
// by default, the address on the default route (see demoNodeIP). It then
// checks what issue 7 asks of Services, one step after another: each
// step starts from the state the one before left, so the first failure
// ends the test.
//
// It needs root, and it works in the host's network namespace as a person
// does, so it leaves the host as it found it: pods drained, kiln stopped
// with SIGTERM, `kiln server --cleanup-network`, then what is left of the
// node (bridge, masquerade chain, anything a failure left) removed.
func TestDemo_makeRun(t *testing.T) {
	d := startDemo(t)
	ctx := t.Context()
	step := func(name string, fn func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}

	// The demo as committed, scaled to 3 in the copy before kiln starts.
	pods := d.waitPods(3)
	d.waitEndpointRules("demo/web", pods)
	web := d.service("web")
	clusterURL := "http://" + net.JoinHostPort(web.Spec.ClusterIP, "80") + "/"

	step("clusterIP from the host reaches every pod", func(t *testing.T) {
		seen := d.spread(t, clusterURL, demoGreeting, podNames(pods), 100)
		t.Logf("%s: %v", clusterURL, seen)
	})

	step("NodePort answers on the node's address and on 127.0.0.1", func(t *testing.T) {
		np := strconv.Itoa(int(web.Spec.Ports[0].NodePort))
		for _, host := range []string{d.nodeIP, "127.0.0.1"} {
			url := "http://" + net.JoinHostPort(host, np) + "/"
			seen := d.spread(t, url, demoGreeting, podNames(pods), 100)
			t.Logf("%s: %v", url, seen)
		}
	})

	step("pods reach the Service by name", func(t *testing.T) {
		d.checkFromPod(t, podNames(pods),
			"http://web.demo.svc.cluster.local/", // the full name
			"http://web/",                        // the pod's search path
			"http://web.demo/",
		)
	})

	step("kubectl exec reaches a container of the Deployment", func(t *testing.T) {
		// The README's line: through kiln's API server to its kubelet.
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, testenv.Kubectl(t), "--kubeconfig", filepath.Join(d.dataDir, "admin.kubeconfig"),
			"exec", "-n", "demo", "deploy/web", "--", "/demo-web", "env")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "GREETING=") {
			t.Fatalf("kubectl exec -n demo deploy/web -- /demo-web env: %v\n%s", err, out)
		}
	})

	step("a pod finds its service account's token, the CA and its namespace", func(t *testing.T) {
		const dir = "/var/run/secrets/kubernetes.io/serviceaccount/"
		read := func(file string) string {
			t.Helper()
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, testenv.Kubectl(t), "--kubeconfig", filepath.Join(d.dataDir, "admin.kubeconfig"),
				"exec", "-n", "demo", "deploy/web", "--", "/demo-web", "cat", dir+file)
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("cat %s in the pod: %v", dir+file, err)
			}
			return string(out)
		}
		if ns := read("namespace"); ns != "demo" {
			t.Errorf("namespace file %q, want demo", ns)
		}
		ca, err := os.ReadFile(filepath.Join(d.dataDir, "tls", "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if got := read("ca.crt"); got != string(ca) {
			t.Errorf("ca.crt in the pod is not the cluster's CA:\n%s", got)
		}
		review, err := d.cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: read("token")}}, metav1.CreateOptions{})
		if err != nil || !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:demo:default" {
			t.Fatalf("the pod's token reviews as %+v, %v", review, err)
		}
	})

	step("a pod calls the API through the kubernetes Service with its token", func(t *testing.T) {
		// As client-go's in-cluster config does: KUBERNETES_SERVICE_HOST
		// (the ClusterIP), then the Service's DNS name; both must match
		// the serving certificate. The API listens on loopback, so this
		// goes through the node-local address the server adds.
		for _, args := range [][]string{{}, {"-host", "kubernetes.default.svc:443"}} {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			cmd := exec.CommandContext(ctx, testenv.Kubectl(t), append([]string{"--kubeconfig", filepath.Join(d.dataDir, "admin.kubeconfig"),
				"exec", "-n", "demo", "deploy/web", "--", "/demo-web", "whoami"}, args...)...)
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			cancel()
			if got := strings.TrimSpace(string(out)); err != nil || got != "system:serviceaccount:demo:default" {
				t.Fatalf("demo-web whoami %v in the pod: %v\n%s", args, err, out)
			}
		}
	})

	step("kubectl run -i --rm: stdin to a new pod's container and its output back, then the pod goes", func(t *testing.T) {
		// kubectl attaches (pods/attach) once the pod runs; the end of
		// its input ends the container's (stdinOnce), so cat exits.
		ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, testenv.Kubectl(t), "--kubeconfig", filepath.Join(d.dataDir, "admin.kubeconfig"),
			"run", "-n", "demo", "catter", "-i", "--rm", "--restart", "Never", "--image", "kiln.dev/demo-web:0.1.0",
			"--command", "--", "/demo-web", "cat")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		cmd.Stdin = strings.NewReader("typed into kubectl\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl run -i --rm: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
		}
		if !strings.Contains(stdout.String(), "typed into kubectl\n") {
			t.Fatalf("kubectl run -i printed %q, want the input back\nstderr:\n%s", &stdout, &stderr)
		}
		d.eventually("catter deleted (--rm)", func() error {
			_, err := d.cs.CoreV1().Pods("demo").Get(ctx, "catter", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("pod catter: %v", err)
		})
	})

	step("kubectl debug runs an ephemeral container in a running pod, in its network", func(t *testing.T) {
		// The image has no shell; the debug container brings the HTTP
		// client and asks the app on the pod's loopback.
		ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		target := pods[0].Name
		cmd := exec.CommandContext(ctx, testenv.Kubectl(t), "--kubeconfig", filepath.Join(d.dataDir, "admin.kubeconfig"),
			"debug", "-n", "demo", target, "-i", "--quiet", "--profile", "general", "--container", "debugger", "--image", "kiln.dev/demo-web:0.1.0",
			"--", "/demo-web", "get", "http://127.0.0.1:8080/")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), demoGreeting+" from "+target) {
			t.Fatalf("kubectl debug: %v\n%s", err, out)
		}
		pod, err := d.cs.CoreV1().Pods("demo").Get(ctx, target, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(pod.Status.EphemeralContainerStatuses) != 1 || pod.Status.EphemeralContainerStatuses[0].Name != "debugger" {
			t.Fatalf("ephemeral container statuses %+v", pod.Status.EphemeralContainerStatuses)
		}
		if n := pod.Status.ContainerStatuses[0].RestartCount; n != 0 {
			t.Errorf("the app container restarted %d times", n)
		}

		// --target: the debug container sees the app's processes; its
		// own process is not PID 1 there.
		cmd = exec.CommandContext(ctx, testenv.Kubectl(t), "--kubeconfig", filepath.Join(d.dataDir, "admin.kubeconfig"),
			"debug", "-n", "demo", target, "-i", "--quiet", "--profile", "general", "--container", "peek", "--target", "web",
			"--image", "kiln.dev/demo-web:0.1.0", "--", "/demo-web", "cat", "/proc/1/cmdline")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err = cmd.CombinedOutput()
		if err == nil && len(bytes.TrimSpace(out)) == 0 {
			// cat can end before kubectl attaches, as with kube; its
			// output is then in the container's log.
			cmd = exec.CommandContext(ctx, testenv.Kubectl(t), "--kubeconfig", filepath.Join(d.dataDir, "admin.kubeconfig"),
				"logs", "-n", "demo", target, "-c", "peek")
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			out, err = cmd.CombinedOutput()
		}
		if err != nil || !strings.Contains(string(out), "/demo-web") || strings.Contains(string(out), "cat") {
			t.Fatalf("kubectl debug --target web, PID 1's command line: %v\n%q", err, out)
		}
	})

	step("kubectl top shows the pods' and the node's usage (metrics.k8s.io)", func(t *testing.T) {
		// The kubelet samples every 10 s; a pod has metrics from its
		// second sample.
		top := func(args ...string) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, testenv.Kubectl(t), append([]string{"--kubeconfig", filepath.Join(d.dataDir, "admin.kubeconfig"), "top"}, args...)...)
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		// NAME CPU(cores) MEMORY(bytes), e.g. "web-x 1m 5Mi".
		usage := regexp.MustCompile(`(?m)^(\S+)\s+(\d+)m\s+(\d+)Mi\s*$`)
		var podsOut string
		d.eventually("kubectl top pod lists every web pod with its usage", func() error {
			out, err := top("pod", "-n", "demo", "-l", "app=web", "--no-headers")
			podsOut = out
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			seen := map[string]bool{}
			for _, m := range usage.FindAllStringSubmatch(out, -1) {
				if mem, _ := strconv.Atoi(m[3]); mem > 0 {
					seen[m[1]] = true
				}
			}
			for _, p := range pods {
				if !seen[p.Name] {
					return fmt.Errorf("no usage for %s in:\n%s", p.Name, out)
				}
			}
			return nil
		})
		out, err := top("node", "--no-headers")
		// NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%
		if err != nil || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(d.nodeName)+`\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%`).MatchString(out) {
			t.Fatalf("kubectl top node: %v\n%s", err, out)
		}
		t.Logf("kubectl top pod:\n%skubectl top node:\n%s", podsOut, out)
	})

	step("a StatefulSet from the repo: ordered pods, stable DNS names, data kept across a restart", func(t *testing.T) {
		d.writeFile("app/store.yaml", demoStore)
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		ready := func(name string) (*corev1.Pod, error) {
			p, err := d.cs.CoreV1().Pods("demo").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
					return p, nil
				}
			}
			return nil, fmt.Errorf("pod %s not ready: %s", name, p.Status.Phase)
		}
		var store0, store1 *corev1.Pod
		d.eventually("store-0 and store-1 ready", func() (err error) {
			if store0, err = ready("store-0"); err != nil {
				return err
			}
			store1, err = ready("store-1")
			return err
		})
		// OrderedReady: store-1 was made only once store-0 was Ready.
		for _, c := range store0.Status.Conditions {
			if c.Type == corev1.PodReady && store1.CreationTimestamp.Before(&c.LastTransitionTime) {
				t.Errorf("store-1 created at %v, before store-0 was Ready at %v", store1.CreationTimestamp, c.LastTransitionTime)
			}
		}
		for _, n := range []string{"data-store-0", "data-store-1"} {
			pvc, err := d.cs.CoreV1().PersistentVolumeClaims("demo").Get(ctx, n, metav1.GetOptions{})
			if err != nil || pvc.Status.Phase != corev1.ClaimBound {
				t.Fatalf("claim %s: %v %+v", n, err, pvc.Status)
			}
		}
		kubectl := func(args ...string) string {
			t.Helper()
			cmd := exec.CommandContext(ctx, testenv.Kubectl(t), append([]string{"--kubeconfig", filepath.Join(d.dataDir, "admin.kubeconfig"), "-n", "demo"}, args...)...)
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		// The headless Service gives each pod its own name.
		d.eventually("store-0.store resolves from store-1", func() error {
			cmd := exec.CommandContext(ctx, testenv.Kubectl(t), "--kubeconfig", filepath.Join(d.dataDir, "admin.kubeconfig"), "-n", "demo",
				"exec", "store-1", "--", "/demo-web", "get", "http://store-0.store:8080/")
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "from store-0") {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		kubectl("exec", "store-0", "--", "/demo-web", "write", "/data/note", "kept by store-0")
		if err := d.cs.CoreV1().Pods("demo").Delete(ctx, "store-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		d.eventually("store-0 back", func() error {
			p, err := ready("store-0")
			if err == nil && p.UID == store0.UID {
				return errors.New("still the old store-0")
			}
			return err
		})
		if out := kubectl("exec", "store-0", "--", "/demo-web", "cat", "/data/note"); !strings.Contains(out, "kept by store-0") {
			t.Fatalf("store-0's volume after its restart holds %q", out)
		}
		if out := kubectl("get", "pvc"); !strings.Contains(out, "data-store-0") || !strings.Contains(out, "Bound") || !strings.Contains(out, "local-path") {
			t.Errorf("kubectl get pvc:\n%s", out)
		}
	})

	step("an Ingress in the repo routes HTTP by host to the Service's pods", func(t *testing.T) {
		d.writeFile("app/ingress.yaml", demoIngress)
		get := func(host string) (int, string, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.ingress+"/", nil)
			if err != nil {
				return 0, "", err
			}
			req.Host = host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b), err
		}
		seen := map[string]bool{}
		d.eventually("demo.example through the ingress reaches every web pod", func() error {
			code, body, err := get("demo.example")
			if err != nil || code != http.StatusOK || !strings.HasPrefix(body, demoGreeting+" from web-") {
				return fmt.Errorf("GET demo.example: %d %q %v", code, body, err)
			}
			host := strings.Fields(strings.TrimPrefix(body, demoGreeting+" from "))[0]
			seen[host] = true
			if len(seen) < len(pods) {
				return fmt.Errorf("answers from %d of %d pods so far", len(seen), len(pods))
			}
			return nil
		})
		if code, body, err := get("other.example"); err != nil || code != http.StatusNotFound {
			t.Errorf("GET other.example: %d %q %v, want 404", code, body, err)
		}
		d.eventually("the ingress's address in its status", func() error {
			ing, err := d.cs.NetworkingV1().Ingresses("demo").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if lb := ing.Status.LoadBalancer.Ingress; len(lb) != 1 || lb[0].IP != d.nodeIP {
				return fmt.Errorf("status %+v, want %s", lb, d.nodeIP)
			}
			return nil
		})
	})

	step("a Service without endpoints refuses connections", func(t *testing.T) {
		d.writeFile("app/nobody.yaml", demoNobodyService)
		nobody := d.waitService("nobody")
		d.waitRules("nobody's reject rule", func(rules string) error {
			if !strings.Contains(rules, `"demo/nobody:http has no endpoints"`) {
				return errors.New("no reject rule for demo/nobody")
			}
			return nil
		})
		addr := net.JoinHostPort(nobody.Spec.ClusterIP, "80")
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("dial %s (no endpoints) succeeded", addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s (no endpoints): %v, want connection refused", addr, err)
		}
	})

	step("scaling to 1 in the repo narrows the spread", func(t *testing.T) {
		d.setReplicas(1)
		one := d.waitPods(1)
		d.waitEndpointRules("demo/web", one)
		seen := d.spread(t, clusterURL, demoGreeting, podNames(one), 20)
		if seen[one[0].Name] != 20 {
			t.Errorf("answers %v, want all 20 from %s", seen, one[0].Name)
		}
		pods = one
	})

	step("deleting the pod moves the traffic to its replacement", func(t *testing.T) {
		old := pods[0].Name
		if err := d.cs.CoreV1().Pods("demo").Delete(ctx, old, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		var repl []corev1.Pod
		d.eventually("a replacement of "+old, func() error {
			repl = d.readyPods()
			if len(repl) != 1 || repl[0].Name == old {
				return fmt.Errorf("ready pods %v, want one other than %s", podNames(repl), old)
			}
			if all := d.allPods(); len(all) != 1 {
				return fmt.Errorf("pods %v, want %s gone", podNames(all), old)
			}
			return nil
		})
		d.waitEndpointRules("demo/web", repl)
		seen := d.spread(t, clusterURL, demoGreeting, podNames(repl), 20)
		if seen[repl[0].Name] != 20 {
			t.Errorf("answers %v, want all 20 from %s", seen, repl[0].Name)
		}
		pods = repl
	})

	step("a new greeting in the repo rolls the pods", func(t *testing.T) {
		// The README's second change: pods read the ConfigMap when they
		// start, so the pod template changes with it (an annotation).
		const greeting = "hello again from kiln"
		d.edit("app/configmap.yaml", `GREETING: "`+demoGreeting+`"`, `GREETING: "`+greeting+`"`)
		d.edit("app/deployment.yaml", "  template:\n    metadata:\n", "  template:\n    metadata:\n      annotations:\n        demo.kiln.dev/greeting: \"2\"\n")
		old := pods[0].Name
		var repl []corev1.Pod
		d.eventually("the rollout", func() error {
			repl = d.readyPods()
			if all := d.allPods(); len(all) != 1 || len(repl) != 1 || repl[0].Name == old {
				return fmt.Errorf("pods %s, want one ready other than %s", podSummary(all), old)
			}
			return nil
		})
		d.waitEndpointRules("demo/web", repl)
		seen := d.spread(t, clusterURL, greeting, podNames(repl), 20)
		t.Logf("%s: %v", clusterURL, seen)
	})

	step("removing a Service's file removes its rules", func(t *testing.T) {
		rules := d.rules()
		var chains []string // web's per-service chains, to be gone too
		for _, m := range regexp.MustCompile(`(?m)^:(KILN-(?:SVC|SEP|EXT|SVL)-\S+)`).FindAllStringSubmatch(rules, -1) {
			if demoChainOf(rules, m[1], "demo/web:http") {
				chains = append(chains, m[1])
			}
		}
		if len(chains) == 0 {
			t.Fatalf("no chains of demo/web in iptables-save:\n%s", rules)
		}
		nobody := d.service("nobody")
		d.removeFile("app/service.yaml")
		d.removeFile("app/nobody.yaml")
		for _, name := range []string{"web", "nobody"} {
			d.eventually("Service "+name+" pruned", func() error {
				_, err := d.cs.CoreV1().Services("demo").Get(ctx, name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return nil
				}
				return fmt.Errorf("still there (%v)", err)
			})
		}
		gone := append([]string{
			"demo/web", "demo/nobody", web.Spec.ClusterIP + "/32", nobody.Spec.ClusterIP + "/32",
			fmt.Sprintf("--dport %d", web.Spec.Ports[0].NodePort),
		}, chains...)
		d.waitRules("no rule of the removed Services", func(rules string) error {
			var left []string
			for _, s := range gone {
				if strings.Contains(rules, s) {
					left = append(left, s)
				}
			}
			if len(left) > 0 {
				return fmt.Errorf("iptables-save still holds %q", left)
			}
			return nil
		})
	})
}

// demoWait bounds each wait of the demo test.
const demoWait = 90 * time.Second

// demoNobodyService is a Service whose selector matches no pod.
const demoNobodyService = `apiVersion: v1
kind: Service
metadata:
  name: nobody
  namespace: demo
spec:
  selector:
    app: nobody
  ports:
    - name: http
      port: 80
      targetPort: 8080
`

// demoStore is a StatefulSet of two demo-web pods behind a headless
// Service, each with a claim from the default StorageClass.
const demoStore = `apiVersion: v1
kind: Service
metadata:
  name: store
  namespace: demo
spec:
  clusterIP: None
  selector:
    app: store
  ports:
    - name: http
      port: 8080
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: store
  namespace: demo
spec:
  serviceName: store
  replicas: 2
  selector:
    matchLabels:
      app: store
  template:
    metadata:
      labels:
        app: store
    spec:
      containers:
        - name: store
          image: kiln.dev/demo-web:0.1.0
          ports:
            - containerPort: 8080
          readinessProbe:
            httpGet:
              path: /healthz
              port: 8080
            periodSeconds: 1
          volumeMounts:
            - name: data
              mountPath: /data
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: ["ReadWriteOnce"]
        resources:
          requests:
            storage: 16Mi
`

// demoIngress routes the host demo.example to the web Service.
const demoIngress = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: demo
spec:
  rules:
    - host: demo.example
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: web
                port:
                  name: http
`

// demo is one `kiln server` with everything on, syncing a copy of
// examples-repo.
type demo struct {
	t        *testing.T
	bin      string
	dataDir  string
	repo     string // the copy of examples-repo/ kiln syncs
	logPath  string
	nodeName string
	nodeIP   string
	// ingress is the HTTP address the node serves Ingresses on.
	ingress string
	cs      kubernetes.Interface
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// demoRequireHost skips (fails under KILN_E2E=require) unless this host
// can run a kiln node: root, the tools the kubelet and proxy use, a
// default route (ClusterIPs from the host are routed by it before the
// proxy's DNAT), and no other kiln node using the host's network.
func demoRequireHost(t *testing.T) {
	t.Helper()
	testenv.Require(t, "root", os.Geteuid() == 0)
	for _, bin := range []string{"go", "containerd", "containerd-shim-runc-v2", "runc", "iptables", "iptables-save", "iptables-restore", "ip"} {
		_, err := exec.LookPath(bin)
		testenv.Require(t, bin+" on PATH", err == nil)
	}
	cni := false
	for _, dir := range []string{"/usr/lib/cni", "/opt/cni/bin"} {
		if _, err := os.Stat(filepath.Join(dir, "bridge")); err == nil {
			cni = true
		}
	}
	testenv.Require(t, "the CNI plugins in /usr/lib/cni or /opt/cni/bin", cni)
	testenv.Require(t, "a default route", demoNodeIP() != "")
	// A node's bridge, DNS link and proxy chains have fixed names: two
	// kiln nodes on one host would rewrite each other's rules.
	_, err := net.InterfaceByName("kiln-dns")
	testenv.Require(t, "no other kiln node on this host (a kiln-dns link exists; `kiln server --cleanup-network` removes a stale one)", err != nil)
	_, err = net.InterfaceByName("kiln0")
	testenv.Require(t, "no other kiln node on this host (a kiln0 bridge exists)", err != nil)
}

// demoNodeIP is the address the kernel picks for the default route, as
// kiln's own default for --node-ip: it is where a NodePort answers from
// another machine, and pods reach the node at it (127.0.0.1 would be each
// pod's own loopback). "" without a default route.
func demoNodeIP() string {
	c, err := net.Dial("udp4", "203.0.113.1:9") // TEST-NET-3: nothing is sent
	if err != nil {
		return ""
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() && !a.IP.IsLoopback() {
		return a.IP.String()
	}
	return ""
}

// startDemo builds the binary and the demo image, copies examples-repo
// (scaled to 3) and starts kiln server on them. Cleanup (in this order):
// drain the pods, SIGTERM kiln, `kiln server --cleanup-network`, remove
// what is left of the node.
func startDemo(t *testing.T) *demo {
	t.Helper()
	demoRequireHost(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 3)
	_, _ = rand.Read(id)
	tmp := t.TempDir()
	d := &demo{
		t:        t,
		bin:      testenv.Binary(t),
		dataDir:  filepath.Join(tmp, "data"),
		repo:     filepath.Join(tmp, "examples-repo"),
		logPath:  filepath.Join(tmp, "kiln.log"),
		nodeName: "demo-" + hex.EncodeToString(id),
		nodeIP:   demoNodeIP(),
		exited:   make(chan struct{}),
	}

	// make images
	build := exec.CommandContext(t.Context(), "go", "run", "./components/internal/imagebuild/build-demo-web",
		"-o", filepath.Join(d.dataDir, "images", "demo-web.tar"))
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the demo image: %v\n%s", err, out)
	}
	if err := os.CopyFS(d.repo, os.DirFS(filepath.Join(root, "examples-repo"))); err != nil {
		t.Fatal(err)
	}
	d.setReplicas(3)

	// Registered first, so it runs last: whatever the steps before it
	// could not stop or remove.
	t.Cleanup(d.cleanupHost)

	// make run, beside other tests: free ports for the API, the dashboard
	// and the kubelet, a node name of its own.
	apiAddr := kilnFreeAddr(t)
	kl, err := net.Listen("tcp", net.JoinHostPort(d.nodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	kubeletPort := strconv.Itoa(kl.Addr().(*net.TCPAddr).Port)
	kl.Close()
	logf, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The ingress ports are free ones, not 80 and 443, which the host
	// may hold.
	d.ingress = kilnFreeAddr(t)
	d.cmd = exec.Command(d.bin, "server", "--data-dir", d.dataDir, "--source", "dir:"+d.repo,
		"--api-listen", apiAddr, "--dashboard-listen", kilnFreeAddr(t), "--kubelet-port", kubeletPort,
		"--node-name", d.nodeName, "--node-ip", d.nodeIP,
		"--ingress-listen", d.ingress, "--ingress-tls-listen", kilnFreeAddr(t))
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		logf.Close()
		close(d.exited)
	}()
	t.Cleanup(d.stop)
	t.Cleanup(d.drain)
	d.waitReady(filepath.Join(d.dataDir, "admin.kubeconfig"))
	return d
}

// waitReady waits for the kubeconfig kiln writes once its API is up and
// for /readyz.
func (d *demo) waitReady(kubeconfig string) {
	d.t.Helper()
	d.eventually("kiln ready", func() error {
		if d.cs == nil {
			if _, err := os.Stat(kubeconfig); err != nil {
				return err
			}
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return err
			}
			cfg.Timeout = 10 * time.Second
			if d.cs, err = kubernetes.NewForConfig(cfg); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(d.t.Context(), 2*time.Second)
		defer cancel()
		body, err := d.cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return err
		}
		if string(body) != "ok" {
			return fmt.Errorf("/readyz: %s", body)
		}
		return nil
	})
}

// eventually polls fn every 100ms until it returns nil, and fails the
// test with fn's last error after demoWait or when kiln has exited.
func (d *demo) eventually(what string, fn func() error) {
	d.t.Helper()
	deadline := time.Now().Add(demoWait)
	for {
		err := fn()
		if err == nil {
			return
		}
		select {
		case <-d.exited:
			d.t.Fatalf("%s: kiln exited (%v); last: %v", what, d.waitErr, err)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: not within %v: %v", what, demoWait, err)
		}
		select {
		case <-d.t.Context().Done():
			d.t.Fatalf("%s: %v", what, d.t.Context().Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeFile writes a file of the source, as a person edits the repo.
func (d *demo) writeFile(rel, content string) {
	d.t.Helper()
	if err := os.WriteFile(filepath.Join(d.repo, rel), []byte(content), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func (d *demo) removeFile(rel string) {
	d.t.Helper()
	if err := os.Remove(filepath.Join(d.repo, rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.t.Fatal(err)
	}
}

// edit replaces old with new in a file of the source; old must be there.
func (d *demo) edit(rel, old, new string) {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.repo, rel))
	if err != nil {
		d.t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		d.t.Fatalf("%s does not hold %q", rel, old)
	}
	d.writeFile(rel, strings.Replace(string(b), old, new, 1))
}

var demoReplicas = regexp.MustCompile(`(?m)^  replicas: \d+$`)

// setReplicas edits the Deployment's file in the source.
func (d *demo) setReplicas(n int) {
	d.t.Helper()
	path := filepath.Join(d.repo, "app", "deployment.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		d.t.Fatal(err)
	}
	if !demoReplicas.Match(b) {
		d.t.Fatalf("%s has no spec.replicas line", path)
	}
	d.writeFile("app/deployment.yaml", demoReplicas.ReplaceAllString(string(b), fmt.Sprintf("  replicas: %d", n)))
}

func (d *demo) allPods() []corev1.Pod {
	l, err := d.cs.CoreV1().Pods("demo").List(d.t.Context(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		return nil
	}
	return l.Items
}

// readyPods are the web pods that are Ready and not being deleted.
func (d *demo) readyPods() []corev1.Pod {
	var out []corev1.Pod
	for _, p := range d.allPods() {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out
}

// waitPods waits until exactly n web pods exist and all are Ready.
func (d *demo) waitPods(n int) []corev1.Pod {
	d.t.Helper()
	var ready []corev1.Pod
	d.eventually(fmt.Sprintf("%d ready web pods", n), func() error {
		all := d.allPods()
		ready = d.readyPods()
		if len(all) != n || len(ready) != n {
			return fmt.Errorf("%d pods, %d ready: %s", len(all), len(ready), podSummary(all))
		}
		return nil
	})
	return ready
}

func (d *demo) service(name string) *corev1.Service {
	d.t.Helper()
	s, err := d.cs.CoreV1().Services("demo").Get(d.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		d.t.Fatal(err)
	}
	return s
}

// waitService waits until the sync has created the Service.
func (d *demo) waitService(name string) *corev1.Service {
	d.t.Helper()
	var s *corev1.Service
	d.eventually("Service "+name, func() error {
		var err error
		s, err = d.cs.CoreV1().Services("demo").Get(d.t.Context(), name, metav1.GetOptions{})
		if err == nil && s.Spec.ClusterIP == "" {
			err = errors.New("no clusterIP")
		}
		return err
	})
	return s
}

// rules is iptables-save of the nat and filter tables. It takes no
// context, so that cleanup (after t.Context is done) can use it too.
func (d *demo) rules() string {
	d.t.Helper()
	var all strings.Builder
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			d.t.Fatalf("iptables-save -t %s: %v", table, err)
		}
		all.Write(out)
	}
	return all.String()
}

func (d *demo) waitRules(what string, fn func(rules string) error) {
	d.t.Helper()
	d.eventually(what, func() error { return fn(d.rules()) })
}

// waitEndpointRules waits until the proxy's rules for service (ns/name)
// DNAT to the pods and to no other address: until then a request may
// still go to a pod that is gone.
func (d *demo) waitEndpointRules(service string, pods []corev1.Pod) {
	d.t.Helper()
	want := map[string]bool{}
	for _, p := range pods {
		want[net.JoinHostPort(p.Status.PodIP, "8080")] = true
	}
	// iptables-save quotes every comment.
	dnat := regexp.MustCompile(`--comment "` + regexp.QuoteMeta(service) + `:http" .*-j DNAT --to-destination (\S+)`)
	d.waitRules(fmt.Sprintf("rules of %s to %v", service, slices.Sorted(maps.Keys(want))), func(rules string) error {
		got := map[string]bool{}
		for _, m := range dnat.FindAllStringSubmatch(rules, -1) {
			got[m[1]] = true
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("DNAT to %v", slices.Sorted(maps.Keys(got)))
		}
		return nil
	})
}

// demoAnswer is what the demo answers: "GREETING from HOSTNAME (request N)".
var demoAnswer = regexp.MustCompile(`^(.+) from (\S+) \(request \d+\)$`)

// demoGreeting is GREETING in examples-repo/app/configmap.yaml.
const demoGreeting = "hello from kiln"

// spread GETs url n times from the host, each time on a new connection
// (the rules pick an endpoint per connection). Every request must succeed
// with greeting (examples-repo's ConfigMap) and a hostname in want, and
// every pod in want must answer at least once: with 3 pods and 100
// requests, one is missed with probability 3*(2/3)^100, about 10^-17.
// It returns the answers per pod.
func (d *demo) spread(t *testing.T, url, greeting string, want []string, n int) map[string]int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	seen := map[string]int{}
	for i := range n {
		g, host, err := demoGet(t.Context(), c, url)
		if err != nil {
			t.Fatalf("request %d: %v (answers so far %v)", i+1, err, seen)
		}
		if g != greeting || !slices.Contains(want, host) {
			t.Fatalf("request %d answered %q from %q, want %q from one of %v", i+1, g, host, greeting, want)
		}
		seen[host]++
	}
	if len(seen) < len(want) {
		t.Errorf("%s: %d requests reached %v, want every one of %v", url, n, seen, want)
	}
	return seen
}

// demoGet GETs url and returns the greeting and hostname of the answer.
func demoGet(ctx context.Context, c *http.Client, url string) (greeting, host string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m := demoAnswer.FindStringSubmatch(strings.TrimSpace(string(body)))
	if m == nil {
		return "", "", fmt.Errorf("GET %s answered %q, not the demo's greeting", url, body)
	}
	return m[1], m[2], nil
}

// checkFromPod runs a pod of the demo image that GETs urls (demo-web get)
// and reads its log through the API, as `kubectl logs` does: each URL
// must have answered 200 from one of the pods in want.
func (d *demo) checkFromPod(t *testing.T, want []string, urls ...string) {
	t.Helper()
	ctx := t.Context()
	pods := d.cs.CoreV1().Pods("demo")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "dns-check", Namespace: "demo"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name:            "get",
				Image:           "kiln.dev/demo-web:0.1.0",
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         append([]string{"/demo-web", "get", "-retry", "20s"}, urls...),
			}},
		},
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	d.eventually("dns-check to finish", func() error {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if phase = p.Status.Phase; phase != corev1.PodSucceeded && phase != corev1.PodFailed {
			return fmt.Errorf("phase %s", phase)
		}
		return nil
	})
	var logs []byte
	d.eventually("dns-check's log", func() error {
		var err error
		logs, err = pods.GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		return err
	})
	if phase != corev1.PodSucceeded {
		t.Fatalf("dns-check %s:\n%s", phase, logs)
	}
	for _, url := range urls {
		re := regexp.MustCompile(`(?m)^GET ` + regexp.QuoteMeta(url) + `: 200 OK\n` + demoGreeting + ` from (\S+) \(request`)
		m := re.FindSubmatch(logs)
		if m == nil || !slices.Contains(want, string(m[1])) {
			t.Errorf("no answer from a web pod to %s in dns-check's log:\n%s", url, logs)
		}
	}
	zero := int64(0)
	if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Error(err)
	}
}

// drain removes the demo's pods before kiln stops, as a person would
// before an uninstall: the workloads' files go (the sync prunes them and
// the garbage collector their pods), any other pod is deleted, and the
// kubelet stops them all. kiln's own shutdown leaves containers running
// for the next start to adopt, so what runs at SIGTERM would outlive it.
func (d *demo) drain() {
	t := d.t
	if d.cs == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), demoWait)
	defer cancel()
	if t.Failed() {
		d.logState(ctx)
	}
	for _, f := range []string{"deployment.yaml", "store.yaml"} {
		_ = os.Remove(filepath.Join(d.repo, "app", f))
	}
	zero := int64(0)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		l, err := d.cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) == 0 {
			return
		}
		if err == nil {
			for _, p := range l.Items {
				if len(p.OwnerReferences) == 0 && p.DeletionTimestamp == nil {
					_ = d.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Errorf("cleanup: pods not gone within %v: %s", demoWait, podSummary(l.Items))
			return
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM, wants exit status 0, and runs
// `kiln server --cleanup-network`, which must leave none of the proxy's
// rules and no cluster DNS link.
func (d *demo) stop() {
	t := d.t
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal kiln: %v", err)
	}
	select {
	case <-d.exited:
		if d.waitErr != nil {
			t.Errorf("kiln server after SIGTERM: %v, want exit status 0", d.waitErr)
		}
	case <-time.After(kilnStopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
		t.Errorf("kiln server did not exit within %v of SIGTERM", kilnStopTimeout)
	}
	if t.Failed() {
		d.logTail()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, d.bin, "server", "--cleanup-network", "--data-dir", d.dataDir).CombinedOutput()
	if err != nil {
		t.Errorf("kiln server --cleanup-network: %v\n%s", err, out)
	}
	var left []string
	for _, table := range []string{"nat", "filter"} {
		save, err := exec.CommandContext(ctx, "iptables-save", "-t", table).Output()
		if err != nil {
			t.Errorf("iptables-save: %v", err)
			continue
		}
		for _, l := range strings.Split(string(save), "\n") {
			if strings.Contains(l, "KILN-") && !strings.Contains(l, "KILN-MASQ-") {
				left = append(left, l)
			}
		}
	}
	if len(left) > 0 {
		t.Errorf("the proxy's rules after --cleanup-network:\n%s", strings.Join(left, "\n"))
	}
	if _, err := net.InterfaceByName("kiln-dns"); err == nil {
		t.Error("the kiln-dns link is still there after --cleanup-network")
	}
}

// logState logs the demo's pods, ReplicaSets and EndpointSlices, and the
// proxy's rules, as a failed test left them.
func (d *demo) logState(ctx context.Context) {
	var b strings.Builder
	if l, err := d.cs.CoreV1().Pods("demo").List(ctx, metav1.ListOptions{}); err == nil {
		fmt.Fprintf(&b, "pods: %s\n", podSummary(l.Items))
	}
	if l, err := d.cs.AppsV1().ReplicaSets("demo").List(ctx, metav1.ListOptions{}); err == nil {
		for _, rs := range l.Items {
			fmt.Fprintf(&b, "replicaset %s: spec %d, status %d (%d ready)\n", rs.Name, *rs.Spec.Replicas, rs.Status.Replicas, rs.Status.ReadyReplicas)
		}
	}
	if l, err := d.cs.DiscoveryV1().EndpointSlices("demo").List(ctx, metav1.ListOptions{}); err == nil {
		for _, es := range l.Items {
			fmt.Fprintf(&b, "endpointslice %s:", es.Name)
			for _, ep := range es.Endpoints {
				ref := ""
				if ep.TargetRef != nil {
					ref = ep.TargetRef.Name
				}
				fmt.Fprintf(&b, " %v %s ready=%v;", ep.Addresses, ref, ep.Conditions.Ready != nil && *ep.Conditions.Ready)
			}
			b.WriteString("\n")
		}
	}
	for _, l := range strings.Split(d.rules(), "\n") {
		if strings.Contains(l, "demo/") {
			b.WriteString(l + "\n")
		}
	}
	d.t.Logf("state at failure:\n%s", b.String())
}

// logTail logs the end of kiln's log.
func (d *demo) logTail() {
	b, _ := os.ReadFile(d.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 300 {
		lines = lines[len(lines)-300:]
	}
	d.t.Logf("kiln's log (last %d lines):\n%s", len(lines), strings.Join(lines, "\n"))
}

// cleanupHost removes what kiln leaves of the node on the host after a
// SIGTERM and --cleanup-network: the runtime's bridge and masquerade
// chain (kiln0, KILN-MASQ-KILN0: the runtime's, not the proxy's, so
// --cleanup-network leaves them), and after a failed drain the containers,
// shims, mounts and cgroups of this node's containerd namespace.
func (d *demo) cleanupHost() {
	t := d.t
	ns := d.nodeName
	dirs := killNodeProcesses(t, ns)
	unmountUnder(t, d.dataDir)

	// The runtime's bridge and masquerade chain.
	if _, err := net.InterfaceByName("kiln0"); err == nil {
		t.Log("cleanup: kiln0 bridge left after --cleanup-network; removing it")
		if out, err := exec.Command("ip", "link", "del", "kiln0").CombinedOutput(); err != nil {
			t.Errorf("ip link del kiln0: %v: %s", err, out)
		}
	}
	const masq = "KILN-MASQ-KILN0"
	if out, err := exec.Command("iptables", "-t", "nat", "-S", "POSTROUTING").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "-A POSTROUTING ") && strings.HasSuffix(l, "-j "+masq) {
				t.Logf("cleanup: %s left after --cleanup-network; removing it", masq)
				args := append([]string{"-t", "nat", "-D", "POSTROUTING"}, demoSplitRule(strings.TrimPrefix(l, "-A POSTROUTING "))...)
				if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
					t.Errorf("iptables %v: %v: %s", args, err, out)
				}
			}
		}
	}
	if exec.Command("iptables", "-t", "nat", "-S", masq).Run() == nil {
		_ = exec.Command("iptables", "-t", "nat", "-F", masq).Run()
		if out, err := exec.Command("iptables", "-t", "nat", "-X", masq).CombinedOutput(); err != nil {
			t.Errorf("iptables -X %s: %v: %s", masq, err, out)
		}
	}

	removeCgroups(dirs)
}

// demoSplitRule splits an iptables -S rule into arguments, keeping quoted
// comments whole.
func demoSplitRule(s string) []string {
	var args []string
	var cur bytes.Buffer
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ' ' && !quoted:
			if cur.Len() > 0 {
				args = append(args, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		args = append(args, cur.String())
	}
	return args
}

// demoChainOf reports whether chain's rules in an iptables-save carry
// the comment of service port name.
func demoChainOf(rules, chain, name string) bool {
	for _, l := range strings.Split(rules, "\n") {
		if strings.HasPrefix(l, "-A "+chain+" ") && strings.Contains(l, name) {
			return true
		}
	}
	return false
}

func podNames(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

// podSummary is "name phase ip [deleting]" per pod, for failure messages.
func podSummary(pods []corev1.Pod) string {
	var out []string
	for _, p := range pods {
		s := fmt.Sprintf("%s %s %s", p.Name, p.Status.Phase, p.Status.PodIP)
		if p.DeletionTimestamp != nil {
			s += " deleting"
		}
		out = append(out, s)
	}
	return "[" + strings.Join(out, ", ") + "]"
}
