package apiserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kiln.dev/kiln/components/store"
)

// Defaults for Config's zero values.
const (
	DefaultListen        = "127.0.0.1:6443"
	DefaultServiceCIDR   = "10.43.0.0/16"
	DefaultNodePortRange = "30000-32767"
	// DefaultEventTTL is how long an Event lives, as kube-apiserver's
	// --event-ttl.
	DefaultEventTTL = time.Hour
)

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
}

// GroupMasters may do everything, as in Kubernetes.
const GroupMasters = "system:masters"

// Config configures the server. Store and TLS are required.
type Config struct {
	// Store holds the objects.
	Store *store.Store
	// Listen is the address to serve HTTPS on; ignored when Listener is set.
	Listen string
	// Listener, when set, is served instead of listening on Listen (tests
	// pass one bound to 127.0.0.1:0).
	Listener net.Listener
	// TLS is the serving certificate.
	TLS *tls.Certificate
	// Tokens maps bearer tokens to users.
	Tokens map[string]User
	// ServiceCIDR is where ClusterIPs come from; its first address is the
	// kubernetes Service.
	ServiceCIDR string
	// NodePortRange is "first-last".
	NodePortRange string
	// EventTTL bounds how long Events are kept.
	EventTTL time.Duration
	// KubeletClient reaches kubelets for pods/log; nil answers 503.
	KubeletClient *http.Client
	// Metrics, when set, gets kiln_apiserver_request_duration_seconds
	// (metrics.go); nil means no metrics.
	Metrics prometheus.Registerer
	// Logger receives lifecycle messages; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if c.NodePortRange == "" {
		c.NodePortRange = DefaultNodePortRange
	}
	if c.EventTTL == 0 {
		c.EventTTL = DefaultEventTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// portRange is an inclusive range of ports.
type portRange struct{ first, last int }

func (c *Config) validate() (netip.Prefix, portRange, error) {
	var pr portRange
	if c.Store == nil {
		return netip.Prefix{}, pr, errors.New("apiserver: store is required")
	}
	if c.TLS == nil {
		return netip.Prefix{}, pr, errors.New("apiserver: tls certificate is required")
	}
	cidr, err := netip.ParsePrefix(c.ServiceCIDR)
	if err != nil || !cidr.Addr().Is4() || cidr.Bits() > 30 {
		return netip.Prefix{}, pr, fmt.Errorf("apiserver: serviceCIDR %q: want an IPv4 CIDR of /30 or wider", c.ServiceCIDR)
	}
	first, last, ok := strings.Cut(c.NodePortRange, "-")
	pr.first, err = strconv.Atoi(first)
	if err == nil {
		pr.last, err = strconv.Atoi(last)
	}
	if !ok || err != nil || pr.first < 1 || pr.last > 65535 || pr.first > pr.last {
		return netip.Prefix{}, pr, fmt.Errorf("apiserver: nodePortRange %q: want FIRST-LAST within 1-65535", c.NodePortRange)
	}
	return cidr.Masked(), pr, nil
}
