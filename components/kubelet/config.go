package kubelet

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/internal/localpath"
	"kiln.dev/kiln/components/kubelet/runtime"
)

// Defaults for Config's zero values.
const (
	// DefaultClusterDNS is the cluster DNS Service's address (DESIGN.md).
	DefaultClusterDNS    = "10.43.0.10"
	DefaultClusterDomain = "cluster.local"
	// DefaultPort is the kubelet's HTTPS port, as in Kubernetes.
	DefaultPort = 10250
	// DefaultBackoffBase and DefaultBackoffMax bound the crash and image
	// pull back-off: 10 s doubling to 5 min, reset after 10 min (twice the
	// maximum) without a failure, as the kubelet's.
	DefaultBackoffBase = 10 * time.Second
	DefaultBackoffMax  = 5 * time.Minute
	// DefaultLeaseDuration is the Node Lease's leaseDurationSeconds; the
	// Lease is renewed every quarter of it (10 s), as the kubelet does.
	DefaultLeaseDuration = 40 * time.Second
	// DefaultStatusPeriod is how often the Node's status is computed (the
	// kubelet's nodeStatusUpdateFrequency); it is written when it changed
	// or DefaultStatusReportPeriod passed.
	DefaultStatusPeriod       = 10 * time.Second
	DefaultStatusReportPeriod = 5 * time.Minute
	// DefaultRelistPeriod is how often the runtime is listed to notice
	// containers that exited (the kubelet's PLEG relist period).
	DefaultRelistPeriod = time.Second
	// DefaultResyncPeriod is how often every pod is synced even when
	// nothing happened: ConfigMap and Secret volumes are refreshed then.
	DefaultResyncPeriod = time.Minute
	// DefaultMaxPods is the Node's pods capacity.
	DefaultMaxPods = 110
	// DefaultKubeletVersion matches the version the API server reports.
	DefaultKubeletVersion = "v1.32.0+kiln"
	// DefaultResolvConf and DefaultHostsFile are the host's files that
	// dnsPolicy Default and host-network pods get.
	DefaultResolvConf = "/etc/resolv.conf"
	DefaultHostsFile  = "/etc/hosts"
)

