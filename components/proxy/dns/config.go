package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	mdns "github.com/miekg/dns"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Defaults of Config.
const (
	// DefaultDomain is the cluster domain, as in Kubernetes.
	DefaultDomain = "cluster.local"
	// DefaultListen is the cluster DNS address of kiln (DESIGN.md).
	DefaultListen = "10.43.0.10:53"
	// DefaultResolvConf is where the host's upstream resolvers are read.
	DefaultResolvConf = "/etc/resolv.conf"
	// DefaultTTL is the TTL of cluster answers, CoreDNS's kubernetes
	// plugin's default: short, so a changed Service is seen soon.
	DefaultTTL = 5
	// DefaultUpstreamTimeout bounds one exchange with one upstream.
	DefaultUpstreamTimeout = 2 * time.Second
)

// Config configures the DNS server. The zero value of each optional field
// means its default.
type Config struct {
	// Client reads Services and EndpointSlices. Required.
	Client kubernetes.Interface
	// Informers is a shared factory to register the Service and
	// EndpointSlice informers (and their indexes) on, before it is
	// started; the caller starts it. Nil means the server makes its own
	// and starts and stops it in Run.
	Informers informers.SharedInformerFactory
	// Domain is the cluster domain; default DefaultDomain.
	Domain string
	// Listen are the addresses served, each on UDP and TCP; default
	// DefaultListen unless PacketConns or Listeners are given.
	Listen []string
	// PacketConns and Listeners are already-open sockets to serve as
	// well (UDP and TCP); Run closes them when it returns. A socket keeps
	// the network namespace it was opened in.
	PacketConns []net.PacketConn
	Listeners   []net.Listener
	// Upstreams are the resolvers ("host:port") that names outside Domain
	// are forwarded to, tried in order; default the nameservers of
	// ResolvConf. Addresses the server itself listens on are dropped, so
	// a host that points its resolv.conf at the cluster DNS does not
	// loop.
	Upstreams []string
	// ResolvConf is read for Upstreams when they are not given; default
	// DefaultResolvConf.
	ResolvConf string
	// TTL of cluster answers in seconds; default DefaultTTL.
	TTL uint32
	// UpstreamTimeout bounds one exchange with one upstream; default
	// DefaultUpstreamTimeout.
	UpstreamTimeout time.Duration
	// Logger receives lifecycle messages and, at Debug, failed
	// forwards; nil means slog.Default().
	Logger *slog.Logger
}

// withDefaults fills in defaults and validates cfg.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Client == nil {
		return cfg, errors.New("dns: Config.Client is required")
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	cfg.Domain = mdns.CanonicalName(cfg.Domain)
	if _, ok := mdns.IsDomainName(cfg.Domain); !ok || cfg.Domain == "." {
		return cfg, fmt.Errorf("dns: Config.Domain %q is not a domain name", cfg.Domain)
	}
	if len(cfg.Listen) == 0 && len(cfg.PacketConns) == 0 && len(cfg.Listeners) == 0 {
		cfg.Listen = []string{DefaultListen}
	}
	for _, a := range cfg.Listen {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return cfg, fmt.Errorf("dns: Config.Listen %q: %w", a, err)
		}
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = DefaultResolvConf
	}
	if len(cfg.Upstreams) == 0 {
		// A host without resolv.conf still gets cluster names; other
		// names fail with SERVFAIL.
		if rc, err := mdns.ClientConfigFromFile(cfg.ResolvConf); err == nil {
			for _, s := range rc.Servers {
				cfg.Upstreams = append(cfg.Upstreams, net.JoinHostPort(s, rc.Port))
			}
		}
	}
	for _, u := range cfg.Upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return cfg, fmt.Errorf("dns: Config.Upstreams %q: %w", u, err)
		}
	}
	cfg.Upstreams = withoutSelf(cfg.Upstreams, cfg.Listen, cfg.PacketConns, cfg.Listeners)
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if cfg.UpstreamTimeout < 0 {
		return cfg, fmt.Errorf("dns: Config.UpstreamTimeout must not be negative, not %v", cfg.UpstreamTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// withoutSelf drops upstreams that are one of the server's own addresses.
func withoutSelf(ups, listen []string, pcs []net.PacketConn, lns []net.Listener) []string {
	self := map[string]bool{}
	for _, a := range listen {
		self[a] = true
	}
	for _, pc := range pcs {
		self[pc.LocalAddr().String()] = true
	}
	for _, ln := range lns {
		self[ln.Addr().String()] = true
	}
	var out []string
	for _, u := range ups {
		if !self[u] {
			out = append(out, u)
		}
	}
	return out
}
