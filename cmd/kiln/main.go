// Command kiln is the appliance: one binary that runs the embedded etcd,
// the Kubernetes-compatible API server and, as they land, the controllers,
// scheduler, kubelet, proxy, GitOps sync and dashboard.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/apiserver/join"
	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/config"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/hosted"
	"kiln.dev/kiln/sources/hosted/gitserver"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	root := &cobra.Command{Use: "kiln", Short: "a GitOps cluster appliance in one binary", SilenceUsage: true}
	root.AddCommand(serverCmd(), agentCmd(), versionCmd(), statusCmd(), diffCmd())
	if err := root.Execute(); err != nil {
		os.Exit(exitCode(err))
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "kiln %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}

func serverCmd() *cobra.Command {
	var configFile string
	var cleanup bool
	cfg := &config.Config{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "run the control plane (etcd, API server) and the node components",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&configFile, "config", "", "kiln.yaml to read; flags override it")
	cmd.Flags().BoolVar(&cleanup, "cleanup-network", false, "remove kiln's iptables rules and cluster DNS link, then exit (before an uninstall)")
	flags := cfg.BindFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if configFile != "" {
			fileCfg, err := config.Load(configFile)
			if err != nil {
				return err
			}
			*cfg = *fileCfg
		}
		if err := flags.Apply(cmd.Flags(), cfg); err != nil {
			return err
		}
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		if cleanup {
			return cleanupNetwork(ctx, "", newLogger(cfg.LogLevel))
		}
		return runServer(ctx, cfg)
	}
	return cmd
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// runServer wires the components and runs them until ctx is done or one
// fails. Shutdown: 1. ctx is cancelled, 2. the API server and the webhook
// listener drain and stop, 3. the store closes its client and the embedded
// etcd.
func runServer(ctx context.Context, cfg *config.Config) error {
	log := newLogger(cfg.LogLevel)
	// client-go logs through klog (leader election, reflectors); send it
	// to the same structured log.
	klog.SetSlogLogger(log.With("component", "client-go"))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	st, err := store.New(store.Config{
		DataDir:          filepath.Join(cfg.DataDir, "etcd"),
		Endpoints:        cfg.Datastore.Endpoints,
		CAFile:           cfg.Datastore.CAFile,
		CertFile:         cfg.Datastore.CertFile,
		KeyFile:          cfg.Datastore.KeyFile,
		CompactInterval:  cfg.Datastore.CompactInterval.Duration,
		CompactMinAge:    cfg.Datastore.CompactMinAge.Duration,
		CompactRetention: cfg.Datastore.CompactRetention,
		Logger:           log.With("component", "store"),
	})
	if err != nil {
		return err
	}
	tlsDir := filepath.Join(cfg.DataDir, "tls")
	if err := shareBootstrap(ctx, cfg, st, tlsDir); err != nil {
		return err
	}
	ca, err := pki.EnsureCA(tlsDir)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(cfg.APIListen)
	if err != nil {
		return fmt.Errorf("apiListen: %w", err)
	}
	hosts := append([]string{"127.0.0.1", "localhost"}, apiServerNames...)
	if host != "" && host != "0.0.0.0" && host != "::" {
		hosts = append(hosts, host)
	} else if cfg.NodeIP != "" {
		hosts = append(hosts, cfg.NodeIP) // the kubernetes Service's endpoint
	}
	// In-cluster clients dial the kubernetes Service's ClusterIP.
	if svcIP, err := kubernetesServiceIP(cfg.ServiceCIDR); err == nil {
		hosts = append(hosts, svcIP)
	}
	if hn, err := os.Hostname(); err == nil {
		hosts = append(hosts, hn)
	}
	cert, err := ca.EnsureServing(tlsDir, "apiserver", hosts)
	if err != nil {
		return err
	}
	saKey, err := ca.ServiceAccountKey()
	if err != nil {
		return err
	}
	token, err := pki.EnsureToken(filepath.Join(tlsDir, adminTokenFile))
	if err != nil {
		return err
	}
	joinSecret, joinHandler, err := newJoinEndpoint(cfg, st, ca, tlsDir, log)
	if err != nil {
		return err
	}
	dashToken, err := readTokenFile("dashboardTokenFile", cfg.DashboardTokenFile)
	if err != nil {
		return err
	}
	// One registry: the API server's request metrics, served by the
	// dashboard's /metrics beside its own.
	metrics := prometheus.NewRegistry()
	// The hosted sources' git server shares the API port; it is set once
	// the reconciler exists.
	extra := map[string]http.Handler{join.PathPrefix: joinHandler}
	gitHandler := &lateHandler{}
	if hasHosted(cfg) {
		extra[strings.TrimSuffix(gitserver.PathPrefix, "/")] = gitHandler
	}
	tokens, err := readTokenAuthFile(cfg.TokenAuthFile)
	if err != nil {
		return err
	}
	if tokens == nil {
		tokens = map[string]apiserver.User{}
	}
	// The admin's and the join's tokens win over a line of the file.
	tokens[token] = apiserver.User{Name: "admin", UID: "admin", Groups: []string{apiserver.GroupMasters}}
	tokens[joinSecret] = bootstrapUser
	api, err := apiserver.New(apiserver.Config{
		Extra:             extra,
		Store:             st,
		Listen:            cfg.APIListen,
		TLS:               &cert,
		Tokens:            tokens,
		ClientCAs:         clientCAs(ca),
		CACertPEM:         ca.CertPEM,
		ServiceAccountKey: saKey,
		// The serviceaccount controller makes what the mount needs.
		MountServiceAccountTokens:           !cfg.Disabled(config.ComponentControllers),
		ServiceCIDR:                         cfg.ServiceCIDR,
		NodePortRange:                       cfg.NodePortRange,
		ClusterDNS:                          cfg.ClusterDNS,
		DefaultNotReadyTolerationSeconds:    cfg.DefaultNotReadyTolerationSeconds,
		DefaultUnreachableTolerationSeconds: cfg.DefaultUnreachableTolerationSeconds,
		Metrics:                             metrics,
		KubeletClient:                       newKubeletClient(ca.CertPEM, token),
		Logger:                              log,
	})
	if err != nil {
		return err
	}

	// Shutdown order: 1. ctx is cancelled and the clients of the API stop
	// (controllers release their Lease, sync and webhooks end); 2. the API
	// server drains and stops; 3. the store closes its client and etcd.
	// A failure of the store or the API server cancels everything at once.
	baseCtx, stopBase := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBase()
	apiCtx, stopAPI := context.WithCancel(baseCtx)
	defer stopAPI()
	base, baseCtx := errgroup.WithContext(baseCtx)
	g, gctx := errgroup.WithContext(ctx)
	base.Go(func() error { return st.Run(baseCtx) })
	base.Go(func() error {
		err := api.Run(apiCtx)
		stopBase() // 3. the store follows the API server
		return err
	})
	g.Go(func() error {
		// A failed store or API server stops the clients too.
		select {
		case <-baseCtx.Done():
			return errors.New("control plane stopped")
		case <-gctx.Done():
			return nil
		}
	})
	g.Go(func() error {
		select {
		case <-api.Ready():
		case <-gctx.Done():
			return nil
		}
		apiURL := "https://" + clientAddr(api.Addr())
		kubeconfig := filepath.Join(cfg.DataDir, "admin.kubeconfig")
		if err := pki.WriteKubeconfig(kubeconfig, apiURL, ca.CertPEM, "admin", token); err != nil {
			return err
		}
		log.Info("kiln ready", "api", "https://"+api.Addr(), "kubeconfig", kubeconfig)
		registerServer(gctx, g, cfg, st)
		rc := adminRESTConfig(apiURL, ca.CertPEM, token)
		if !cfg.Disabled(config.ComponentControllers) || !cfg.Disabled(config.ComponentScheduler) {
			cm, err := newControllerManager(rc, cfg, log)
			if err != nil {
				return err
			}
			g.Go(func() error { return cm.Run(gctx) })
		}
		var dash http.Handler
		if !cfg.Disabled(config.ComponentDashboard) {
			d, err := newDashboard(rc, dashToken, metrics, log.With("component", "dashboard"))
			if err != nil {
				return err
			}
			g.Go(func() error { return d.Run(gctx) })
			dash = d.Handler()
		}
		var rec *reconcile.Reconciler
		var hooks map[string]reconcile.WebhookSource
		if !cfg.Disabled(config.ComponentSync) && len(cfg.Sources) > 0 {
			var hostedSrcs []*hosted.Source
			var err error
			if rec, hooks, hostedSrcs, err = newReconciler(cfg, apiURL, ca.CertPEM, token, log); err != nil {
				return err
			}
			if len(hostedSrcs) > 0 {
				h, err := newGitHandler(hostedSrcs, rec, rc, cfg, st, log)
				if err != nil {
					return err
				}
				gitHandler.set(h)
				g.Go(func() error { h.Replicate(gctx); return nil })
				log.Info("serving hosted repositories", "url", apiURL+gitserver.PathPrefix+"<source>.git", "sources", len(hostedSrcs))
			}
		}
		if err := startHTTP(gctx, g, cfg, hooks, dash, log); err != nil {
			return err
		}
		if err := startNode(gctx, g, cfg, rc, ca, log); err != nil {
			return err
		}
		if err := startProxy(gctx, g, cfg, rc, log); err != nil {
			return err
		}
		ep := apiEndpoint(api.Addr(), cfg.NodeIP)
		if ep == "" && !cfg.Disabled(config.ComponentProxy) {
			if ep, err = serveNodeLocal(gctx, g, api, cfg.ServiceCIDR); err != nil {
				return err
			}
		}
		if err := runKubernetesEndpoints(gctx, g, rc, st, ep, log); err != nil {
			return err
		}
		// Start-up is over: what it ran need not stay resident.
		releaseBinaryPages()
		if rec == nil {
			return nil
		}
		return runLeading(gctx, rc, cfg, reconcilerLease, rec, log)
	})
	clientsErr := g.Wait()
	stopAPI() // 2.
	baseErr := base.Wait()
	if baseErr != nil {
		return baseErr
	}
	if clientsErr != nil && ctx.Err() == nil {
		return clientsErr
	}
	return nil
}

// clientAddr turns a wildcard listen address into one clients can dial.
func clientAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
