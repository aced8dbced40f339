package join_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/apiserver/join"
	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/testenv"
)

// fixture is a real API server with the join endpoint mounted, counting
// the requests that reach it.
type fixture struct {
	env    *testenv.Env
	ca     *pki.CA
	secret string
	token  string
	joins  atomic.Int64
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func startFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.EnsureCA(filepath.Join(dir, "tls")) // testenv reuses it
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ca: ca, secret: randomHex(t)}
	f.token = pki.FormatJoinToken(ca.Hash(), f.secret)
	h, err := join.Handler(join.HandlerConfig{CA: ca, ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16",
		ClusterDNS: "10.43.0.10", Servers: func() []string { return []string{"https://10.99.0.1:6443"} },
		// The store exists once testenv has started, before any join.
		ClaimName: func(ctx context.Context, node, password string) error {
			return f.env.Store.ClaimNodePassword(ctx, node, password)
		},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	counting := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.joins.Add(1)
		h.ServeHTTP(w, r)
	})
	f.env = testenv.Start(t, testenv.Options{
		DataDir: dir,
		Extra:   map[string]http.Handler{join.PathPrefix: counting},
		ExtraTokens: map[string]apiserver.User{
			f.secret:    {Name: join.BootstrapUser, Groups: []string{join.GroupBootstrappers}},
			"bob-token": {Name: "bob", Groups: []string{"developers"}},
		},
	})
	return f
}

