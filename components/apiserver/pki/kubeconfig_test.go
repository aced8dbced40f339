package pki

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func TestWriteKubeconfig(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.kubeconfig")
	if err := WriteKubeconfig(path, "https://127.0.0.1:6443", ca.CertPEM, "admin", "tok123"); err != nil {
		t.Fatal(err)
	}
	if got := fileMode(t, path); got != 0o600 {
		t.Errorf("kubeconfig mode %o, want 600", got)
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "kiln" {
		t.Errorf("current context %q, want kiln", cfg.CurrentContext)
	}
	ctx := cfg.Contexts["kiln"]
	if ctx == nil || ctx.Cluster != "kiln" || ctx.AuthInfo != "admin" {
		t.Fatalf("context kiln = %+v", ctx)
	}
	cluster := cfg.Clusters["kiln"]
	if cluster == nil || cluster.Server != "https://127.0.0.1:6443" || string(cluster.CertificateAuthorityData) != string(ca.CertPEM) {
		t.Errorf("cluster kiln = %+v", cluster)
	}
	if user := cfg.AuthInfos["admin"]; user == nil || user.Token != "tok123" {
		t.Errorf("user admin = %+v", user)
	}

	// Rewriting replaces the file in place and leaves no temporary files.
	if err := WriteKubeconfig(path, "https://10.0.0.1:6443", ca.CertPEM, "admin", "tok456"); err != nil {
		t.Fatal(err)
	}
	cfg, err = clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Clusters["kiln"].Server != "https://10.0.0.1:6443" || cfg.AuthInfos["admin"].Token != "tok456" {
		t.Errorf("rewritten kubeconfig not updated")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only the kubeconfig", len(entries))
	}
}

// client-go, configured from the written kubeconfig, trusts the serving
// certificate and sends the token.
func TestWriteKubeconfig_clientGoConnects(t *testing.T) {
	ca := newCA(t)
	tlsDir := t.TempDir()
	cert, err := ca.EnsureServing(tlsDir, "apiserver", []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	token, err := EnsureToken(filepath.Join(t.TempDir(), "token"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	path := filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := WriteKubeconfig(path, srv.URL, ca.CertPEM, "admin", token); err != nil {
		t.Fatal(err)
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/version", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET through client-go transport: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
}

func TestWriteKubeconfig_errors(t *testing.T) {
	ca := newCA(t)
	tests := []struct {
		name, server string
		ca           []byte
		user, token  string
		wantErr      string
	}{
		{name: "http server", server: "http://127.0.0.1:6443", ca: ca.CertPEM, user: "admin", token: "t", wantErr: "want https://"},
		{name: "no host", server: "https://", ca: ca.CertPEM, user: "admin", token: "t", wantErr: "want https://"},
		{name: "bad CA", server: "https://h", ca: []byte("x"), user: "admin", token: "t", wantErr: "certificate authority"},
		{name: "no user", server: "https://h", ca: ca.CertPEM, user: "", token: "t", wantErr: "user is required"},
		{name: "no token", server: "https://h", ca: ca.CertPEM, user: "admin", token: "", wantErr: "token is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kubeconfig")
			err := WriteKubeconfig(path, tc.server, tc.ca, tc.user, tc.token)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("WriteKubeconfig error = %v, want %q", err, tc.wantErr)
			}
			if _, err := os.Stat(path); err == nil {
				t.Errorf("kubeconfig written despite the error")
			}
		})
	}
}
