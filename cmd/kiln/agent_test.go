package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/components/testenv/netns"
	"kiln.dev/kiln/config"
)

// agentReadyTimeout bounds the wait for an agent's Node to be Ready:
// starting containerd is most of it.
const agentReadyTimeout = 90 * time.Second

// agentRequireHost skips (fails under KILN_E2E=require) unless this host
// can run an agent in a network namespace: root and the node's tools.
func agentRequireHost(t testing.TB) {
	t.Helper()
	testenv.Require(t, "root", os.Geteuid() == 0)
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "iptables", "iptables-save", "iptables-restore", "ip", "nsenter"} {
		_, err := exec.LookPath(bin)
		testenv.Require(t, bin+" on PATH", err == nil)
	}
}

// agentCluster is a `kiln server` in the root namespace, listening on the
// bridge of a test network whose hosts run agents.
type agentCluster struct {
	bin     string
	network *netns.Network
	server  *agentServer
	dataDir string // the server's
	url     string
	token   string
	client  kubernetes.Interface
}

// startAgentCluster starts the network and a server without kubelet and
// proxy on its bridge address, and waits until it is ready.
func startAgentCluster(t testing.TB, name string) *agentCluster {
	t.Helper()
	agentRequireHost(t)
	bin := testenv.Binary(t)
	b := make([]byte, 1)
	_, _ = rand.Read(b)
	network := netns.NewNetwork(t, name, fmt.Sprintf("10.79.%d.0/24", b[0]))
	l, err := net.Listen("tcp", net.JoinHostPort(network.Gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dashAddr := dl.Addr().String()
	dl.Close()
	dataDir := filepath.Join(t.TempDir(), "server")
	srv := &agentServer{exited: make(chan struct{})}
	srv.cmd = exec.Command(bin, "server", "--data-dir", dataDir, "--api-listen", addr, "--dashboard-listen", dashAddr,
		"--disable", "kubelet,proxy")
	srv.cmd.Stdout, srv.cmd.Stderr = t.Output(), t.Output()
	if err := srv.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		srv.waitErr = srv.cmd.Wait()
		close(srv.exited)
	}()
	t.Cleanup(func() { stopProc(t, "kiln server", srv.cmd, srv.exited, &srv.waitErr) })
	cs := waitAgentServer(t, srv, dataDir)
	tok, err := os.ReadFile(filepath.Join(dataDir, nodeTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return &agentCluster{dataDir: dataDir, bin: bin, network: network, server: srv, url: "https://" + addr, token: strings.TrimSpace(string(tok)), client: cs}
}

// agentServer is the `kiln server` process of an agentCluster.
type agentServer struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// waitAgentServer waits until the server has written its kubeconfig and
// its API answers /readyz, and returns an admin clientset.
func waitAgentServer(t testing.TB, srv *agentServer, dataDir string) kubernetes.Interface {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		var cs kubernetes.Interface
		rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "admin.kubeconfig"))
		if err == nil {
			cs, err = kubernetes.NewForConfig(rc)
		}
		if err == nil {
			_, err = cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		}
		if err == nil {
			return cs
		}
		last = err
		select {
		case <-srv.exited:
			t.Fatalf("kiln server exited before it was ready: %v", srv.waitErr)
		case <-ctx.Done():
			t.Fatalf("kiln server not ready in 60s: %v", last)
		case <-tick.C:
		}
	}
}

// stopProc sends SIGTERM and checks that the process exits with status 0
// in time.
func stopProc(t testing.TB, what string, cmd *exec.Cmd, exited chan struct{}, waitErr *error) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal %s: %v", what, err)
	}
	select {
	case <-exited:
		if *waitErr != nil {
			t.Errorf("%s after SIGTERM: %v, want exit status 0", what, *waitErr)
		}
	case <-time.After(kilnStopTimeout):
		_ = cmd.Process.Kill()
		<-exited
		t.Errorf("%s did not exit within %v of SIGTERM", what, kilnStopTimeout)
	}
}

