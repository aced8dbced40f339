// Package testenv starts a real kiln control plane for tests: an embedded
// etcd on a random loopback port and the API server over HTTPS on
// 127.0.0.1:0, with an admin token and kubeconfig, all stopped at cleanup.
// Tests of the apiserver, controllers, scheduler and reconcile share it, as
// controller-runtime's envtest is shared.
//
//	env := testenv.Start(t, testenv.Options{})
//	pods, err := env.Clientset.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{})
package testenv

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/store"
)

// Options tune the environment; the zero value is the default.
type Options struct {
	// DataDir is reused when set (restart tests); else a temp dir.
	DataDir string
	// Store tunes the store (compaction); DataDir is filled in.
	Store store.Config
	// ExtraTokens adds users besides the admin.
	ExtraTokens map[string]apiserver.User
	// KubeletClient is passed to the API server to reach kubelets for
	// pods/log. It must send a token the kubelets accept and trust their
	// serving certificates; create the CA (pki.EnsureCA(DataDir/tls)) and
	// admin token (pki.EnsureToken(DataDir/admin.token)) first to build it.
	KubeletClient *http.Client
	// ClusterDNS is passed to the API server, which then creates
	// kube-system/kube-dns at it; "" (the default) means none, so that
	// tests may use 10.43.0.10 for a Service of their own.
	ClusterDNS string
	// MountServiceAccountTokens is passed to the API server: new pods
	// get the kube-api-access volume.
	MountServiceAccountTokens bool
	// ServiceCIDR and NodePortRange are passed to the API server; ""
	// means its defaults (10.43.0.0/16, 30000-32767).
	ServiceCIDR, NodePortRange string
	// Extra is passed to the API server: handlers served on its port
	// behind its bearer-token authentication (apiserver.Config.Extra).
	Extra map[string]http.Handler
	// DefaultNotReadyTolerationSeconds and
	// DefaultUnreachableTolerationSeconds are passed to the API server;
	// zero means its default (300).
	DefaultNotReadyTolerationSeconds, DefaultUnreachableTolerationSeconds int64
}

// Env is a running control plane.
type Env struct {
	DataDir    string
	URL        string
	Token      string
	Kubeconfig string
	CAPEM      []byte
	// CA is the cluster CA, which also signs client certificates the
	// server accepts.
	CA     *pki.CA
	Store  *store.Store
	Server *apiserver.Server
	// RESTConfig is the admin's config, with JSON bodies; clear
	// ContentType to get client-go's default (protobuf bodies).
	RESTConfig *rest.Config
	Clientset  kubernetes.Interface
	stop       func()
}

// Stop stops the server and the store (also done at cleanup).
func (e *Env) Stop() { e.stop() }

// Start runs a store and an API server until the test ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	dir := opts.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	scfg := opts.Store
	scfg.DataDir = filepath.Join(dir, "etcd")
	scfg.Logger = log
	st, err := store.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.EnsureCA(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	// "kubernetes" is the name joined agents verify every server by.
	cert, err := ca.EnsureServing(filepath.Join(dir, "tls"), "serving", []string{"127.0.0.1", "localhost", "kubernetes"})
	if err != nil {
		t.Fatal(err)
	}
	saKey, err := ca.ServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	token, err := pki.EnsureToken(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]apiserver.User{token: {Name: "admin", Groups: []string{apiserver.GroupMasters}}}
	for k, v := range opts.ExtraTokens {
		tokens[k] = v
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Client certificates from the CA authenticate, as on a real server,
	// so tests can act as a node (CA.IssueClient("system:node:a", ...)).
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.Cert)
	srv, err := apiserver.New(apiserver.Config{Store: st, Listener: ln, TLS: &cert, Tokens: tokens, KubeletClient: opts.KubeletClient,
		ClientCAs: clientCAs, CACertPEM: ca.CertPEM, ServiceAccountKey: saKey, MountServiceAccountTokens: opts.MountServiceAccountTokens,
		ClusterDNS: opts.ClusterDNS, ServiceCIDR: opts.ServiceCIDR, NodePortRange: opts.NodePortRange, Extra: opts.Extra,
		DefaultNotReadyTolerationSeconds:    opts.DefaultNotReadyTolerationSeconds,
		DefaultUnreachableTolerationSeconds: opts.DefaultUnreachableTolerationSeconds,
		Logger:                              log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	storeDone, srvDone := make(chan error, 1), make(chan error, 1)
	go func() { storeDone <- st.Run(ctx) }()
	go func() { srvDone <- srv.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-srvDone; err != nil {
			t.Errorf("apiserver: %v", err)
		}
		if err := <-storeDone; err != nil {
			t.Errorf("store: %v", err)
		}
	}
	t.Cleanup(stop)
	select {
	case <-srv.Ready():
	case err := <-storeDone:
		t.Fatalf("store stopped: %v", err)
	case err := <-srvDone:
		t.Fatalf("apiserver stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("apiserver not ready in 60s")
	}
	url := "https://" + ln.Addr().String()
	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	if err := pki.WriteKubeconfig(kubeconfig, url, ca.CertPEM, "admin", token); err != nil {
		t.Fatal(err)
	}
	rc := &rest.Config{
		Host: url, BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca.CertPEM},
		QPS:             1000, Burst: 1000,
	}
	rc.ContentType = "application/json"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &Env{DataDir: dir, URL: url, Token: token, Kubeconfig: kubeconfig, CAPEM: ca.CertPEM, CA: ca,
		Store: st, Server: srv, RESTConfig: rc, Clientset: cs, stop: stop}
}
