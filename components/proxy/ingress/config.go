package ingress

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/internal/ingressclass"
)

// Defaults of Config.
const (
	// DefaultListen and DefaultTLSListen are the HTTP and HTTPS
	// addresses of a node, as Traefik's in k3s.
	DefaultListen    = "0.0.0.0:80"
	DefaultTLSListen = "0.0.0.0:443"
	// DefaultDialTimeout bounds a connection to an endpoint; an endpoint
	// that does not answer in time is a 502.
	DefaultDialTimeout = 5 * time.Second
	// DefaultShutdownGrace is how long requests in flight may finish
	// when Run stops; streams and upgraded connections still open then
	// are cut.
	DefaultShutdownGrace = 5 * time.Second
	// DefaultMinSyncPeriod folds a burst of changes (an apply of many
	// Ingresses) into one rebuild of the routes.
	DefaultMinSyncPeriod = 20 * time.Millisecond
	// DefaultListenRetry is how often Run tries again to open a listener
	// whose address another program holds.
	DefaultListenRetry = 10 * time.Second
)

// Config configures the ingress controller. The zero value of each
// optional field means its default, except the listen addresses, where
// "" means no listener (kiln.yaml's defaults are DefaultListen and
// DefaultTLSListen).
type Config struct {
	// Client reads Ingresses, IngressClasses, Services, EndpointSlices
	// and the TLS Secrets Ingresses name, and writes Ingress status.
	// Required.
	Client kubernetes.Interface
	// Informers is a shared factory to register the Ingress,
	// IngressClass, Service and EndpointSlice informers on, before it is
	// started; the caller starts it. Nil means the controller makes its
	// own and starts and stops it in Run.
	Informers informers.SharedInformerFactory
	// Listen is the HTTP address ("host:port"); "" means none unless
	// Listener is given.
	Listen string
	// TLSListen is the HTTPS address; "" means none unless TLSListener is
	// given.
	TLSListen string
	// Listener and TLSListener are already-open sockets to serve HTTP
	// and HTTPS on, instead of Listen and TLSListen; Run closes them.
	Listener, TLSListener net.Listener
	// ControllerName is the spec.controller of the IngressClasses
	// served; default ingressclass.Controller.
	ControllerName string
	// StatusIPs are this node's addresses, written into the
	// status.loadBalancer.ingress of every served Ingress beside other
	// nodes' (and taken out of the ones no longer served). Empty means
	// status is left alone.
	StatusIPs []netip.Addr
	// DialTimeout bounds a connection to an endpoint; default
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// ShutdownGrace is how long Run lets requests in flight finish when
	// ctx is done; default DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// MinSyncPeriod is the debounce of route rebuilds; default
	// DefaultMinSyncPeriod.
	MinSyncPeriod time.Duration
	// ListenRetry is how often Run tries again to open a listener whose
	// address is taken; default DefaultListenRetry.
	ListenRetry time.Duration
	// Logger receives lifecycle messages and, at Warn, Ingresses (or
	// parts of them) that cannot be served; nil means slog.Default().
	Logger *slog.Logger
}

// withDefaults fills in defaults and validates cfg.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Client == nil {
		return cfg, errors.New("ingress: Config.Client is required")
	}
	if cfg.Listen == "" && cfg.Listener == nil && cfg.TLSListen == "" && cfg.TLSListener == nil {
		return cfg, errors.New("ingress: no listener: set Config.Listen or Config.TLSListen")
	}
	for _, a := range []struct{ field, addr string }{{"Listen", cfg.Listen}, {"TLSListen", cfg.TLSListen}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return cfg, fmt.Errorf("ingress: Config.%s %q: %w", a.field, a.addr, err)
		}
	}
	if cfg.ControllerName == "" {
		cfg.ControllerName = ingressclass.Controller
	}
	for _, ip := range cfg.StatusIPs {
		if !ip.IsValid() {
			return cfg, errors.New("ingress: Config.StatusIPs holds an invalid address")
		}
	}
	for _, d := range []struct {
		field string
		v     *time.Duration
		def   time.Duration
	}{
		{"DialTimeout", &cfg.DialTimeout, DefaultDialTimeout},
		{"ShutdownGrace", &cfg.ShutdownGrace, DefaultShutdownGrace},
		{"MinSyncPeriod", &cfg.MinSyncPeriod, DefaultMinSyncPeriod},
		{"ListenRetry", &cfg.ListenRetry, DefaultListenRetry},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return cfg, fmt.Errorf("ingress: Config.%s must not be negative, not %v", d.field, *d.v)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}
