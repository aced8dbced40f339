package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/controllers"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/components/testenv/netns"
)

// haAgentRenewLimit bounds the time from a server's death to the agent's
// first Lease renewal through another: the kubelet renews every 10 s and
// retries a failed renewal within a second, so one renewal may be lost to
// the kill and the next must get through.
const haAgentRenewLimit = 20 * time.Second

// haAgentSilentRenewLimit is haAgentRenewLimit for a server that vanishes
// without closing its connections (power loss). The agent pings its
// HTTP/2 connections after 5 s of silence and drops them 5 s later
// (runAgent), and the kubelet bounds each renewal by its period and
// retries soon: the same bound holds. (Before both, the renewal after the
// loss waited for TCP to give up and then a whole period: about 34 s,
// 6 s inside the node monitor's 40 s grace period.)
const haAgentSilentRenewLimit = haAgentRenewLimit

// haAgentWait bounds each wait of TestHA_agentFailsOver.
const haAgentWait = 90 * time.Second

// startHAServerAt runs `kiln server` named name on cluster with token,
// listening on addr (the test network's gateway, which the agent's host
// reaches), without waiting for it. Unlike startHAServer's, the address
// is the caller's, and restart brings the server back on the same data
// dir and address; the one cleanup stops whichever process s runs then.
func startHAServerAt(t *testing.T, bin string, cluster *testenv.EtcdCluster, name, token, addr string) *haServer {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), name)
	s := &haServer{name: name, logs: &haLog{}, kubecfg: filepath.Join(dataDir, "admin.kubeconfig")}
	s.proc = &kilnProc{dataDir: dataDir, addr: addr}
	s.restart(t, bin, cluster, token)
	t.Cleanup(func() {
		if !s.killed {
			s.proc.stop(t)
		}
	})
	return s
}

// restart starts s's process (again, after kill) on its data dir and
// address.
func (s *haServer) restart(t *testing.T, bin string, cluster *testenv.EtcdCluster, token string) {
	t.Helper()
	s.proc = &kilnProc{dataDir: s.proc.dataDir, addr: s.proc.addr, exited: make(chan struct{})}
	s.proc.cmd = exec.Command(bin, "server", "--data-dir", s.proc.dataDir, "--api-listen", s.proc.addr,
		"--dashboard-listen", kilnFreeAddr(t), "--disable", "kubelet,proxy", "--node-name", s.name,
		"--datastore-endpoint", strings.Join(cluster.Endpoints, ","), "--datastore-cafile", cluster.CAFile,
		"--datastore-certfile", cluster.CertFile, "--datastore-keyfile", cluster.KeyFile,
		"--token", token)
	out := io.MultiWriter(t.Output(), s.logs)
	s.proc.cmd.Stdout, s.proc.cmd.Stderr = out, out
	if err := s.proc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := s.proc
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	s.killed = false
}

// port is the server's API port.
func (s *haServer) port() string {
	return s.proc.addr[strings.LastIndexByte(s.proc.addr, ':')+1:]
}

// haAgentConns counts the established TCP connections from peer (the
// agent host's address) per local port in the root namespace, where the
// servers listen: which server the agent talks to.
func haAgentConns(ctx context.Context, peer string) (map[string]int, error) {
	out, err := exec.CommandContext(ctx, "ss", "-Htn", "state", "established").Output()
	if err != nil {
		return nil, fmt.Errorf("ss: %w", err)
	}
	conns := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		// Recv-Q Send-Q Local:Port Peer:Port (no State column with a
		// state filter).
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[3], peer+":") {
			continue
		}
		conns[f[2][strings.LastIndexByte(f[2], ':')+1:]]++
	}
	return conns, nil
}

// haNodeWatch polls a Node and its Lease through the client of a live
// server (set by use) from start to stop: it records every time the Node
// was seen not Ready and every new renewTime of its Lease.
type haNodeWatch struct {
	node string
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	cs       kubernetes.Interface
	polls    int
	errs     int
	lastErr  error
	notReady []string
	renewals []time.Time
}

func startHANodeWatch(t *testing.T, node string, cs kubernetes.Interface) *haNodeWatch {
	t.Helper()
	w := &haNodeWatch{node: node, cs: cs, stop: make(chan struct{}), done: make(chan struct{})}
	ctx := context.WithoutCancel(t.Context())
	start := time.Now()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			w.poll(ctx, start)
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(w.end)
	return w
}

