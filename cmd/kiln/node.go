package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/kubelet/containerd"
	"kiln.dev/kiln/config"
)

// Timeouts of the API server's connections to kubelets. There is no
// overall timeout: `kubectl logs -f` streams for as long as it likes.
const (
	kubeletDialTimeout      = 10 * time.Second
	kubeletHandshakeTimeout = 10 * time.Second
)

// newKubeletClient is how the API server reaches kubelets for pods/log
// (apiserver.Config.KubeletClient): it trusts only the kiln CA, which
// signs every kubelet's serving certificate, and sends the admin token,
// which kubelets check with a TokenReview and a SubjectAccessReview.
func newKubeletClient(caPEM []byte, token string) *http.Client {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return &http.Client{Transport: &bearerTransport{token: token, next: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: kubeletDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: kubeletHandshakeTimeout,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		// Kubelets are reached directly, never through a proxy.
		Proxy: nil,
	}}}
}

// bearerTransport adds a bearer token to every request.
type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// startNode starts this machine's node components in g, unless the
// kubelet is disabled: the kubelet serves with a certificate from ca, and
// everything else is startKubelet's.
func startNode(ctx context.Context, g *errgroup.Group, cfg *config.Config, rc *rest.Config, ca *pki.CA, log *slog.Logger) error {
	if cfg.Disabled(config.ComponentKubelet) {
		return nil
	}
	hosts := []string{cfg.NodeIP, "127.0.0.1"}
	if hn, err := os.Hostname(); err == nil && hn != "" {
		hosts = append(hosts, hn)
	}
	cert, err := ca.EnsureServing(filepath.Join(cfg.DataDir, "tls"), "kubelet", hosts)
	if err != nil {
		return fmt.Errorf("kubelet certificate: %w", err)
	}
	return startKubelet(ctx, g, cfg, rc, cert, "", log)
}

// startKubelet starts the containerd runtime (its own containerd under
// DATA_DIR/containerd, or cfg.ContainerRuntimeEndpoint; pods on the
// bridge bridgeName, "" meaning containerd.DefaultBridgeName) and, once
// the runtime is ready, the kubelet, which reaches the API server at rc
// and serves logs with cert. The server passes its own CA's certificate
// and the admin's rc; an agent passes what it got when joining. It
// returns once both are started. ctx must be g's context, so that a
// runtime that fails stops the kubelet too.
//
// Shutdown, when ctx is done: 1. the kubelet stops (its pod workers
// finish their current step); 2. then, and only then, the runtime stops
// the containerd it started. The containers keep running, as with k3s,
// and the next start adopts them.
func startKubelet(ctx context.Context, g *errgroup.Group, cfg *config.Config, rc *rest.Config, cert tls.Certificate, bridgeName string, log *slog.Logger) error {
	logMax, err := cfg.ContainerLogMaxBytes()
	if err != nil {
		return fmt.Errorf("containerLogMaxSize: %w", err)
	}
	rt, err := containerd.New(containerd.Config{
		LogMaxSize:  logMax,
		LogMaxFiles: cfg.ContainerLogMaxFiles,
		RootDir:     cfg.DataDir,
		Endpoint:    cfg.ContainerRuntimeEndpoint,
		Namespace:   cfg.NodeName,
		ImagesDir:   filepath.Join(cfg.DataDir, "images"),
		NodeIP:      cfg.NodeIP,
		BridgeName:  bridgeName,
		ClusterCIDR: cfg.ClusterCIDR,
		Logger:      log,
	})
	if err != nil {
		return fmt.Errorf("container runtime: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubelet client: %w", err)
	}
	k, err := kubelet.New(kubelet.Config{
		Client:     cs,
		NodeName:   cfg.NodeName,
		Runtime:    rt,
		RootDir:    cfg.DataDir,
		NodeIP:     cfg.NodeIP,
		ClusterDNS: cfg.ClusterDNS,
		ServerAddr: net.JoinHostPort(cfg.NodeIP, strconv.Itoa(cfg.KubeletPort)),
		TLS:        &cert,
		Logger:     log,
	})
	if err != nil {
		return err
	}

	// The runtime has a context of its own, cancelled only once the
	// kubelet has returned, so that no pod worker meets a containerd that
	// is going away (step 2 above).
	rtCtx, stopRuntime := context.WithCancel(context.WithoutCancel(ctx))
	rtDone := make(chan struct{})
	g.Go(func() error {
		defer close(rtDone)
		if err := rt.Run(rtCtx); err != nil {
			return fmt.Errorf("container runtime: %w", err)
		}
		if rtCtx.Err() == nil {
			return errors.New("container runtime stopped")
		}
		return nil
	})
	g.Go(func() error {
		defer stopRuntime()
		select {
		case <-rt.Ready():
		case <-rtDone: // its error is the group's
			return nil
		case <-ctx.Done():
			return nil
		}
		return k.Run(ctx)
	})
	return nil
}
