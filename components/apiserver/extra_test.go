package apiserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/components/testenv"
)

// TestServer_extra_authenticatesAndHandsOver: a Config.Extra handler is
// served on the API port under its prefix, reached only with a valid
// bearer token, and sees the user; authorization is its own (a user the
// API forbids still reaches it). Without a token the answer is 401 with
// the challenge git needs.
func TestServer_extra_authenticatesAndHandsOver(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := apiserver.UserFrom(r.Context())
		fmt.Fprintf(w, "%s %s user=%s groups=%v ok=%v", r.Method, r.URL.Path, u.Name, u.Groups, ok)
	})
	env := testenv.Start(t, testenv.Options{
		Extra:       map[string]http.Handler{"/git/": echo},
		ExtraTokens: map[string]apiserver.User{"dev-token": {Name: "dev", Groups: []string{"developers"}}},
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.CAPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	t.Cleanup(hc.CloseIdleConnections)
	get := func(t *testing.T, method, path, token string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, env.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(token, "basic:"):
			req.SetBasicAuth("kiln", strings.TrimPrefix(token, "basic:"))
		case token != "":
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}

	for _, tc := range []struct {
		name, method, path, token string
		code                      int
		body                      string
	}{
		{name: "admin, under the prefix", method: "GET", path: "/git/demo.git/info/refs?service=git-upload-pack", token: env.Token,
			code: 200, body: "GET /git/demo.git/info/refs user=admin groups=[system:masters] ok=true"},
		{name: "the prefix itself", method: "POST", path: "/git", token: env.Token, code: 200, body: "POST /git user=admin"},
		{name: "a user the API forbids", method: "GET", path: "/git/x", token: "dev-token", code: 200, body: "user=dev groups=[developers]"},
		{name: "the token as a basic password", method: "GET", path: "/git/x", token: "basic:dev-token", code: 200, body: "user=dev groups=[developers]"},
		{name: "a bad basic password", method: "GET", path: "/git/x", token: "basic:nope", code: 401, body: "Unauthorized"},
		{name: "basic is for the extra handlers only", method: "GET", path: "/api/v1/pods", token: "basic:" + env.Token, code: 401},
		{name: "no token", method: "GET", path: "/git/demo.git/info/refs", code: 401, body: "Unauthorized"},
		{name: "bad token", method: "GET", path: "/git/", token: "nope", code: 401, body: "Unauthorized"},
		{name: "a longer name is not the prefix", method: "GET", path: "/gitx", token: env.Token, code: 404},
		{name: "the API forbids the user", method: "GET", path: "/api/v1/pods", token: "dev-token", code: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, tc.method, tc.path, tc.token)
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.body) {
				t.Fatalf("%s %s: %d %q, want %d containing %q", tc.method, tc.path, resp.StatusCode, body, tc.code, tc.body)
			}
			if tc.code == 401 && !strings.HasPrefix(tc.path, "/api/") {
				if got := strings.Join(resp.Header.Values("WWW-Authenticate"), ", "); !strings.Contains(got, "Basic") || !strings.Contains(got, "Bearer") {
					t.Errorf("WWW-Authenticate %q, want Basic and Bearer challenges", got)
				}
			}
		})
	}
}

// TestNew_badConfig: New names the field that is wrong.
func TestNew_badConfig(t *testing.T) {
	dir := t.TempDir()
	st, err := store.New(store.Config{DataDir: filepath.Join(dir, "etcd")})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.EnsureCA(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.EnsureServing(filepath.Join(dir, "tls"), "serving", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	h := http.NotFoundHandler()
	for _, tc := range []struct {
		name string
		cfg  apiserver.Config
		want string
	}{
		{"clusterDNS outside serviceCIDR", apiserver.Config{ClusterDNS: "10.44.0.10"}, `clusterDNS "10.44.0.10"`},
		{"clusterDNS is the kubernetes Service", apiserver.Config{ClusterDNS: "10.43.0.1"}, `clusterDNS "10.43.0.1"`},
		{"clusterDNS not an address", apiserver.Config{ClusterDNS: "dns"}, `clusterDNS "dns"`},
		{"extra without a slash", apiserver.Config{Extra: map[string]http.Handler{"git": h}}, `extra "git"`},
		{"extra at the root", apiserver.Config{Extra: map[string]http.Handler{"/": h}}, `extra "/"`},
		{"extra under /api", apiserver.Config{Extra: map[string]http.Handler{"/api/git": h}}, `extra "/api/git": /api is the API's`},
		{"extra at /apis", apiserver.Config{Extra: map[string]http.Handler{"/apis/": h}}, `extra "/apis/": /apis is the API's`},
		{"extra at /healthz", apiserver.Config{Extra: map[string]http.Handler{"/healthz": h}}, `/healthz is the API's`},
		{"extra given twice", apiserver.Config{Extra: map[string]http.Handler{"/git": h, "/git/": h}}, "prefix given twice"},
		{"extra without a handler", apiserver.Config{Extra: map[string]http.Handler{"/git": nil}}, `extra "/git"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Store, tc.cfg.TLS = st, &cert
			_, err := apiserver.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := apiserver.New(apiserver.Config{Store: st, TLS: &cert, ClusterDNS: "10.43.0.10", Extra: map[string]http.Handler{"/git": h, "/apix": h}}); err != nil {
		t.Errorf("New with a good ClusterDNS and Extra: %v", err)
	}
	if _, ok := apiserver.UserFrom(t.Context()); ok {
		t.Error("UserFrom on a context without a user: ok")
	}
}

// TestServer_Serve_secondListener: Serve answers on another address with
// the same certificate, handler and authentication, and stops with its
// context while the main listener goes on.
func TestServer_Serve_secondListener(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- env.Server.Serve(ctx, ln) }()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.CAPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}}
	t.Cleanup(hc.CloseIdleConnections)
	status := func(url, token string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	second := "https://" + ln.Addr().String()
	if got := status(second+"/api/v1/namespaces/default", env.Token); got != http.StatusOK {
		t.Fatalf("GET a namespace on the second listener: %d, want 200", got)
	}
	if got := status(second+"/api/v1/namespaces/default", ""); got != http.StatusUnauthorized {
		t.Fatalf("GET without a token on the second listener: %d, want 401", got)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v on a clean stop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	hc.CloseIdleConnections()
	if got := status(second+"/version", ""); got != 0 {
		t.Errorf("second listener still answers (%d) after its stop", got)
	}
	if got := status(env.URL+"/api/v1/namespaces/default", env.Token); got != http.StatusOK {
		t.Errorf("main listener after the second's stop: %d, want 200", got)
	}
}
