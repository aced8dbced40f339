package apiserver

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
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
	// DefaultTolerationSeconds is kube's default for how long a pod stays
	// on a not-ready or unreachable node before eviction.
	DefaultTolerationSeconds = 300
	// DefaultServiceAccountIssuer is kube-apiserver's usual
	// --service-account-issuer.
	DefaultServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
)

// User is an authenticated identity.
type User struct {
	Name   string
	UID    string
	Groups []string
}

// GroupMasters may do everything, as in Kubernetes.
const GroupMasters = "system:masters"

// GroupNodes holds the kubelets' users, each named NodeUserPrefix+<node>;
// the node authorizer (nodeauthz.go) limits them to their own node's
// objects, as Kubernetes's Node authorizer and NodeRestriction do.
const GroupNodes = "system:nodes"

// NodeUserPrefix starts the user name of a node's credentials.
const NodeUserPrefix = "system:node:"

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
	// ClientCAs, when set, makes the server ask for client certificates
	// and accept those that chain to these roots (for client auth) as the
	// User{Name: subject CN, Groups: subject O}, as kube-apiserver's
	// --client-ca-file does. A bearer token, when valid, wins. A
	// certificate from other roots is answered 401, not a failed
	// handshake: the server only requests certificates
	// (tls.RequestClientCert) and verifies them itself, as kube does, so
	// the client learns why.
	ClientCAs *x509.CertPool
	// ServiceAccountKey, when set, signs the service account tokens of
	// TokenRequest (serviceaccounts/token, `kubectl create token`), and
	// bearer tokens it signed authenticate as their service account
	// (satoken.go). Nil answers TokenRequest 405.
	ServiceAccountKey *ecdsa.PrivateKey
	// MountServiceAccountTokens, with ServiceAccountKey, gives every new
	// pod its service account's token, the cluster CA (the ConfigMap
	// kube-root-ca.crt) and its namespace in
	// /var/run/secrets/kubernetes.io/serviceaccount, as kube's
	// ServiceAccount admission does, unless the pod or its service
	// account sets automountServiceAccountToken: false. Something must
	// create those ConfigMaps and the default ServiceAccounts (the
	// serviceaccount controller), or such pods wait for them.
	MountServiceAccountTokens bool
	// ServiceAccountIssuer is the iss of those tokens, and the audience
	// the API accepts them for; "" means DefaultServiceAccountIssuer.
	ServiceAccountIssuer string
	// CACertPEM is served at GET /cacerts without authentication, so that
	// a joining agent can fetch the CA and check it against the hash in
	// its token (as k3s's /cacerts); nil answers 404.
	CACertPEM []byte
	// ServiceCIDR is where ClusterIPs come from; its first address is the
	// kubernetes Service.
	ServiceCIDR string
	// NodePortRange is "first-last".
	NodePortRange string
	// ClusterDNS is the cluster DNS address, inside ServiceCIDR; "" means
	// none. The server creates the Service kube-system/kube-dns at it, as
	// k3s does, so that no other Service is given that address; it never
	// picks it for a Service either. The proxy serves DNS there itself
	// and writes no rules for the Service.
	ClusterDNS string
	// EventTTL bounds how long Events are kept.
	EventTTL time.Duration
	// DefaultNotReadyTolerationSeconds and DefaultUnreachableTolerationSeconds
	// are the tolerationSeconds every new pod gets for the not-ready and
	// unreachable NoExecute taints unless it tolerates them itself (kube's
	// DefaultTolerationSeconds admission); zero means
	// DefaultTolerationSeconds.
	DefaultNotReadyTolerationSeconds    int64
	DefaultUnreachableTolerationSeconds int64
	// KubeletClient reaches kubelets for pods/log; nil answers 503.
	KubeletClient *http.Client
	// Metrics, when set, gets kiln_apiserver_request_duration_seconds
	// (metrics.go); nil means no metrics.
	Metrics prometheus.Registerer
	// Extra serves other handlers on the API port, keyed by path prefix
	// ("/git": /git and everything under it). They get the request as
	// sent, with the authenticated User in its context (UserFrom); a
	// request without a valid bearer token or client certificate is
	// answered 401 with WWW-Authenticate: Bearer before it reaches them.
	// Authorization is theirs to decide. A prefix may not overlap the
	// API's own paths (/api, /apis, /openapi, /version, /healthz, /livez,
	// /readyz, /cacerts).
	Extra map[string]http.Handler
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
	if c.ServiceAccountIssuer == "" {
		c.ServiceAccountIssuer = DefaultServiceAccountIssuer
	}
	if c.EventTTL == 0 {
		c.EventTTL = DefaultEventTTL
	}
	if c.DefaultNotReadyTolerationSeconds == 0 {
		c.DefaultNotReadyTolerationSeconds = DefaultTolerationSeconds
	}
	if c.DefaultUnreachableTolerationSeconds == 0 {
		c.DefaultUnreachableTolerationSeconds = DefaultTolerationSeconds
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// portRange is an inclusive range of ports.
type portRange struct{ first, last int }

// parsedConfig is what validate derives from the Config's strings.
type parsedConfig struct {
	serviceCIDR netip.Prefix
	nodePorts   portRange
	// clusterDNS is the zero Addr when there is none.
	clusterDNS netip.Addr
	// extra maps each normalized prefix (no trailing slash) to its handler.
	extra map[string]http.Handler
}

// reservedPaths are the API's own path roots, which Extra may not take.
var reservedPaths = []string{"/api", "/apis", "/openapi", "/version", "/healthz", "/livez", "/readyz", "/cacerts"}

func (c *Config) validate() (parsedConfig, error) {
	var p parsedConfig
	if c.Store == nil {
		return p, errors.New("apiserver: store is required")
	}
	if c.TLS == nil {
		return p, errors.New("apiserver: tls certificate is required")
	}
	cidr, err := netip.ParsePrefix(c.ServiceCIDR)
	if err != nil || !cidr.Addr().Is4() || cidr.Bits() > 30 {
		return p, fmt.Errorf("apiserver: serviceCIDR %q: want an IPv4 CIDR of /30 or wider", c.ServiceCIDR)
	}
	p.serviceCIDR = cidr.Masked()
	first, last, ok := strings.Cut(c.NodePortRange, "-")
	p.nodePorts.first, err = strconv.Atoi(first)
	if err == nil {
		p.nodePorts.last, err = strconv.Atoi(last)
	}
	if !ok || err != nil || p.nodePorts.first < 1 || p.nodePorts.last > 65535 || p.nodePorts.first > p.nodePorts.last {
		return p, fmt.Errorf("apiserver: nodePortRange %q: want FIRST-LAST within 1-65535", c.NodePortRange)
	}
	if c.ClusterDNS != "" {
		p.clusterDNS, err = netip.ParseAddr(c.ClusterDNS)
		if err != nil || !p.serviceCIDR.Contains(p.clusterDNS) || p.clusterDNS == p.serviceCIDR.Addr() ||
			p.clusterDNS == p.serviceCIDR.Addr().Next() || p.clusterDNS == lastAddr(p.serviceCIDR) {
			return p, fmt.Errorf("apiserver: clusterDNS %q: want an address of serviceCIDR %s other than its network, first and broadcast addresses", c.ClusterDNS, p.serviceCIDR)
		}
	}
	p.extra = make(map[string]http.Handler, len(c.Extra))
	for prefix, h := range c.Extra {
		norm := strings.TrimRight(prefix, "/")
		if !strings.HasPrefix(prefix, "/") || norm == "" || strings.ContainsAny(prefix, " {}") || h == nil {
			return p, fmt.Errorf("apiserver: extra %q: want a path prefix like /git and a handler", prefix)
		}
		for _, r := range reservedPaths {
			if norm == r || strings.HasPrefix(norm, r+"/") {
				return p, fmt.Errorf("apiserver: extra %q: %s is the API's", prefix, r)
			}
		}
		if _, dup := p.extra[norm]; dup {
			return p, fmt.Errorf("apiserver: extra %q: prefix given twice", prefix)
		}
		p.extra[norm] = h
	}
	return p, nil
}
