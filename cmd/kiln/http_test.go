package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kiln.dev/kiln/config"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/git"
)

func TestServeHTTP_webhooksAndShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	h := newHTTPMux(httpHandlers{webhooks: reconcile.WebhookHandler(reconcile.WebhookConfig{Logger: log,
		Sources: map[string]reconcile.WebhookSource{"demo": {Trigger: func() { n.Add(1) }}}})})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, ln, h, log) }()

	base := "http://" + ln.Addr().String()
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/hooks/git/demo", http.StatusAccepted},
		{http.MethodPost, "/hooks/git/other", http.StatusNotFound},
		{http.MethodGet, "/hooks/git/demo", http.StatusMethodNotAllowed},
		{http.MethodGet, "/", http.StatusNotFound},
	} {
		req, err := http.NewRequestWithContext(t.Context(), tc.method, base+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
	}
	if n.Load() != 1 {
		t.Errorf("%d triggers, want 1", n.Load())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serveHTTP: %v", err)
		}
	case <-time.After(2 * httpShutdownTimeout):
		t.Fatal("serveHTTP did not return after cancel")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("listener still open after shutdown")
	}
}

func TestNewWebhookSource(t *testing.T) {
	src, err := git.New(git.Config{Name: "demo", URL: "file:///nowhere", WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	file := func(content string) string {
		p := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name       string
		file       string
		wantSecret string
		wantErr    string
	}{
		{name: "no file", file: ""},
		{name: "trailing newline", file: file("s3cret-canary\n"), wantSecret: "s3cret-canary"},
		{name: "empty", file: file(" \n"), wantErr: "is empty"},
		{name: "missing", file: filepath.Join(t.TempDir(), "nope"), wantErr: "webhookSecretFile: open"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := newWebhookSource(src, config.Source{Name: "demo", Kind: config.SourceKindGit, Ref: "main", WebhookSecretFile: tc.file})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(ws.Secret) != tc.wantSecret || ws.Branch != "main" || ws.Trigger == nil {
				t.Errorf("WebhookSource = secret %q branch %q", ws.Secret, ws.Branch)
			}
		})
	}
}

// The binary serves a git source's webhook on --dashboard-listen, with
// the secret from kiln.yaml, and a signed push makes it sync at once
// (interval 1h).
func TestServer_Run_gitWebhook(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	kilnRequire(t, "git on PATH", err == nil)
	_, err = exec.LookPath("kubectl")
	kilnRequire(t, "kubectl on PATH", err == nil)
	bin := kilnBuild(t, t.TempDir())

	// A bare remote and a work clone.
	root, home := t.TempDir(), t.TempDir()
	bare, work := filepath.Join(root, "demo.git"), filepath.Join(root, "work")
	gitRun := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(gitBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	push := func(name, content string) string {
		t.Helper()
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		gitRun(work, "add", "-A")
		gitRun(work, "commit", "-q", "-m", "add "+name)
		gitRun(work, "push", "-q", "origin", "HEAD")
		return gitRun(work, "rev-parse", "HEAD")
	}
	gitRun("", "init", "-q", "--bare", "-b", "main", bare)
	gitRun("", "init", "-q", "-b", "main", work)
	gitRun(work, "remote", "add", "origin", bare)
	push("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n")

	const secret = "hook-canary-51c0"
	secretFile := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	addr, dashAddr := kilnFreeAddr(t), kilnFreeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "kiln.yaml")
	cfgYAML := fmt.Sprintf("dataDir: %s\napiListen: %s\ndashboardListen: %s\ndisable: [kubelet, proxy]\nsources:\n- name: demo\n  kind: git\n  url: file://%s\n  ref: main\n  interval: 1h\n  webhookSecretFile: %s\n",
		dataDir, addr, dashAddr, bare, secretFile)
	if err := os.WriteFile(cfgFile, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &kilnProc{dataDir: dataDir, addr: addr, exited: make(chan struct{})}
	var logs strings.Builder
	p.cmd = exec.Command(bin, "server", "--config", cfgFile)
	// One writer for both: exec then copies with one goroutine, and logs
	// is read only after the process has exited.
	out := io.MultiWriter(t.Output(), &logs)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	p.waitReady(t)
	kubeconfig := filepath.Join(dataDir, "admin.kubeconfig")
	applied := func() string {
		out, _ := kilnKubectl(t, kubeconfig, home, "get", "sources.gitops.kiln.dev", "demo", "-o", "jsonpath={.status.lastAppliedRevision}")
		return out
	}
	kilnEventually(t, "first sync", func() bool { return strings.HasPrefix(applied(), "main@sha1:") })

	second := push("b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: v}\n")
	body := `{"ref":"refs/heads/main","after":"` + second + `"}`
	post := func(sig string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+dashAddr+"/hooks/git/demo", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("sha256=00"); code != http.StatusUnauthorized {
		t.Errorf("bad signature: %d, want 401", code)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	if code := post("sha256=" + hex.EncodeToString(m.Sum(nil))); code != http.StatusAccepted {
		t.Fatalf("signed push: %d, want 202", code)
	}
	kilnEventually(t, "webhook sync", func() bool { return applied() == "main@sha1:"+second })
	p.stop(t)
	if strings.Contains(logs.String(), secret) {
		t.Error("kiln logged the webhook secret")
	}
	if _, err := net.DialTimeout("tcp", dashAddr, time.Second); err == nil {
		t.Error("webhook listener still open after kiln exited")
	}
}

// kilnEventually polls ok until it holds or 60s pass.
func kilnEventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
