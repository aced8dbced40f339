package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/components/testenv/netns"
)

// Timing of the multi-node test: the server's node monitor grace period
// and default tolerations are short, so that a lost node's pods move in
// seconds, not minutes.
const (
	mnGrace      = 10 * time.Second
	mnToleration = 5 // seconds
	mnWait       = 90 * time.Second
	mnReplicas   = 4
	// mnCIDR is the test hosts' network; no other test uses it.
	mnCIDR = "10.77.10.0/24"
)

// mnProc is one kiln process (the server, or an agent inside a test
// host), its output in a file that is logged when the test fails.
type mnProc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
	stopped bool
}

func mnStart(t *testing.T, name string, cmd *exec.Cmd, logPath string) *mnProc {
	t.Helper()
	p := &mnProc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			p.logTail(t)
		}
	})
	return p
}

// stop sends SIGTERM and wants a clean exit within kilnStopTimeout.
func (p *mnProc) stop(t *testing.T) {
	t.Helper()
	if p.stopped {
		return
	}
	p.stopped = true
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Errorf("%s after SIGTERM: %v, want exit status 0", p.name, p.waitErr)
		}
	case <-time.After(kilnStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("%s did not exit within %v of SIGTERM", p.name, kilnStopTimeout)
	}
}

func (p *mnProc) logTail(t *testing.T) {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 150 {
		lines = lines[len(lines)-150:]
	}
	t.Logf("%s's log (last %d lines):\n%s", p.name, len(lines), strings.Join(lines, "\n"))
}

// mnCluster is the test's server, its agents and their hosts.
type mnCluster struct {
	t      *testing.T
	bin    string
	tmp    string
	image  string // the demo image archive
	nw     *netns.Network
	url    string // the server's API, on the bridge address
	token  string // the server's node-token
	srv    *mnProc
	cs     kubernetes.Interface
	id     string
	agents []*mnAgent
}