func (f *fixture) config(t *testing.T, name string) join.JoinConfig {
	return join.JoinConfig{Servers: []string{f.env.URL}, Token: f.token, NodeName: name, NodeIP: "10.77.0.2",
		Dir: filepath.Join(t.TempDir(), "agent"), Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
}

func TestJoin_goodToken_filesAndANodeIdentity(t *testing.T) {
	f := startFixture(t)
	cfg := f.config(t, "node-a")
	creds, err := join.Join(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if creds.Reused || f.joins.Load() != 1 {
		t.Fatalf("Reused = %v, joins = %d; want a fresh join with one request", creds.Reused, f.joins.Load())
	}
	for name, mode := range map[string]fs.FileMode{
		join.CACertFile: 0o644, join.ClientCertFile: 0o644, join.ClientKeyFile: 0o600,
		join.ServingCertFile: 0o644, join.ServingKeyFile: 0o600, join.InfoFile: 0o644,
	} {
		st, err := os.Stat(filepath.Join(cfg.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	var info join.Info
	b, err := os.ReadFile(filepath.Join(cfg.Dir, join.InfoFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	wantServers := []string{f.env.URL, "https://10.99.0.1:6443"}
	if info.NodeName != "node-a" || info.ClusterCIDR != "10.42.0.0/16" || info.ServiceCIDR != "10.43.0.0/16" ||
		info.ClusterDNS != "10.43.0.10" || !slices.Equal(info.Servers, wantServers) {
		t.Errorf("join.json = %+v, want the answer's settings and servers %v", info, wantServers)
	}
	if bytes.Contains(b, []byte(f.secret)) {
		t.Error("join.json contains the secret")
	}

	// The certificates say who the node is, chain to the CA, and the
	// serving one is for the node's IP and name.
	leaf, err := x509.ParseCertificate(mustKeyPair(t, creds.ClientCertPEM, creds.ClientKeyPEM).Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "system:node:node-a" || !slices.Equal(leaf.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("client certificate subject %v, want CN system:node:node-a O system:nodes", leaf.Subject)
	}
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Cert)
	for _, host := range []string{"10.77.0.2", "node-a"} {
		if _, err := creds.Serving.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("serving certificate for %s: %v", host, err)
		}
	}

	// The node's client reaches the API as the node: /version, and its
	// own Node (created by the admin here; the kubelet would register it).
	if _, err := f.env.Clientset.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(creds.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		t.Fatalf("/version as the node: %v", err)
	}
	if _, err := cs.CoreV1().Nodes().Get(t.Context(), "node-a", metav1.GetOptions{}); err != nil {
		t.Fatalf("get own Node as the node: %v", err)
	}

	// A second start reuses the files without asking the server.
	again, err := join.Join(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Reused || f.joins.Load() != 1 {
		t.Fatalf("second Join: Reused = %v, joins = %d; want the saved credentials and no request", again.Reused, f.joins.Load())
	}
	if !bytes.Equal(again.ClientCertPEM, creds.ClientCertPEM) {
		t.Fatal("second Join returned another client certificate")
	}
	// Another node name on the same directory joins anew.
	other := cfg
	other.NodeName = "node-b"
	if c, err := join.Join(t.Context(), other); err != nil || c.Reused || f.joins.Load() != 2 {
		t.Fatalf("Join as another node: reused %v, joins %d, err %v; want a new join", c != nil && c.Reused, f.joins.Load(), err)
	}
}

func mustKeyPair(t *testing.T, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestJoin_wrongCAHash_failsBeforeTheSecretIsSent(t *testing.T) {
	f := startFixture(t)

	// Against the real server, a token pinning another CA.
	otherCA, err := pki.EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.config(t, "node-a")
	cfg.Token = pki.FormatJoinToken(otherCA.Hash(), f.secret)
	_, err = join.Join(t.Context(), cfg)
	want := "server CA hash " + f.ca.Hash() + " does not match the token's " + otherCA.Hash()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Join error = %v, want %q", err, want)
	}
	if strings.Contains(err.Error(), f.secret) {
		t.Fatal("the error contains the secret")
	}
	if n := f.joins.Load(); n != 0 {
		t.Fatalf("the join endpoint saw %d requests", n)
	}
	if _, err := os.Stat(cfg.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the agent dir exists after a failed join (%v)", err)
	}

	// An impostor (its own CA) that records every request: the agent
	// with the real token asks for the CA and nothing else, and never
	// sends the secret.
	impostorCA, err := pki.EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := impostorCA.EnsureServing(t.TempDir(), "serving", []string{"127.0.0.1", "kubernetes"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	impostor := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization")+" body="+string(body))
		mu.Unlock()
		if r.URL.Path == join.CACertsPath {
			_, _ = w.Write(impostorCA.CertPEM)
			return
		}
		http.Error(w, "{}", http.StatusOK)
	}))
	impostor.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	impostor.StartTLS()
	defer impostor.Close()
	cfg = f.config(t, "node-a")
	cfg.Servers = []string{impostor.URL, f.env.URL}
	_, err = join.Join(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "does not match the token's "+f.ca.Hash()) {
		t.Fatalf("Join via the impostor: error = %v, want the CA mismatch", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "GET /cacerts auth= body=" {
		t.Fatalf("the impostor saw %q, want only an unauthenticated GET /cacerts", seen)
	}
	// The mismatch stops the join: the next server is not tried either.
	if n := f.joins.Load(); n != 0 {
		t.Fatalf("the real join endpoint saw %d requests", n)
	}
}

func TestJoin_wrongSecret_401AndNoFiles(t *testing.T) {
	f := startFixture(t)
	cfg := f.config(t, "node-a")
	cfg.Token = pki.FormatJoinToken(f.ca.Hash(), randomHex(t))
	_, err := join.Join(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "refused the token's secret (401 Unauthorized)") {
		t.Fatalf("Join error = %v, want a 401", err)
	}
	if _, err := os.Stat(cfg.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the agent dir exists after a refused join (%v)", err)
	}
	// A bare secret cannot pin the CA: refused before any request.
	cfg.Token = f.secret
	if _, err := join.Join(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "K10") {
		t.Fatalf("Join with a bare secret: error = %v, want the K10 explanation", err)
	}
}

// TestHandler_refusals posts requests by hand: who may join, and what a
// request must hold.
func TestHandler_refusals(t *testing.T) {
	f := startFixture(t)
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	_, clientCSR, err := pki.NewCSR("x")
	if err != nil {
		t.Fatal(err)
	}
	_, servingCSR, err := pki.NewCSR("x")
	if err != nil {
		t.Fatal(err)
	}
	good := join.Request{NodeName: "node-a", NodeIP: "10.77.0.2", ClientCSR: string(clientCSR), ServingCSR: string(servingCSR), NodePassword: randomHex(t)}
	badSig := []byte(good.ClientCSR)
	badSig[len(badSig)-40] ^= 1 // inside the base64 of the signature
	post := func(token, path string, req any) (int, string) {
		t.Helper()
		body, _ := json.Marshal(req)
		hreq, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.env.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			hreq.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	with := func(mod func(r *join.Request)) join.Request {
		r := good
		mod(&r)
		return r
	}
	for _, tc := range []struct {
		name, token, path string
		req               any
		code              int
		want              string
	}{
		{"bootstrapper", f.secret, join.JoinPath, good, 200, `"clientCert"`},
		{"admin", f.env.Token, join.JoinPath, good, 200, `"clientCert"`},
		{"no token", "", join.JoinPath, good, 401, "Unauthorized"},
		{"another user", "bob-token", join.JoinPath, good, 403, `user "bob" may not join nodes`},
		{"other path", f.secret, join.PathPrefix + "/other", good, 404, ""},
		{"bad node name", f.secret, join.JoinPath, with(func(r *join.Request) { r.NodeName = "Node_A" }), 400, `nodeName "Node_A"`},
		{"bad node IP", f.secret, join.JoinPath, with(func(r *join.Request) { r.NodeIP = "10.0.0" }), 400, `nodeIP "10.0.0": want an IP address`},
		{"unspecified node IP", f.secret, join.JoinPath, with(func(r *join.Request) { r.NodeIP = "0.0.0.0" }), 400, `nodeIP "0.0.0.0"`},
		{"bad CSR signature", f.secret, join.JoinPath, with(func(r *join.Request) { r.ClientCSR = string(badSig) }), 400, "clientCSR: certificate request"},
		{"no serving CSR", f.secret, join.JoinPath, with(func(r *join.Request) { r.ServingCSR = "" }), 400, "servingCSR: certificate request"},
		{"not JSON", f.secret, join.JoinPath, "x", 400, "bad join request"},
		{"no node password", f.secret, join.JoinPath, with(func(r *join.Request) { r.NodePassword = "" }), 400, "nodePassword is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(tc.token, tc.path, tc.req)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tc.code, tc.want)
			}
		})
	}
}

// TestCredentials_RESTConfig_failsOver: two ways to the same API; when the
// one in use goes away, requests go to the other.
func TestCredentials_RESTConfig_failsOver(t *testing.T) {
	f := startFixture(t)
	// The first server is a TCP relay to the API that can be stopped:
	// the same certificate, so it looks like a second server.
	relay := startRelay(t, strings.TrimPrefix(f.env.URL, "https://"))
	cfg := f.config(t, "node-a")
	cfg.Servers = []string{"https://" + relay.addr(), f.env.URL}
	creds, err := join.Join(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Clientset.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(creds.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Nodes().Get(t.Context(), "node-a", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if relay.conns.Load() == 0 {
		t.Fatal("the first server was not used first")
	}
	relay.stop()
	if _, err := cs.CoreV1().Nodes().Get(t.Context(), "node-a", metav1.GetOptions{}); err != nil {
		t.Fatalf("after the first server stopped: %v", err)
	}
	// A dead address first in the list costs a refused dial, no error.
	cfg.Servers = []string{"https://" + relay.addr(), f.env.URL}
	again, err := join.Join(t.Context(), cfg)
	if err != nil || !again.Reused {
		t.Fatalf("rejoin: reused %v, %v", again != nil && again.Reused, err)
	}
	cs2, err := kubernetes.NewForConfig(again.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs2.CoreV1().Nodes().Get(t.Context(), "node-a", metav1.GetOptions{}); err != nil {
		t.Fatalf("with the first server down from the start: %v", err)
	}
}

// relay copies TCP connections to target until stopped.
type relay struct {
	ln    net.Listener
	conns atomic.Int64
	mu    sync.Mutex
	open  []net.Conn
	done  bool
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln}
	t.Cleanup(r.stop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			if r.done {
				r.mu.Unlock()
				c.Close()
				up.Close()
				return
			}
			r.open = append(r.open, c, up)
			r.mu.Unlock()
			r.conns.Add(1)
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

// stop closes the listener and every connection, as a server that dies.
func (r *relay) stop() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	for _, c := range r.open {
		c.Close()
	}
	r.open = nil
}

// TestJoin_noServer_unreachable: when no server answers the error says so,
// and is ErrUnreachable, which the agent retries.
func TestJoin_noServer_unreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String()
	ln.Close()
	hash := strings.Repeat("ab", 32)
	_, err = join.Join(t.Context(), join.JoinConfig{Servers: []string{dead}, Token: "K10" + hash + "::node:s3cret",
		NodeName: "node-a", NodeIP: "10.77.0.2", Dir: filepath.Join(t.TempDir(), "agent")})
	if !errors.Is(err, join.ErrUnreachable) || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Join error = %v, want ErrUnreachable naming the server", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatal("the error contains the secret")
	}
}

// The join token lets any machine join, but not under the name of a node
// that exists and joined from another machine: the node password binds
// the name. Deleting the Node frees it.
func TestJoin_nodeNameTakenByAnotherMachine(t *testing.T) {
	f := startFixture(t)
	ctx := t.Context()
	first := f.config(t, "worker-1")
	if _, err := join.Join(ctx, first); err != nil {
		t.Fatal(err)
	}
	pw, err := os.ReadFile(filepath.Join(first.Dir, join.PasswordFile))
	if err != nil || len(bytes.TrimSpace(pw)) != 64 {
		t.Fatalf("node password file: %q, %v", pw, err)
	}
	if _, err := f.env.Clientset.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	other := f.config(t, "worker-1")
	_, err = join.Join(ctx, other)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "another node password") {
		t.Fatalf("a second machine joining as worker-1: %v, want 403 naming the node password", err)
	}
	if _, serr := os.Stat(filepath.Join(other.Dir, join.ClientCertFile)); serr == nil {
		t.Error("the refused machine got a certificate")
	}

	// The first machine joins again (new certificates, same password).
	for _, name := range []string{join.InfoFile, join.ClientCertFile} {
		if err := os.Remove(filepath.Join(first.Dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := join.Join(ctx, first); err != nil || c.Reused {
		t.Fatalf("the first machine joining again: %v (reused %v)", err, c != nil && c.Reused)
	}

	// Deleting the Node frees the name.
	if err := f.env.Clientset.CoreV1().Nodes().Delete(ctx, "worker-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := join.Join(ctx, other); err != nil {
		t.Fatalf("joining as worker-1 once its Node is deleted: %v", err)
	}
}
