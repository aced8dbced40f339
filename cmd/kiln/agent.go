package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"kiln.dev/kiln/components/apiserver/join"
	"kiln.dev/kiln/components/kubelet/containerd"
	"kiln.dev/kiln/components/kubelet/routes"
	"kiln.dev/kiln/config"
)

// Agent defaults.
const (
	defaultAgentDataDir = "/var/lib/kiln-agent"
	// agentDir holds the agent's credentials in its data dir.
	agentDir = "agent"
	// readyPoll paces the check that logs "kiln agent ready".
	readyPoll = 250 * time.Millisecond
	// joinRetryMin and joinRetryMax bound the back-off between joins
	// while no server answers.
	joinRetryMin = time.Second
	joinRetryMax = 15 * time.Second
)

// agentFlags are `kiln agent`'s flags: an agent has no config file, and
// the cluster's settings come from the server when it joins.
type agentFlags struct {
	servers     []string
	token       string
	tokenFile   string
	nodeName    string
	nodeIP      string
	dataDir     string
	bridgeName  string
	kubeletPort int
	logLevel    string
	logMaxSize  string
	logMaxFiles int
	// ingressListen and ingressTLSListen are the node's ingress
	// addresses; "" turns one off.
	ingressListen, ingressTLSListen string
}

func agentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "join a kiln server and run this machine's kubelet and proxy",
		Args:  cobra.NoArgs,
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&f.servers, "server", nil, "API server URL https://HOST:6443; repeat or comma-separate to give several (the agent fails over between them)")
	fs.StringVar(&f.token, "token", "", "join token from the server's DATA_DIR/node-token (K10<ca hash>::node:<secret>)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the join token, so that it does not show in the process list")
	fs.StringVar(&f.nodeName, "node-name", "", "this node's name (default: the lower-cased hostname)")
	fs.StringVar(&f.nodeIP, "node-ip", "", "this node's address (default: the source address of the default route)")
	fs.StringVar(&f.dataDir, "data-dir", defaultAgentDataDir, "where the agent keeps its credentials, containerd, images/ and pods/")
	fs.StringVar(&f.bridgeName, "bridge-name", containerd.DefaultBridgeName, "the pods' Linux bridge (at most 15 bytes)")
	fs.IntVar(&f.kubeletPort, "kubelet-port", config.DefaultKubeletPort, "the kubelet's HTTPS port on the node IP")
	fs.StringVar(&f.ingressListen, "ingress-listen", config.DefaultIngressListen, `where this node serves Ingresses over HTTP; "" turns it off`)
	fs.StringVar(&f.ingressTLSListen, "ingress-tls-listen", config.DefaultIngressTLSListen, `where this node serves Ingresses over HTTPS; "" turns it off`)
	fs.StringVar(&f.logLevel, "log-level", config.DefaultLogLevel, "debug, info, warn or error")
	fs.StringVar(&f.logMaxSize, "container-log-max-size", config.DefaultContainerLogMaxSize, "size at which a container's log file is rotated")
	fs.IntVar(&f.logMaxFiles, "container-log-max-files", config.DefaultContainerLogMaxFiles, "log files kept per container, the current one included")
	var cleanup bool
	fs.BoolVar(&cleanup, "cleanup-network", false, "remove kiln's iptables rules, cluster DNS link, pod bridge (--bridge-name) and routes, then exit (before an uninstall)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if cleanup {
			var l slog.Level
			if err := l.UnmarshalText([]byte(f.logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
			}
			return cleanupNetwork(cmd.Context(), f.bridgeName, newLogger(f.logLevel))
		}
		cfg, err := f.config()
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return runAgent(ctx, cfg, &f)
	}
	return cmd
}