// eventually polls fn every 100ms until it returns nil, failing the test
// with its last error after mnWait or when the server exited.
func (c *mnCluster) eventually(what string, fn func() error) time.Duration {
	c.t.Helper()
	start := time.Now()
	deadline := start.Add(mnWait)
	for {
		err := fn()
		if err == nil {
			return time.Since(start)
		}
		select {
		case <-c.srv.exited:
			c.t.Fatalf("%s: kiln server exited (%v); last: %v", what, c.srv.waitErr, err)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not within %v: %v", what, mnWait, err)
		}
		select {
		case <-c.t.Context().Done():
			c.t.Fatalf("%s: %v", what, c.t.Context().Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// mnRequireHost skips (fails under KILN_E2E=require) unless this host can
// run kiln nodes in network namespaces.
func mnRequireHost(t *testing.T) {
	t.Helper()
	testenv.Require(t, "root", os.Geteuid() == 0)
	for _, bin := range []string{"go", "containerd", "containerd-shim-runc-v2", "runc", "iptables", "iptables-save", "iptables-restore", "ip", "nsenter"} {
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
}

// startServer runs `kiln server` in the root namespace, listening on the
// test network's bridge address, with the short node-loss timing.
func (c *mnCluster) startServer() {
	t := c.t
	dir := filepath.Join(c.tmp, "server")
	cfg := filepath.Join(c.tmp, "kiln.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "nodeMonitorGracePeriod: %s\ndefaultNotReadyTolerationSeconds: %d\ndefaultUnreachableTolerationSeconds: %d\n",
		mnGrace, mnToleration, mnToleration), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.nw.Gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c.url = "https://" + addr
	cmd := exec.Command(c.bin, "server", "--config", cfg, "--data-dir", dir, "--api-listen", addr,
		"--dashboard-listen", kilnFreeAddr(t), "--disable", "kubelet,proxy,dashboard")
	c.srv = mnStart(t, "kiln server", cmd, filepath.Join(c.tmp, "server.log"))
	t.Cleanup(func() { c.srv.stop(t) })
	c.eventually("kiln server ready", func() error {
		if c.cs == nil {
			rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "admin.kubeconfig"))
			if err != nil {
				return err
			}
			rc.Timeout = 10 * time.Second
			if c.cs, err = kubernetes.NewForConfig(rc); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if body, err := c.cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil || string(body) != "ok" {
			return fmt.Errorf("/readyz: %q, %v", body, err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "node-token"))
		if err != nil {
			return err
		}
		c.token = strings.TrimSpace(string(b))
		return nil
	})
}

// mnAgent is one test host and the agent that runs in it.
type mnAgent struct {
	short, node, dir string
	host             *netns.Host
	proc             *mnProc // the running agent, or nil
	runs             int
}

// addAgent makes test host short (a netns on the network) and the data
// dir of its agent, with the demo image in its images/; the agent is
// started by runAgent.
func (c *mnCluster) addAgent(short string) *mnAgent {
	t := c.t
	a := &mnAgent{short: short, node: "mn-" + c.id + "-" + short, dir: filepath.Join(c.tmp, "agent-"+short)}
	a.host = c.nw.AddHost(t, short)
	if err := os.MkdirAll(filepath.Join(a.dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(c.image)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.dir, "images", "demo-web.tar"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Runs after the agents are stopped (registered before stopAgents):
	// whatever a failure left of the node.
	t.Cleanup(func() { mnCleanupNode(t, a.dir, a.node) })
	c.agents = append(c.agents, a)
	return a
}

// runAgent starts `kiln agent` in a's host with its own data dir, node
// name and bridge, and the server's node-token.
func (c *mnCluster) runAgent(a *mnAgent) {
	t := c.t
	a.runs++
	// Not the test's context: it is cancelled before cleanups run, and
	// the agent must be stopped with SIGTERM after the drain.
	cmd := a.host.Command(context.WithoutCancel(t.Context()), c.bin, "agent", "--server", c.url, "--token", c.token,
		"--node-name", a.node, "--node-ip", a.host.IP, "--data-dir", a.dir, "--bridge-name", "kiln-"+a.short+"0")
	a.proc = mnStart(t, fmt.Sprintf("kiln agent %s (run %d)", a.short, a.runs), cmd, filepath.Join(c.tmp, fmt.Sprintf("agent-%s-%d.log", a.short, a.runs)))
}

// stopAgents stops the running agents with SIGTERM.
func (c *mnCluster) stopAgents() {
	for _, a := range c.agents {
		if a.proc != nil {
			a.proc.stop(c.t)
		}
	}
}

// nodeCondition is the status of the Node's Ready condition.
func (c *mnCluster) nodeCondition(name string) (corev1.ConditionStatus, error) {
	ctx, cancel := context.WithTimeout(c.t.Context(), 5*time.Second)
	defer cancel()
	n, err := c.cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status, nil
		}
	}
	return corev1.ConditionUnknown, nil
}

func (c *mnCluster) waitNode(name string, want corev1.ConditionStatus) time.Duration {
	c.t.Helper()
	return c.eventually(fmt.Sprintf("node %s Ready=%s", name, want), func() error {
		st, err := c.nodeCondition(name)
		if err != nil {
			return err
		}
		if st != want {
			return fmt.Errorf("Ready=%s", st)
		}
		return nil
	})
}

// pods lists the web pods: ready (and not being deleted) ones by node,
// and all of them.
func (c *mnCluster) pods() (ready map[string][]corev1.Pod, all []corev1.Pod, err error) {
	ctx, cancel := context.WithTimeout(c.t.Context(), 5*time.Second)
	defer cancel()
	l, err := c.cs.CoreV1().Pods(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{LabelSelector: "app=mn-web"})
	if err != nil {
		return nil, nil, err
	}
	ready = map[string][]corev1.Pod{}
	for _, p := range l.Items {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ready[p.Spec.NodeName] = append(ready[p.Spec.NodeName], p)
			}
		}
	}
	return ready, l.Items, nil
}

// httpFrom is an HTTP client whose connections start inside host h.
func httpFrom(h *netns.Host) *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return h.Dial(ctx, network, addr)
		},
	}}
}

