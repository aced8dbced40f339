package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests are the `make run` experience: the real binary, started as a
// user starts it, driven by the real kubectl with the kubeconfig it writes.
//
// cmd may not import components/internal, so testenv.Binary, Kubectl and
// Require are mirrored here in a few lines each.

// appFixture is the multi-document app the apiserver's kubectl tests apply.
var appFixture = filepath.Join("..", "..", "components", "apiserver", "testdata", "kubectl", "app.yaml")

// kilnStopTimeout is how long kiln may take to exit after SIGTERM.
const kilnStopTimeout = 20 * time.Second

// kilnRequire is testenv.Require: a missing prerequisite skips the test,
// or fails it under KILN_E2E=require (CI).
func kilnRequire(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("KILN_E2E") == "require" {
		t.Fatalf("prerequisite missing: %s (KILN_E2E=require)", what)
	}
	t.Skipf("prerequisite missing: %s (set KILN_E2E=require to fail instead)", what)
}

// kilnBuild builds this command into dir and returns the binary's path.
func kilnBuild(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "kiln")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build kiln: %v\n%s", err, out)
	}
	return bin
}

// kilnFreeAddr returns a loopback address whose port was free a moment ago.
func kilnFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// kilnProc is one `kiln server` process.
type kilnProc struct {
	cmd     *exec.Cmd
	dataDir string
	addr    string
	exited  chan struct{} // closed when the process has exited
	waitErr error         // the exit status; read after exited is closed
	stopped bool
}

// startKiln runs `kiln server` on dataDir and addr, its output going to
// the test's log. It is stopped (and must exit 0) at cleanup at the latest.
func startKiln(t *testing.T, bin, dataDir, addr string) *kilnProc {
	t.Helper()
	p := &kilnProc{dataDir: dataDir, addr: addr, exited: make(chan struct{})}
	// A free port keeps the dashboard's default from clashing; the node
	// (containerd, iptables) has tests of its own.
	p.cmd = exec.Command(bin, "server", "--data-dir", dataDir, "--api-listen", addr, "--dashboard-listen", kilnFreeAddr(t),
		"--disable", "kubelet,proxy")
	p.cmd.Stdout, p.cmd.Stderr = t.Output(), t.Output()
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

// stop sends SIGTERM and checks that kiln exits with status 0 in time.
func (p *kilnProc) stop(t *testing.T) {
	t.Helper()
	if p.stopped {
		return
	}
	p.stopped = true
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal kiln: %v", err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Errorf("kiln server after SIGTERM: %v, want exit status 0", p.waitErr)
		}
	case <-time.After(kilnStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("kiln server did not exit within %v of SIGTERM", kilnStopTimeout)
	}
}

// waitReady waits until admin.kubeconfig exists and /readyz answers 200
// over TLS verified with the data dir's CA.
func (p *kilnProc) waitReady(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = p.ready(ctx); last == nil {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("kiln server exited before it was ready: %v", p.waitErr)
		case <-ctx.Done():
			t.Fatalf("kiln server not ready in 60s: %v", last)
		case <-tick.C:
		}
	}
}

