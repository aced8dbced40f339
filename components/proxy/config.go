package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Defaults of Config.
const (
	// DefaultMinSyncPeriod is the debounce: a one-Service change is in
	// the node's rules about 30 ms plus one partial sync (~10-20 ms with
	// 1,000 Services present) after its watch event. kube-proxy's 1 s
	// minimum dates from when every sync rewrote all rules; here a sync
	// after a change rewrites only the changed Services, so a short
	// window is cheap and still folds a burst (an apply of many
	// objects) into one sync.
	DefaultMinSyncPeriod = 30 * time.Millisecond
	// DefaultSyncPeriod is how often every rule is rewritten, repairing
	// whatever changed them behind the proxy's back (kube-proxy's
	// --iptables-sync-period).
	DefaultSyncPeriod = 30 * time.Second
)

const (
	// retryMin and retryMax bound the backoff of a failed sync.
	retryMin = 500 * time.Millisecond
	retryMax = 30 * time.Second
)

// Config configures the proxy. The zero value of each optional field means
// its default.
type Config struct {
	// Client reads Services and EndpointSlices. Required.
	Client kubernetes.Interface
	// Informers is a shared factory to register the Service and
	// EndpointSlice informers on; the caller starts it. Nil means the
	// proxy makes its own from Client and starts and stops it in Run.
	Informers informers.SharedInformerFactory
	// Rules writes the rules. Required: proxy/iptables on a node,
	// proxy/fakerules in tests.
	Rules Rules
	// NodeName is this node's name: endpoints whose nodeName matches are
	// local, for the Local traffic policies. Required.
	NodeName string
	// NodeIPs are the node's addresses, where NodePorts answer (and on
	// 127.0.0.1). Empty means every local address of the node.
	NodeIPs []netip.Addr
	// ClusterCIDR is the pod network; traffic to a ClusterIP from outside
	// it is masqueraded. The zero Prefix turns that off.
	ClusterCIDR netip.Prefix
	// ClusterDNS is the cluster DNS address, served on the node itself
	// (proxy/dns). A Service with that ClusterIP (a kube-dns Service for
	// kubectl to show) gets no rules, so nothing redirects or rejects
	// the queries. The zero Addr means none.
	ClusterDNS netip.Addr
	// MinSyncPeriod is the debounce: a sync starts this long after the
	// first change that follows the previous sync, and changes within
	// that window are one sync. Default DefaultMinSyncPeriod.
	MinSyncPeriod time.Duration
	// SyncPeriod is the period of full resyncs; default DefaultSyncPeriod.
	SyncPeriod time.Duration
	// Logger receives lifecycle and sync messages; nil means
	// slog.Default().
	Logger *slog.Logger
}

// withDefaults fills in defaults and validates cfg.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Client == nil {
		return cfg, errors.New("proxy: Config.Client is required")
	}
	if cfg.Rules == nil {
		return cfg, errors.New("proxy: Config.Rules is required")
	}
	if cfg.NodeName == "" {
		return cfg, errors.New("proxy: Config.NodeName is required")
	}
	for _, ip := range cfg.NodeIPs {
		if !ip.Is4() {
			return cfg, fmt.Errorf("proxy: Config.NodeIPs: %v is not an IPv4 address", ip)
		}
	}
	if cfg.ClusterCIDR.IsValid() && !cfg.ClusterCIDR.Addr().Is4() {
		return cfg, fmt.Errorf("proxy: Config.ClusterCIDR: %v is not an IPv4 prefix", cfg.ClusterCIDR)
	}
	cfg.ClusterCIDR = cfg.ClusterCIDR.Masked()
	if cfg.MinSyncPeriod == 0 {
		cfg.MinSyncPeriod = DefaultMinSyncPeriod
	}
	if cfg.MinSyncPeriod < 0 {
		return cfg, fmt.Errorf("proxy: Config.MinSyncPeriod must not be negative, not %v", cfg.MinSyncPeriod)
	}
	if cfg.SyncPeriod == 0 {
		cfg.SyncPeriod = DefaultSyncPeriod
	}
	if cfg.SyncPeriod < 0 {
		return cfg, fmt.Errorf("proxy: Config.SyncPeriod must not be negative, not %v", cfg.SyncPeriod)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}