func (w *haNodeWatch) poll(ctx context.Context, start time.Time) {
	w.mu.Lock()
	cs := w.cs
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	n, err := cs.CoreV1().Nodes().Get(ctx, w.node, metav1.GetOptions{})
	var renewed *metav1.MicroTime
	if err == nil {
		var l *coordinationv1.Lease
		if l, err = cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, w.node, metav1.GetOptions{}); err == nil {
			renewed = l.Spec.RenewTime
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	if err != nil {
		w.errs++
		w.lastErr = err
		return
	}
	if !nodeReady(n) {
		var st string
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				st = fmt.Sprintf("%s (%s: %s)", c.Status, c.Reason, c.Message)
			}
		}
		w.notReady = append(w.notReady, fmt.Sprintf("%.1fs: Ready=%s", time.Since(start).Seconds(), st))
	}
	if renewed != nil && (len(w.renewals) == 0 || renewed.After(w.renewals[len(w.renewals)-1])) {
		w.renewals = append(w.renewals, renewed.Time)
	}
}

// use makes the watch poll through cs from now on.
func (w *haNodeWatch) use(cs kubernetes.Interface) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cs = cs
}

// renewedAfter returns the first renewal after t0, or zero.
func (w *haNodeWatch) renewedAfter(t0 time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.renewals {
		if r.After(t0) {
			return r
		}
	}
	return time.Time{}
}

// maxGap is the longest time between two renewals seen.
func (w *haNodeWatch) maxGap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var gap time.Duration
	for i := 1; i < len(w.renewals); i++ {
		gap = max(gap, w.renewals[i].Sub(w.renewals[i-1]))
	}
	return gap
}