func (p *kilnProc) ready(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(p.dataDir, "admin.kubeconfig")); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(p.dataDir, "tls", "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("tls/ca.crt holds no certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+p.addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// kilnKubectl runs the real kubectl with kubeconfig and its own HOME and
// discovery cache under home, returning stdout (error: with stderr).
func kilnKubectl(t *testing.T, kubeconfig, home string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	kilnRequire(t, "kubectl on PATH", err == nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(home, "cache")}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func kilnLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

func TestServer_Run(t *testing.T) {
	_, err := exec.LookPath("kubectl")
	kilnRequire(t, "kubectl on PATH", err == nil)
	bin := kilnBuild(t, t.TempDir())

	t.Run("kubectl session", func(t *testing.T) {
		t.Parallel()
		dataDir := filepath.Join(t.TempDir(), "data")
		addr := kilnFreeAddr(t)
		p := startKiln(t, bin, dataDir, addr)
		p.waitReady(t)

		kubeconfig := filepath.Join(dataDir, "admin.kubeconfig")
		checkMode(t, kubeconfig, 0o600)
		checkMode(t, dataDir, 0o700)
		checkMode(t, filepath.Join(dataDir, "etcd"), 0o700)
		checkMode(t, filepath.Join(dataDir, "tls", "ca.key"), 0o600)
		checkMode(t, filepath.Join(dataDir, "tls", "admin.token"), 0o600)
		if kc, err := os.ReadFile(kubeconfig); err != nil || !bytes.Contains(kc, []byte("server: https://"+addr+"\n")) {
			t.Errorf("admin.kubeconfig does not point at https://%s (%v):\n%s", addr, err, kc)
		}

		home := t.TempDir()
		run := func(args ...string) string {
			t.Helper()
			out, err := kilnKubectl(t, kubeconfig, home, args...)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		if out := run("create", "namespace", "shop"); strings.TrimSpace(out) != "namespace/shop created" {
			t.Errorf("create namespace printed %q", out)
		}
		out := run("apply", "-n", "shop", "-f", appFixture)
		want := []string{"deployment.apps/web created", "service/web created", "configmap/web-config created", "secret/web-secret created"}
		if got := kilnLines(out); !slices.Equal(got, want) {
			t.Errorf("apply printed %q, want %q", got, want)
		}
		out = run("get", "all", "-n", "shop", "-o", "name")
		if got := kilnLines(out); !slices.Contains(got, "service/web") || !slices.Contains(got, "deployment.apps/web") {
			t.Errorf("get all = %q, want service/web and deployment.apps/web", got)
		}
		out = run("delete", "-n", "shop", "-f", appFixture)
		want = []string{`deployment.apps "web" deleted`, `service "web" deleted`, `configmap "web-config" deleted`, `secret "web-secret" deleted`}
		if got := kilnLines(out); !slices.Equal(got, want) {
			t.Errorf("delete printed %q, want %q", got, want)
		}
		if out := run("get", "all", "-n", "shop", "-o", "name"); out != "" {
			t.Errorf("get all after delete = %q, want nothing", out)
		}
		p.stop(t)
	})

	t.Run("restart keeps CA and data", func(t *testing.T) {
		t.Parallel()
		dataDir := filepath.Join(t.TempDir(), "data")
		addr := kilnFreeAddr(t)
		home := t.TempDir()
		p := startKiln(t, bin, dataDir, addr)
		p.waitReady(t)

		// Keep the first run's kubeconfig, as a user's ~/.kube/config would.
		oldKubeconfig := filepath.Join(t.TempDir(), "old.kubeconfig")
		kc, err := os.ReadFile(filepath.Join(dataDir, "admin.kubeconfig"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(oldKubeconfig, kc, 0o600); err != nil {
			t.Fatal(err)
		}
		caBefore, err := os.ReadFile(filepath.Join(dataDir, "tls", "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kilnKubectl(t, oldKubeconfig, home, "create", "namespace", "kept"); err != nil {
			t.Fatal(err)
		}
		p.stop(t)

		p = startKiln(t, bin, dataDir, addr)
		p.waitReady(t)
		caAfter, err := os.ReadFile(filepath.Join(dataDir, "tls", "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(caBefore, caAfter) {
			t.Error("tls/ca.crt changed across a restart; existing kubeconfigs stop trusting the server")
		}
		// The old kubeconfig's CA and token still work, and etcd kept the
		// namespace.
		out, err := kilnKubectl(t, oldKubeconfig, home, "get", "namespace", "kept", "-o", "jsonpath={.metadata.name} {.status.phase}")
		if err != nil {
			t.Fatal(err)
		}
		if out != "kept Active" {
			t.Errorf("namespace after restart = %q, want kept Active", out)
		}
		p.stop(t)
	})
}