// Config configures a Kubelet. Client, NodeName, Runtime, RootDir and TLS
// are required.
type Config struct {
	// Client reaches the API server: the Node, its Lease, the Pods bound
	// to it, their ConfigMaps, Secrets and Services, Events, and
	// TokenReviews for the log server. Required.
	Client kubernetes.Interface
	// NodeName is the Node this kubelet registers and serves. Required.
	NodeName string
	// Runtime runs the sandboxes and containers. Required.
	Runtime runtime.Runtime
	// RootDir holds each pod's files under pods/<uid>/ (logs, volumes,
	// etc-hosts, resolv.conf): the data dir. Required.
	RootDir string
	// StorageDir holds the local-path PersistentVolumes provisioned on
	// this node, one directory each; the kubelet publishes it on its Node
	// (annotation kiln.dev/local-path-dir) for the provisioner, and
	// removes a volume's directory when the volume is deleted. Empty
	// means RootDir/storage.
	StorageDir string
	// NodeIP is the Node's InternalIP and every pod's hostIP; empty means
	// the address of the interface of the default route, else 127.0.0.1.
	NodeIP string
	// ClusterDNS and ClusterDomain go into pods' resolv.conf; defaults
	// DefaultClusterDNS and DefaultClusterDomain.
	ClusterDNS    string
	ClusterDomain string
	// ServerAddr is where the HTTPS log server listens; port 0 picks a
	// free one (the Node's daemonEndpoints say which). Empty means
	// NodeIP:DefaultPort. Ignored when Listener is set.
	ServerAddr string
	// Listener, when set, is served instead of listening on ServerAddr.
	Listener net.Listener
	// TLS is the log server's certificate. Required.
	TLS *tls.Certificate
	// Authenticate, when set, decides whether a bearer token may read
	// logs. Nil means asking the API server, as a real kubelet's webhook
	// authentication and authorization do: a TokenReview, then a
	// SubjectAccessReview for get nodes/proxy (cached briefly).
	Authenticate func(token string) bool
	// NodeLabels are added to the Node's labels (the kubelet's
	// --node-labels).
	NodeLabels map[string]string
	// Capacity overrides the Node's capacity (and allocatable), resource
	// by resource: hollow nodes claim what they simulate. Unset resources
	// come from the host (cpu, memory, ephemeral-storage) or
	// DefaultMaxPods.
	Capacity corev1.ResourceList
	// NoHostPressure reports no memory, disk or PID pressure instead of
	// reading the host's: hollow nodes set it.
	NoHostPressure bool
	// ResolvConf and HostsFile are the host's resolver and hosts files;
	// defaults DefaultResolvConf and DefaultHostsFile.
	ResolvConf string
	HostsFile  string
	// BackoffBase and BackoffMax bound crash and image pull back-off;
	// defaults DefaultBackoffBase and DefaultBackoffMax. Tests shorten
	// them.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// LeaseDuration is the Lease's duration, renewed every quarter of it;
	// default DefaultLeaseDuration.
	LeaseDuration time.Duration
	// StatusPeriod and StatusReportPeriod pace the Node's status; defaults
	// DefaultStatusPeriod and DefaultStatusReportPeriod.
	StatusPeriod       time.Duration
	StatusReportPeriod time.Duration
	// RelistPeriod paces the runtime relist; default DefaultRelistPeriod.
	RelistPeriod time.Duration
	// ResyncPeriod paces the periodic sync of every pod; default
	// DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// KubeletVersion is Node.status.nodeInfo.kubeletVersion; default
	// DefaultKubeletVersion.
	KubeletVersion string
	// Logger receives lifecycle and per-pod messages; nil means
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.StorageDir == "" && c.RootDir != "" {
		c.StorageDir = filepath.Join(c.RootDir, localpath.StorageSubdir)
	}
	if c.NodeIP == "" {
		c.NodeIP = hostIP()
	}
	if c.ClusterDNS == "" {
		c.ClusterDNS = DefaultClusterDNS
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	if c.ServerAddr == "" {
		c.ServerAddr = net.JoinHostPort(c.NodeIP, fmt.Sprint(DefaultPort))
	}
	if c.ResolvConf == "" {
		c.ResolvConf = DefaultResolvConf
	}
	if c.HostsFile == "" {
		c.HostsFile = DefaultHostsFile
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.StatusPeriod == 0 {
		c.StatusPeriod = DefaultStatusPeriod
	}
	if c.StatusReportPeriod == 0 {
		c.StatusReportPeriod = DefaultStatusReportPeriod
	}
	if c.RelistPeriod == 0 {
		c.RelistPeriod = DefaultRelistPeriod
	}
	if c.ResyncPeriod == 0 {
		c.ResyncPeriod = DefaultResyncPeriod
	}
	if c.KubeletVersion == "" {
		c.KubeletVersion = DefaultKubeletVersion
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("kubelet: Config.Client is required"))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("kubelet: Config.NodeName is required"))
	}
	if c.Runtime == nil {
		errs = append(errs, errors.New("kubelet: Config.Runtime is required"))
	}
	if c.RootDir == "" {
		errs = append(errs, errors.New("kubelet: Config.RootDir is required"))
	}
	if c.TLS == nil {
		errs = append(errs, errors.New("kubelet: Config.TLS is required"))
	}
	if c.StorageDir != "" && !filepath.IsAbs(c.StorageDir) {
		errs = append(errs, fmt.Errorf("kubelet: Config.StorageDir %q is not an absolute path", c.StorageDir))
	}
	if _, err := netip.ParseAddr(c.NodeIP); err != nil {
		errs = append(errs, fmt.Errorf("kubelet: Config.NodeIP %q is not an IP address", c.NodeIP))
	}
	if _, err := netip.ParseAddr(c.ClusterDNS); err != nil {
		errs = append(errs, fmt.Errorf("kubelet: Config.ClusterDNS %q is not an IP address", c.ClusterDNS))
	}
	for name, d := range map[string]time.Duration{"BackoffBase": c.BackoffBase, "BackoffMax": c.BackoffMax,
		"LeaseDuration": c.LeaseDuration, "StatusPeriod": c.StatusPeriod, "StatusReportPeriod": c.StatusReportPeriod,
		"RelistPeriod": c.RelistPeriod, "ResyncPeriod": c.ResyncPeriod} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("kubelet: Config.%s must not be negative, got %v", name, d))
		}
	}
	if c.BackoffMax < c.BackoffBase {
		errs = append(errs, fmt.Errorf("kubelet: Config.BackoffMax %v is below BackoffBase %v", c.BackoffMax, c.BackoffBase))
	}
	return errors.Join(errs...)
}

// hostIP is the local address of the default route, found by "dialing"
// UDP (which sends nothing), or 127.0.0.1 without one.
func hostIP() string {
	conn, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return "127.0.0.1"
	}
	defer conn.Close()
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
		return a.IP.String()
	}
	return "127.0.0.1"
}