func (w *haNodeWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// haAgentEventually polls fn every 100ms until it returns nil and returns
// how long that took, failing the test with fn's last error after limit.
func haAgentEventually(t *testing.T, what string, limit time.Duration, fn func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := fn()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v: %v", what, limit, err)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestHA_agentFailsOver is issue 9's "agents are given every server's
// address and fail over": two servers on a three-member etcd cluster,
// both listening on a test network's gateway, and one agent in a host of
// that network given both addresses. The agent talks to the first; it is
// killed (SIGKILL, it also leads the controllers). The agent's Lease keeps
// being renewed through the second within haAgentRenewLimit, the Node
// never goes NotReady, the controllers move to the second, and a pod
// added after the kill is started by the agent and becomes Ready: the
// kubelet's watch came back through the survivor. Then the first server
// comes back, the second is killed, and the agent moves back, the same
// way. Last the second comes back and the first vanishes as in a power
// loss (its packets dropped, no FIN or RST reaches the agent): the agent
// moves again, slower (haAgentSilentRenewLimit), and the Node still never
// goes NotReady. Writes acknowledged by any server are all there at the
// end.
func TestHA_agentFailsOver(t *testing.T) {
	mnRequireHost(t)
	_, err := exec.LookPath("ss")
	testenv.Require(t, "ss on PATH", err == nil)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 2)
	_, _ = rand.Read(id)
	// mnCluster's helpers make the agent's host and data dir (addAgent),
	// list the pods (pods) and drain the node at cleanup (drain); its cs
	// follows the live server.
	c := &mnCluster{t: t, bin: testenv.Binary(t), tmp: t.TempDir(), id: hex.EncodeToString(id)}
	c.image = filepath.Join(c.tmp, "demo-web.tar")
	build := exec.CommandContext(t.Context(), "go", "run", "./components/internal/imagebuild/build-demo-web", "-o", c.image)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the demo image: %v\n%s", err, out)
	}
	cluster := testenv.StartEtcdCluster(t, 3)
	c.nw = netns.NewNetwork(t, "haa", fmt.Sprintf("10.76.%d.0/24", id[0]))
	token := haToken(t)
	ctx := t.Context()

	// Two servers on the gateway; the first takes the controllers' Lease
	// before the second exists, so that it both leads and is the agent's
	// first server.
	var addrs [2]string
	for addrs[0] == addrs[1] {
		for i := range addrs {
			addrs[i] = c.nw.Gateway + ":" + strconv.Itoa(haFreePort(t, c.nw.Gateway))
		}
	}
	s1 := startHAServerAt(t, c.bin, cluster, "s1", token, addrs[0])
	s1.ready(t)
	haEventually(t, "s1 holds the controllers' Lease", 30*time.Second, func() bool {
		return leaseHolder(ctx, s1.cs, controllers.DefaultLeaseName) == s1.identity()
	})
	s2 := startHAServerAt(t, c.bin, cluster, "s2", token, addrs[1])
	s2.ready(t)
	c.cs = s1.cs

	// The agent, given both servers, with the first's node-token file.
	a := c.addAgent("h")
	t.Cleanup(c.stopAgents)
	a.runs++
	cmd := a.host.Command(context.WithoutCancel(ctx), c.bin, "agent",
		"--server", "https://"+addrs[0], "--server", "https://"+addrs[1],
		"--token-file", filepath.Join(s1.proc.dataDir, nodeTokenFile),
		"--node-name", a.node, "--node-ip", a.host.IP, "--data-dir", a.dir, "--bridge-name", "kiln-h0")
	a.proc = mnStart(t, "kiln agent", cmd, filepath.Join(c.tmp, "agent.log"))
	joined := time.Now()
	haAgentEventually(t, "Node Ready", haAgentWait, func() error {
		st, err := c.nodeCondition(a.node)
		if err == nil && st != corev1.ConditionTrue {
			err = fmt.Errorf("Ready=%s", st)
		}
		return err
	})
	t.Logf("timing: Node %s Ready %v after the agent started", a.node, time.Since(joined).Round(time.Millisecond))
	// Drain before the agent stops (cleanups run last-registered first):
	// an agent's SIGTERM leaves its containers running.
	t.Cleanup(c.drain)

	// One web pod on the agent. The name is the one drain removes.
	deploy := demoWebDeployment("mn-web", "mn-web", 1)
	if _, err := s1.cs.AppsV1().Deployments(metav1.NamespaceDefault).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReadyPods := func(want int) time.Duration {
		t.Helper()
		return haAgentEventually(t, fmt.Sprintf("%d ready pods on the agent", want), haAgentWait, func() error {
			ready, all, err := c.pods()
			if err != nil {
				return err
			}
			if len(ready[a.node]) != want || len(all) != want {
				return fmt.Errorf("%d ready on %s; pods %s", len(ready[a.node]), a.node, podSummary(all))
			}
			return nil
		})
	}
	t.Logf("timing: 1 pod ready %v after the Deployment was created", waitReadyPods(1).Round(time.Millisecond))

	// The writers' namespaces: one writer through each phase's survivor.
	for _, ns := range []string{"ha-acks-1", "ha-acks-2", "ha-acks-3"} {
		if _, err := s1.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	watch := startHANodeWatch(t, a.node, s2.cs)

	// failover kills victim, which the agent talks to and which leads the
	// controllers, and checks that everything moves to survivor; the
	// Deployment is scaled to replicas meanwhile.
	failover := func(phase int, victim, survivor *haServer, replicas int, silent bool) *testenv.AckWriter {
		t.Helper()
		conns, err := haAgentConns(ctx, a.host.IP)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("phase %d: the agent's connections by server port before the kill: %v (%s is :%s, %s is :%s)",
			phase, conns, victim.name, victim.port(), survivor.name, survivor.port())
		if conns[victim.port()] == 0 || conns[survivor.port()] != 0 {
			t.Fatalf("phase %d: the agent is not talking to %s only: connections by port %v", phase, victim.name, conns)
		}
		if h := leaseHolder(ctx, survivor.cs, controllers.DefaultLeaseName); h != victim.identity() {
			t.Fatalf("phase %d: the controllers' Lease is held by %q, want %s", phase, h, victim.identity())
		}
		writer := testenv.StartAckWriter(t, fmt.Sprintf("ha-acks-%d", phase), 20, survivor.cs)
		watch.use(survivor.cs)
		c.cs = survivor.cs

		if silent {
			haSilence(t, a.host, c.nw.Gateway, victim.port())
		}
		victim.kill(t)
		killed := time.Now()
		if _, err := survivor.cs.AppsV1().Deployments(metav1.NamespaceDefault).Patch(ctx, "mn-web", "application/merge-patch+json",
			fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		var tConn, tRenew, tLease, tPods time.Duration
		haAgentEventually(t, fmt.Sprintf("phase %d: failover to %s", phase, survivor.name), haAgentWait, func() error {
			since := time.Since(killed)
			var missing []string
			if tConn == 0 {
				if conns, err := haAgentConns(ctx, a.host.IP); err == nil && conns[survivor.port()] > 0 {
					tConn = since
				} else {
					missing = append(missing, fmt.Sprintf("connections to the survivor (%v, %v)", conns, err))
				}
			}
			if tRenew == 0 {
				if r := watch.renewedAfter(killed); !r.IsZero() {
					tRenew = r.Sub(killed)
				} else {
					missing = append(missing, "a Lease renewal")
				}
			}
			if tLease == 0 {
				if h := leaseHolder(ctx, survivor.cs, controllers.DefaultLeaseName); h == survivor.identity() {
					tLease = since
				} else {
					missing = append(missing, "the controllers' Lease (held by "+h+")")
				}
			}
			if tPods == 0 {
				ready, all, err := c.pods()
				if err == nil && len(ready[a.node]) == replicas && len(all) == replicas {
					tPods = since
				} else {
					missing = append(missing, fmt.Sprintf("%d ready pods (%v, %v)", replicas, podSummary(all), err))
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("waiting for %s", strings.Join(missing, "; "))
			}
			return nil
		})
		how := "SIGKILL"
		if silent {
			how = "silent SIGKILL"
		}
		t.Logf("timing: phase %d, after %s's %s at %s: agent connected to %s %.1fs, node Lease renewed %.1fs, controllers' Lease moved %.1fs, %d pods ready %.1fs",
			phase, victim.name, how, killed.UTC().Format("15:04:05.000"), survivor.name, tConn.Seconds(), tRenew.Seconds(), tLease.Seconds(), replicas, tPods.Seconds())
		fmt.Printf("HA agent failover phase %d: connected %.1f s, lease renewed %.1f s, controllers %.1f s, new pod ready %.1f s\n",
			phase, tConn.Seconds(), tRenew.Seconds(), tLease.Seconds(), tPods.Seconds())
		limit := haAgentRenewLimit
		if silent {
			limit = haAgentSilentRenewLimit
		}
		if tRenew > limit {
			t.Errorf("phase %d: the node Lease was renewed %.1fs after the kill, want ≤ %v", phase, tRenew.Seconds(), limit)
		}
		if tLease > haTakeoverLimit {
			t.Errorf("phase %d: the controllers moved %.1fs after the kill, want ≤ %v", phase, tLease.Seconds(), haTakeoverLimit)
		}
		writer.Stop()
		return writer
	}

	// Phase 1: s1 dies, everything moves to s2.
	writer1 := failover(1, s1, s2, 2, false)

	// Phase 2: s1 comes back on its data dir and address; s2 dies, and
	// the agent moves back (its dialer tries s2 first now, then wraps).
	s1.restart(t, c.bin, cluster, token)
	s1.ready(t)
	// The agent's failover dialer keeps to s2 while it answers, so the
	// restarted s1 gets none of its connections (failover checks).
	writer2 := failover(2, s2, s1, 3, false)

	// Phase 3: s2 comes back and s1 vanishes as in a power loss: its
	// packets to and from the agent are dropped before it is killed, so
	// the agent's connections to it are never closed.
	s2.restart(t, c.bin, cluster, token)
	s2.ready(t)
	writer3 := failover(3, s1, s2, 4, true)

	watch.end()
	watch.mu.Lock()
	polls, errs, lastErr, notReady, renewals := watch.polls, watch.errs, watch.lastErr, watch.notReady, len(watch.renewals)
	watch.mu.Unlock()
	t.Logf("node watch: %d polls (%d failed, last: %v), %d Lease renewals seen, longest gap between renewals %v",
		polls, errs, lastErr, renewals, watch.maxGap().Round(time.Millisecond))
	// The agent's failed renewals say how long each took to fail.
	if b, err := os.ReadFile(a.proc.logPath); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `msg="renewing node lease"`) {
				t.Logf("agent: %s", line)
			}
		}
	}
	if len(notReady) > 0 {
		t.Errorf("Node %s was seen not Ready %d times: %v", a.node, len(notReady), notReady)
	}
	// Writes acknowledged by either server, read back through s1, which
	// is the one alive.
	writer1.Verify(t, s2.cs)
	writer2.Verify(t, s2.cs)
	writer3.Verify(t, s2.cs)
	if t.Failed() {
		t.Logf("s1's log tail:\n%s", haTail(s1.logs.String(), 40))
		t.Logf("s2's log tail:\n%s", haTail(s2.logs.String(), 40))
	}
}

// haFreePort returns a port free on host a moment ago.
func haFreePort(t *testing.T, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// haSilence drops, inside host, every packet from the gateway's port:
// the server there vanishes for the host without a FIN or a RST, as in a
// power loss. Only what comes back is dropped, so that the host's SYNs
// and data still leave (a drop in OUTPUT would fail its connect at once
// with EPERM) and go unanswered: a dial waits for its timeout, as it would
// for a dead machine. The rule goes with the host's namespace.
func haSilence(t *testing.T, host *netns.Host, gateway, port string) {
	t.Helper()
	out, err := host.Command(t.Context(), "iptables", "-w", "-I", "INPUT", "-p", "tcp", "-s", gateway, "--sport", port, "-j", "DROP").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables in %s: %v: %s", host.Name, err, out)
	}
}