// TestMultinode_twoAgents_spreadReachAndNodeLoss is issue 9's "many
// machines" promise for nodes, with real processes: a server in the root
// namespace and two agents, each in a test host of its own (a network
// namespace on a bridge) that joined with the server's node-token. A
// 4-replica Deployment spreads over both nodes; from either host, a pod
// on the other node, the ClusterIP and the NodePort answer, and a pod on
// one node reaches a pod on the other with its own address (host-gw
// routes, no masquerade inside the cluster). Then node B's link is cut:
// B goes NotReady within the grace period, its pods are replaced on A
// after the toleration, and the ClusterIP keeps answering from A; B's
// link comes back, B is Ready again and new pods go to it. Last B's agent
// is killed: B goes NotReady, and a new agent on the same data dir reuses
// its credentials and is Ready at once.
func TestMultinode_twoAgents_spreadReachAndNodeLoss(t *testing.T) {
	mnRequireHost(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 2)
	_, _ = rand.Read(id)
	c := &mnCluster{t: t, bin: testenv.Binary(t), tmp: t.TempDir(), id: hex.EncodeToString(id)}
	c.image = filepath.Join(c.tmp, "demo-web.tar")
	build := exec.CommandContext(t.Context(), "go", "run", "./components/internal/imagebuild/build-demo-web", "-o", c.image)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the demo image: %v\n%s", err, out)
	}
	c.nw = netns.NewNetwork(t, "mn", mnCIDR)
	c.startServer()
	ctx := t.Context()

	// Join: both agents, at once. Cleanup (last registered runs first):
	// drain the pods, stop the agents, remove what is left of the nodes,
	// stop the server, remove the hosts and the network.
	agentA, agentB := c.addAgent("a"), c.addAgent("b")
	t.Cleanup(c.stopAgents)
	nodeA, nodeB := agentA.node, agentB.node
	hostA, hostB := agentA.host, agentB.host
	joinStart := time.Now()
	c.runAgent(agentA)
	c.runAgent(agentB)
	c.waitNode(nodeA, corev1.ConditionTrue)
	c.waitNode(nodeB, corev1.ConditionTrue)
	t.Logf("timing: both agents joined and Ready %v after start", time.Since(joinStart).Round(time.Millisecond))
	agentReady := regexp.MustCompile(`msg="kiln agent ready".* seconds=([0-9.]+)`)
	for _, a := range []*mnAgent{agentA, agentB} {
		c.eventually("agent "+a.short+"'s ready line", func() error {
			b, err := os.ReadFile(a.proc.logPath)
			if err != nil {
				return err
			}
			m := agentReady.FindSubmatch(b)
			if m == nil {
				return errors.New(`no "kiln agent ready" line in its log`)
			}
			t.Logf("timing: agent %s says it was ready %ss after it started", a.short, m[1])
			return nil
		})
	}

	// Each host routes the other node's pod CIDR via that node's address
	// (host-gw), with kiln's route protocol.
	for _, tc := range []struct{ self, peer *mnAgent }{{agentA, agentB}, {agentB, agentA}} {
		c.eventually("host "+tc.self.short+"'s route to "+tc.peer.short+"'s pods", func() error {
			n, err := c.cs.CoreV1().Nodes().Get(ctx, tc.peer.node, metav1.GetOptions{})
			if err != nil {
				return err
			}
			out, err := exec.CommandContext(ctx, "ip", "-n", tc.self.host.Netns, "-4", "route", "show", "proto", "75").CombinedOutput()
			if err != nil {
				return fmt.Errorf("ip route: %v: %s", err, out)
			}
			want := n.Spec.PodCIDR + " via " + tc.peer.host.IP
			if n.Spec.PodCIDR == "" || !strings.Contains(string(out), want) {
				return fmt.Errorf("routes %q, want %q", out, want)
			}
			return nil
		})
	}

	// Drain before the agents stop (cleanups run last-registered first):
	// an agent's SIGTERM leaves its containers running.
	t.Cleanup(c.drain)

	// A Deployment spread over both nodes, and its Service.
	deploy := demoWebDeployment("mn-web", "mn-web", mnReplicas)
	deploy.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "mn-web"}},
	}}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "mn-web", Namespace: metav1.NamespaceDefault},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: map[string]string{"app": "mn-web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if svc, err = c.cs.CoreV1().Services(metav1.NamespaceDefault).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deployStart := time.Now()
	if _, err := c.cs.AppsV1().Deployments(metav1.NamespaceDefault).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ready map[string][]corev1.Pod
	c.eventually("4 ready pods on both nodes", func() error {
		var all []corev1.Pod
		var err error
		if ready, all, err = c.pods(); err != nil {
			return err
		}
		if n := len(ready[nodeA]) + len(ready[nodeB]); n != mnReplicas || len(ready[nodeA]) == 0 || len(ready[nodeB]) == 0 {
			return fmt.Errorf("ready: %d on A, %d on B; pods %s", len(ready[nodeA]), len(ready[nodeB]), podSummary(all))
		}
		return nil
	})
	t.Logf("timing: %d pods ready (%d on A, %d on B) %v after the Deployment was created", mnReplicas,
		len(ready[nodeA]), len(ready[nodeB]), time.Since(deployStart).Round(time.Millisecond))
	podsOn := func(node string) []string {
		var names []string
		for _, p := range ready[node] {
			names = append(names, p.Name)
		}
		return names
	}
	allPods := append(podsOn(nodeA), podsOn(nodeB)...)
	nodePort := strconv.Itoa(int(svc.Spec.Ports[0].NodePort))
	clusterURL := "http://" + svc.Spec.ClusterIP + "/"

	// Each host reaches a pod on the other node, the ClusterIP (which
	// spreads over pods of both nodes) and the NodePort on the other
	// node's address. The rules and routes may still be on their way.
	for _, tc := range []struct {
		from, to     string
		host, remote *netns.Host
	}{{nodeA, nodeB, hostA, hostB}, {nodeB, nodeA, hostB, hostA}} {
		client := httpFrom(tc.host)
		peer := ready[tc.to][0]
		for _, target := range []struct{ url, what string }{
			{"http://" + net.JoinHostPort(peer.Status.PodIP, "8080") + "/", "pod " + peer.Name + " on " + tc.to},
			{"http://" + net.JoinHostPort(tc.remote.IP, nodePort) + "/", "the NodePort on " + tc.to},
			{clusterURL, "the ClusterIP"},
		} {
			want := allPods
			if strings.HasPrefix(target.what, "pod ") {
				want = []string{peer.Name}
			}
			took := c.eventually(fmt.Sprintf("%s from host %s", target.what, tc.from), func() error {
				_, host, err := demoGet(ctx, client, target.url)
				if err != nil {
					return err
				}
				if !slices.Contains(want, host) {
					return fmt.Errorf("answered by %s, want one of %v", host, want)
				}
				return nil
			})
			t.Logf("host %s reached %s (%s) after %v", tc.from, target.what, target.url, took.Round(time.Millisecond))
		}
		// The ClusterIP from this host is answered by pods of both nodes.
		// The proxy may lag the EndpointSlice by a sync, so the requests
		// go on for a while, not a fixed number of times.
		seen := map[string]bool{}
		tries, failed, start := 0, 0, time.Now()
		var lastErr error
		for deadline := start.Add(15 * time.Second); time.Now().Before(deadline) && !(mnAny(seen, podsOn(nodeA)) && mnAny(seen, podsOn(nodeB))); tries++ {
			if _, host, err := demoGet(ctx, client, clusterURL); err == nil {
				seen[host] = true
			} else {
				failed, lastErr = failed+1, err
				time.Sleep(20 * time.Millisecond)
			}
		}
		if !mnAny(seen, podsOn(nodeA)) || !mnAny(seen, podsOn(nodeB)) {
			t.Errorf("the ClusterIP from host %s was answered by %v only in %d requests (%d failed, last: %v), want pods of both nodes",
				tc.from, slices.Sorted(maps.Keys(seen)), tries, failed, lastErr)
		} else {
			t.Logf("the ClusterIP from host %s was answered by pods of both nodes within %d requests (%d failed) in %v", tc.from, tries, failed, time.Since(start).Round(time.Millisecond))
		}
	}

	// Pod to pod across nodes: a pod on each node GETs a web pod on the
	// other node, which sees the caller's own pod IP (not masqueraded).
	for _, tc := range []struct{ from, to string }{{nodeA, nodeB}, {nodeB, nodeA}} {
		c.checkPodToPod(tc.from, ready[tc.to][0], svc.Spec.ClusterIP)
	}

	// Through both node faults a writer records every acknowledged
	// write; all must be there at the end.
	acks := testenv.StartAckWriter(t, metav1.NamespaceDefault, 20, c.cs)

	// Node loss: B's link is cut. A prober asks the ClusterIP from A
	// every 200ms from the cut until B's pods are replaced.
	clientA := httpFrom(hostA)
	probe := mnStartProber(ctx, clientA, clusterURL)
	cut := time.Now()
	if err := hostB.Cut(); err != nil {
		t.Fatal(err)
	}
	notReady := c.eventually("node B not Ready after its link was cut", func() error {
		st, err := c.nodeCondition(nodeB)
		if err != nil {
			return err
		}
		if st == corev1.ConditionTrue {
			return errors.New("still Ready")
		}
		return nil
	})
	t.Logf("timing: node B NotReady/Unknown %v after the cut (grace period %v)", notReady.Round(time.Millisecond), mnGrace)
	// The node lifecycle controller looks every few seconds: allow one
	// period beyond the grace period.
	if notReady > mnGrace+6*time.Second {
		t.Errorf("node B went NotReady %v after the cut, want within the grace period %v (+ a monitor period)", notReady, mnGrace)
	}

	// Pods are replaced on A after the toleration.
	c.eventually("B's pods replaced on A", func() error {
		r, all, err := c.pods()
		if err != nil {
			return err
		}
		if len(r[nodeA]) < mnReplicas {
			return fmt.Errorf("%d ready pods on A; pods %s", len(r[nodeA]), podSummary(all))
		}
		ready = r
		return nil
	})
	t.Logf("timing: %d pods ready on A %v after the cut (toleration %ds)", mnReplicas, time.Since(cut).Round(time.Millisecond), mnToleration)
	// The ClusterIP kept answering from A: requests that went to B's pods
	// fail until the node lifecycle controller marks them not ready (at
	// NotReady) and A's proxy drops them from the Service, as in
	// Kubernetes; none may fail after that.
	res := probe()
	var failed []time.Duration
	for _, r := range res {
		if r.err != nil {
			failed = append(failed, r.at.Sub(cut).Round(time.Millisecond))
		}
	}
	t.Logf("the ClusterIP from A answered %d of %d requests between the cut and the replacement; failures at %v after the cut",
		len(res)-len(failed), len(res), failed)
	for _, r := range res {
		if at := r.at.Sub(cut); r.err != nil && at > notReady+3*time.Second {
			t.Errorf("the ClusterIP from A failed %v after the cut, %v after B went NotReady: %v", at.Round(time.Millisecond), (at - notReady).Round(time.Millisecond), r.err)
		}
	}
	onA := podsOn(nodeA)
	for i := range 20 {
		_, host, err := demoGet(ctx, clientA, clusterURL)
		if err != nil || !slices.Contains(onA, host) {
			t.Errorf("request %d to the ClusterIP from A with B cut off: %s, %v; want one of %v", i+1, host, err, onA)
		}
	}

	// B comes back: Ready again, and used again.
	restored := time.Now()
	if err := hostB.Restore(); err != nil {
		t.Fatal(err)
	}
	back := c.waitNode(nodeB, corev1.ConditionTrue)
	t.Logf("timing: node B Ready again %v after its link came back", back.Round(time.Millisecond))
	if _, err := c.cs.AppsV1().Deployments(metav1.NamespaceDefault).Patch(ctx, "mn-web", "application/merge-patch+json",
		[]byte(`{"spec":{"replicas":6}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually("a new pod ready on B after scaling to 6", func() error {
		r, all, err := c.pods()
		if err != nil {
			return err
		}
		if len(r[nodeB]) == 0 || len(r[nodeA])+len(r[nodeB]) < 6 {
			return fmt.Errorf("ready: %d on A, %d on B; pods %s", len(r[nodeA]), len(r[nodeB]), podSummary(all))
		}
		ready = r
		return nil
	})
	t.Logf("timing: %d ready on A, %d on B %v after B's link came back", len(ready[nodeA]), len(ready[nodeB]), time.Since(restored).Round(time.Millisecond))
	// And B's old pods, deleted while it was away, are gone: its kubelet
	// confirmed their deletion once it was back.
	c.eventually("B's evicted pods gone", func() error {
		_, all, err := c.pods()
		if err != nil {
			return err
		}
		for _, p := range all {
			if p.DeletionTimestamp != nil {
				return fmt.Errorf("still deleting: %s", podSummary(all))
			}
		}
		return nil
	})

	// Agent loss: B's agent is killed (kill -9: its containerd goes with
	// it, its containers keep running). B goes NotReady within the grace
	// period; a new agent on the same data dir reuses the credentials of
	// the first join and B is Ready again, and every pod ends up ready.
	if err := agentB.proc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-agentB.proc.exited
	agentB.proc.stopped = true
	down := c.eventually("node B not Ready after its agent was killed", func() error {
		st, err := c.nodeCondition(nodeB)
		if err != nil {
			return err
		}
		if st == corev1.ConditionTrue {
			return errors.New("still Ready")
		}
		return nil
	})
	t.Logf("timing: node B NotReady/Unknown %v after its agent was killed", down.Round(time.Millisecond))
	if down > mnGrace+6*time.Second {
		t.Errorf("node B went NotReady %v after its agent was killed, want within the grace period %v (+ a monitor period)", down, mnGrace)
	}
	restart := time.Now()
	c.runAgent(agentB)
	back = c.waitNode(nodeB, corev1.ConditionTrue)
	t.Logf("timing: node B Ready %v after its agent restarted", back.Round(time.Millisecond))
	if b, err := os.ReadFile(agentB.proc.logPath); err != nil || !regexp.MustCompile(`msg="node credentials".* reused=true`).Match(b) {
		t.Errorf("the restarted agent joined again instead of reusing its credentials (%v); its log:\n%s", err, b)
	}
	c.eventually("6 ready pods and none being deleted after B's agent restarted", func() error {
		r, all, err := c.pods()
		if err != nil {
			return err
		}
		if len(r[nodeA])+len(r[nodeB]) != 6 || len(all) != 6 {
			return fmt.Errorf("ready: %d on A, %d on B; pods %s", len(r[nodeA]), len(r[nodeB]), podSummary(all))
		}
		ready = r
		return nil
	})
	t.Logf("timing: 6 pods ready (%d on A, %d on B) %v after B's agent restarted", len(ready[nodeA]), len(ready[nodeB]), time.Since(restart).Round(time.Millisecond))
	nAcked, nFailed, _ := acks.Counts()
	acks.Verify(t)
	t.Logf("writes through the node faults: %d acknowledged, all read back; %d failed", nAcked, nFailed)
}

// checkPodToPod runs a pod pinned to node from that GETs target (a web
// pod on another node) and the ClusterIP, and looks in target's log for
// the request with the caller's pod IP as its source.
func (c *mnCluster) checkPodToPod(from string, target corev1.Pod, clusterIP string) {
	t := c.t
	ctx := t.Context()
	pods := c.cs.CoreV1().Pods(metav1.NamespaceDefault)
	mark := "/from-" + from
	name := "mn-get-" + from[len(from)-1:]
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			NodeName:                      from,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers: []corev1.Container{{
				Name:            "get",
				Image:           "kiln.dev/demo-web:0.1.0",
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"/demo-web", "get", "-retry", "20s",
					"http://" + net.JoinHostPort(target.Status.PodIP, "8080") + mark,
					"http://" + clusterIP + mark},
			}},
		},
	}
	start := time.Now()
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	c.eventually(name+" to finish", func() error {
		var err error
		if got, err = pods.Get(ctx, name, metav1.GetOptions{}); err != nil {
			return err
		}
		if ph := got.Status.Phase; ph != corev1.PodSucceeded && ph != corev1.PodFailed {
			return fmt.Errorf("phase %s", ph)
		}
		return nil
	})
	if got.Status.Phase != corev1.PodSucceeded {
		logs, err := pods.GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
		t.Fatalf("%s on %s could not reach pod %s on %s (%s) or the ClusterIP: %s; its log (%v):\n%s",
			name, from, target.Name, target.Spec.NodeName, target.Status.PodIP, got.Status.Phase, err, logs)
	}
	t.Logf("pod %s on %s reached pod %s on %s and the ClusterIP in %v", name, from, target.Name, target.Spec.NodeName, time.Since(start).Round(time.Millisecond))
	// The web pod logs "GET /from-NODE from IP:PORT"; IP must be the
	// caller's pod IP: pod-to-pod traffic is not masqueraded.
	re := regexp.MustCompile(`GET ` + regexp.QuoteMeta(mark) + ` from ([0-9.]+):\d+`)
	c.eventually("the request in "+target.Name+"'s log", func() error {
		logs, err := pods.GetLogs(target.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			return err
		}
		m := re.FindSubmatch(logs)
		if m == nil {
			return fmt.Errorf("no %q in the log", mark)
		}
		if string(m[1]) != got.Status.PodIP {
			t.Errorf("pod %s saw %s's request from %s, want its pod IP %s (masqueraded?)", target.Name, name, m[1], got.Status.PodIP)
		}
		return nil
	})
	zero := int64(0)
	if err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Error(err)
	}
}

// drain deletes the Deployment and every pod, and waits until the
// kubelets have removed them: an agent's SIGTERM leaves containers
// running for its next start to adopt.
func (c *mnCluster) drain() {
	t := c.t
	if c.cs == nil {
		return
	}
	for _, a := range c.agents {
		_ = a.host.Restore() // a failure may have left one cut
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), mnWait)
	defer cancel()
	_ = c.cs.AppsV1().Deployments(metav1.NamespaceDefault).Delete(ctx, "mn-web", metav1.DeleteOptions{})
	zero := int64(0)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		l, err := c.cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) == 0 {
			return
		}
		if err == nil {
			for _, p := range l.Items {
				if p.DeletionTimestamp == nil {
					_ = c.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Errorf("cleanup: pods not gone within %v: %s", mnWait, podSummary(l.Items))
			return
		case <-tick.C:
		}
	}
}

// mnCleanupNode removes what an agent may leave on the host after a
// failure: the processes of its containers (cgroups named after its
// containerd namespace, the node name) and its shims, mounts under its
// data dir, and its empty cgroups. Its bridge and iptables rules are in
// its test host's namespace and go with it.
func mnCleanupNode(t *testing.T, dataDir, ns string) {
	dirs := killNodeProcesses(t, ns)
	unmountUnder(t, dataDir)
	// containerd's sockets, which a deep data dir puts under /run/kiln
	// (containerd.Config's paths) and a killed containerd leaves.
	sum := sha256.Sum256([]byte(filepath.Join(dataDir, "containerd")))
	for _, suffix := range []string{".sock", ".sock.ttrpc"} {
		_ = os.Remove(filepath.Join("/run/kiln", hex.EncodeToString(sum[:6])+suffix))
	}
	removeCgroups(dirs)
}

func mnExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func mnAny(seen map[string]bool, names []string) bool {
	for _, n := range names {
		if seen[n] {
			return true
		}
	}
	return false
}

// mnProbe is one request of a prober: when it was sent and how it ended.
type mnProbe struct {
	at  time.Time
	err error
}

// mnStartProber GETs url with client every 200ms until the returned stop
// is called, which returns every result.
func mnStartProber(ctx context.Context, client *http.Client, url string) (stop func() []mnProbe) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan []mnProbe, 1)
	go func() {
		var res []mnProbe
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			at := time.Now()
			_, _, err := demoGet(ctx, client, url)
			if ctx.Err() != nil {
				done <- res
				return
			}
			res = append(res, mnProbe{at: at, err: err})
			select {
			case <-ctx.Done():
				done <- res
				return
			case <-tick.C:
			}
		}
	}()
	return func() []mnProbe {
		cancel()
		return <-done
	}
}