// agentProc is one `kiln agent` process.
type agentProc struct {
	cmd     *exec.Cmd
	start   time.Time
	out     *syncBuffer
	exited  chan struct{}
	waitErr error
	stopped bool
}

// syncBuffer is the agent's output, kept for checks and copied to the
// test's log.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	copy interface{ Write([]byte) (int, error) }
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	return b.copy.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startAgent runs `kiln agent` with args on host (nil: the root
// namespace). It is stopped with SIGTERM at cleanup at the latest.
func (c *agentCluster) startAgent(t testing.TB, host *netns.Host, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{out: &syncBuffer{copy: t.Output()}, exited: make(chan struct{})}
	args = append([]string{"agent"}, args...)
	// Not CommandContext: the test's context ends before cleanup, and the
	// agent must get SIGTERM, not SIGKILL.
	if host != nil {
		p.cmd = host.Command(context.WithoutCancel(t.Context()), c.bin, args...)
	} else {
		p.cmd = exec.Command(c.bin, args...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and checks that the agent exits with status 0 in
// time.
func (p *agentProc) stop(t testing.TB) {
	t.Helper()
	if p.stopped {
		return
	}
	p.stopped = true
	stopProc(t, "kiln agent", p.cmd, p.exited, &p.waitErr)
}

// waitNodeReady waits until Node name is Ready and returns it.
func (c *agentCluster) waitNodeReady(t testing.TB, p *agentProc, name string) *corev1.Node {
	t.Helper()
	return c.waitNodeReadyEvery(t, p, name, 50*time.Millisecond)
}

// waitNodeReadyEvery is waitNodeReady polling every period.
func (c *agentCluster) waitNodeReadyEvery(t testing.TB, p *agentProc, name string, period time.Duration) *corev1.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), agentReadyTimeout)
	defer cancel()
	tick := time.NewTicker(period)
	defer tick.Stop()
	var last string
	for {
		n, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		switch {
		case err != nil:
			last = err.Error()
		case nodeReady(n):
			return n
		default:
			last = fmt.Sprintf("conditions %v", n.Status.Conditions)
		}
		select {
		case <-p.exited:
			t.Fatalf("kiln agent exited before Node %s was Ready: %v", name, p.waitErr)
		case <-ctx.Done():
			t.Fatalf("Node %s not Ready in %s: %s", name, agentReadyTimeout, last)
		case <-tick.C:
		}
	}
}

// TestAgent_joinsAndNodeReady: `kiln agent` in a network namespace of its
// own joins a `kiln server` with the server's node-token, its Node becomes
// Ready with the agent's address, the credentials land in DATA_DIR/agent,
// and a restart reuses them.
func TestAgent_joinsAndNodeReady(t *testing.T) {
	c := startAgentCluster(t, "agt")
	host := c.network.AddHost(t, "a1")
	dataDir := filepath.Join(t.TempDir(), "agent-1")
	// The server's node-token file itself, as --token-file.
	args := []string{"--server", c.url, "--token-file", filepath.Join(c.dataDir, nodeTokenFile), "--node-name", "agent-1", "--data-dir", dataDir, "--bridge-name", "kiln-t1"}
	a := c.startAgent(t, host, args...)
	n := c.waitNodeReady(t, a, "agent-1")
	t.Logf("Node agent-1 Ready %.2fs after the agent started", time.Since(a.start).Seconds())
	var ip string
	for _, addr := range n.Status.Addresses {
		if addr.Type == corev1.NodeInternalIP {
			ip = addr.Address
		}
	}
	if ip != host.IP {
		t.Errorf("Node InternalIP %q, want the agent host's %s (the default route's source)", ip, host.IP)
	}
	for _, f := range []string{"ca.crt", "client.crt", "client.key", "kubelet.crt", "kubelet.key", "join.json"} {
		if _, err := os.Stat(filepath.Join(dataDir, agentDir, f)); err != nil {
			t.Errorf("agent file: %v", err)
		}
	}
	waitLog(t, a, "kiln agent ready")
	if st, err := os.Stat(filepath.Join(c.dataDir, nodeTokenFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("server's node-token: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	c.checkKubeletAuth(t, host.IP)
	a.stop(t)

	// A restart joins no more: the saved credentials are reused.
	again := c.startAgent(t, host, args...)
	waitLog(t, again, "kiln agent ready")
	if out := again.out.String(); !strings.Contains(out, "reused=true") {
		t.Errorf("restarted agent did not reuse its credentials:\n%s", out)
	}
}

// waitLog waits until the agent has logged msg.
func waitLog(t testing.TB, p *agentProc, msg string) {
	t.Helper()
	deadline := time.After(agentReadyTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.out.String(), msg) {
		select {
		case <-p.exited:
			t.Fatalf("kiln agent exited before logging %q: %v", msg, p.waitErr)
		case <-deadline:
			t.Fatalf("kiln agent did not log %q in %s", msg, agentReadyTimeout)
		case <-tick.C:
		}
	}
}

// TestAgent_wrongCAHash_failsBeforeJoining: a token whose CA hash is not
// the server's makes the agent exit non-zero with the mismatch, having
// written nothing.
func TestAgent_wrongCAHash_failsBeforeJoining(t *testing.T) {
	c := startAgentCluster(t, "agh")
	hash, secret, err := pki.ParseJoinToken(c.token)
	if err != nil {
		t.Fatal(err)
	}
	// Flip the last hex digit of the hash.
	last := hash[len(hash)-1]
	flipped := byte('0')
	if last == '0' {
		flipped = '1'
	}
	wrong := hash[:len(hash)-1] + string(flipped)
	dataDir := filepath.Join(t.TempDir(), "agent-2")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, "agent", "--server", c.url, "--token", pki.FormatJoinToken(wrong, secret),
		"--node-name", "agent-2", "--data-dir", dataDir)
	out, err := cmd.CombinedOutput()
	t.Logf("kiln agent with a wrong CA hash: %v\n%s", err, out)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("kiln agent: %v, want a non-zero exit", err)
	}
	if want := "does not match the token's " + wrong; !strings.Contains(string(out), want) {
		t.Errorf("output does not say %q", want)
	}
	if strings.Contains(string(out), secret) {
		t.Error("the output contains the secret")
	}
	if _, err := os.Stat(filepath.Join(dataDir, agentDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("agent credentials dir exists after a refused join (%v)", err)
	}
	if _, err := c.client.CoreV1().Nodes().Get(t.Context(), "agent-2", metav1.GetOptions{}); err == nil {
		t.Error("Node agent-2 exists")
	}
}

// checkKubeletAuth: the agent's kubelet serves with the certificate it got
// when joining (verified here against the cluster CA for the node's IP),
// answers 401 without credentials or with a token the API does not know,
// and lets the admin through: it checks callers with a TokenReview and a
// SubjectAccessReview made with the node's own credentials.
func (c *agentCluster) checkKubeletAuth(t *testing.T, nodeIP string) {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(c.dataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := os.ReadFile(filepath.Join(c.dataDir, "tls", adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	url := "https://" + net.JoinHostPort(nodeIP, strconv.Itoa(config.DefaultKubeletPort)) + "/containerLogs/default/nopod/c"
	for _, tc := range []struct {
		name, token  string
		unauthorized bool
	}{
		{"no credentials", "", true},
		{"unknown token", "not-a-token", true},
		{"admin", strings.TrimSpace(string(admin)), false},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("kubelet endpoint, %s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("kubelet endpoint, %s: %s %s", tc.name, resp.Status, bytes.TrimSpace(body))
		if got := resp.StatusCode == http.StatusUnauthorized; got != tc.unauthorized || resp.StatusCode >= 500 {
			t.Errorf("kubelet endpoint, %s: %s, want 401: %v", tc.name, resp.Status, tc.unauthorized)
		}
	}
}