// config turns the flags into the node part of a config.Config, which is
// what startKubelet and startProxy read; the defaults (node name and IP)
// are the server's own.
func (f *agentFlags) config() (*config.Config, error) {
	if len(f.servers) == 0 {
		return nil, errors.New("--server is required")
	}
	switch {
	case f.token != "" && f.tokenFile != "":
		return nil, errors.New("--token and --token-file: give one")
	case f.tokenFile != "":
		tok, err := readTokenFile("--token-file", f.tokenFile)
		if err != nil {
			return nil, err
		}
		f.token = tok
	case f.token == "":
		return nil, errors.New("--token or --token-file is required: the contents of the server's DATA_DIR/node-token")
	}
	if len(f.bridgeName) == 0 || len(f.bridgeName) > 15 {
		return nil, fmt.Errorf("--bridge-name %q: want 1 to 15 bytes", f.bridgeName)
	}
	if f.kubeletPort < 1 || f.kubeletPort > 65535 {
		return nil, fmt.Errorf("--kubelet-port %d: want 1-65535", f.kubeletPort)
	}
	for _, a := range []struct{ flag, addr string }{{"--ingress-listen", f.ingressListen}, {"--ingress-tls-listen", f.ingressTLSListen}} {
		if _, _, err := net.SplitHostPort(a.addr); a.addr != "" && err != nil {
			return nil, fmt.Errorf("%s %q: %w", a.flag, a.addr, err)
		}
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	cfg := &config.Config{DataDir: f.dataDir, NodeName: f.nodeName, NodeIP: f.nodeIP, KubeletPort: f.kubeletPort, LogLevel: f.logLevel,
		ContainerLogMaxSize: f.logMaxSize, ContainerLogMaxFiles: f.logMaxFiles,
		IngressListen: &f.ingressListen, IngressTLSListen: &f.ingressTLSListen}
	cfg.SetDefaults()
	if _, err := cfg.ContainerLogMaxBytes(); err != nil {
		return nil, fmt.Errorf("--container-log-max-size: %w", err)
	}
	if cfg.ContainerLogMaxFiles < 2 {
		return nil, fmt.Errorf("--container-log-max-files %d: want at least 2", cfg.ContainerLogMaxFiles)
	}
	if errs := validation.IsDNS1123Subdomain(cfg.NodeName); len(errs) > 0 {
		return nil, fmt.Errorf("--node-name %q: %s", cfg.NodeName, strings.Join(errs, "; "))
	}
	return cfg, nil
}

// runAgent joins (or reuses the credentials of an earlier join) and runs
// the kubelet with its containerd, the proxy with the cluster DNS, and the
// host-gw routes, all as the node, until ctx is done or one fails.
// Shutdown: 1. ctx is cancelled; 2. the kubelet, proxy, DNS and routes
// stop (routes stay in the kernel, so pods keep talking across an agent
// restart); 3. the agent's containerd stops last (startKubelet's order).
func runAgent(ctx context.Context, cfg *config.Config, f *agentFlags) error {
	start := time.Now()
	log := newLogger(cfg.LogLevel)
	klog.SetSlogLogger(log.With("component", "client-go"))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	creds, err := joinRetrying(ctx, join.JoinConfig{
		Servers:  f.servers,
		Token:    f.token,
		NodeName: cfg.NodeName,
		NodeIP:   cfg.NodeIP,
		Dir:      filepath.Join(cfg.DataDir, agentDir),
		Logger:   log,
	}, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	log.Info("node credentials", "node", cfg.NodeName, "nodeIP", cfg.NodeIP, "reused", creds.Reused, "servers", creds.Servers)
	// The cluster's network is the server's to say.
	for _, s := range []struct {
		to   *string
		from string
	}{
		{&cfg.ClusterCIDR, creds.ClusterCIDR}, {&cfg.ServiceCIDR, creds.ServiceCIDR}, {&cfg.ClusterDNS, creds.ClusterDNS},
	} {
		if s.from != "" {
			*s.to = s.from
		}
	}
	// client-go pings an HTTP/2 connection only after 30 s without
	// traffic and waits 15 s for the answer: a server that vanished
	// without closing its connections (a power loss, a cut link) would
	// hold the agent's watches and Lease renewals for most of the Node's
	// grace period. 5 s and 5 s make the agent fail over to another
	// server within about 10 s. client-go reads these when it builds a
	// transport, so they are set before any client exists; the user's
	// own values win.
	for _, env := range []string{"HTTP2_READ_IDLE_TIMEOUT_SECONDS", "HTTP2_PING_TIMEOUT_SECONDS"} {
		if _, set := os.LookupEnv(env); !set {
			_ = os.Setenv(env, "5")
		}
	}
	rc := creds.RESTConfig()
	rc.QPS, rc.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	rt, err := routes.New(routes.Config{Client: cs, NodeName: cfg.NodeName, Logger: log})
	if err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(runCtx)
	// A part that cannot start stops the ones already started.
	if err := startKubelet(gctx, g, cfg, rc, creds.Serving, f.bridgeName, log); err != nil {
		cancel()
		return errors.Join(err, g.Wait())
	}
	if err := startProxy(gctx, g, cfg, rc, log); err != nil {
		cancel()
		return errors.Join(err, g.Wait())
	}
	g.Go(func() error { return rt.Run(gctx) })
	g.Go(func() error {
		if waitNodeReady(gctx, cs, cfg.NodeName, start) {
			log.Info("kiln agent ready", "node", cfg.NodeName, "seconds", time.Since(start).Seconds())
			// Joining, starting containerd and syncing caches ran code
			// the steady state never runs again; let the kernel have
			// its pages back (see releaseBinaryPages).
			releaseBinaryPages()
		}
		return nil
	})
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// joinRetrying is join.Join, tried again with back-off while no server
// answers, so that agents may start before their servers (as at a power
// cut's end); any other error, such as a token for another CA, is final.
func joinRetrying(ctx context.Context, cfg join.JoinConfig, log *slog.Logger) (*join.Credentials, error) {
	wait := joinRetryMin
	for {
		creds, err := join.Join(ctx, cfg)
		if !errors.Is(err, join.ErrUnreachable) {
			return creds, err
		}
		log.Warn("no server answered; retrying", "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, joinRetryMax)
	}
}

// waitNodeReady polls until the Node is Ready and its Lease was renewed
// after since, so that the Ready a Node kept from before a restart does
// not count (true), or ctx is done (false). It uses Get, not an informer:
// it ends once ready, and the agent's memory budget has no room for a
// cache kept for one line of log.
func waitNodeReady(ctx context.Context, cs kubernetes.Interface, name string, since time.Time) bool {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		if n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err == nil && nodeReady(n) {
			l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
			if err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(since) {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
