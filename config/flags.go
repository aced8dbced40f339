package config

import (
	"errors"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Flag names, one per Config field (sources only through --source).
const (
	flagDataDir           = "data-dir"
	flagAPIListen         = "api-listen"
	flagDashboardListen   = "dashboard-listen"
	flagIngressListen     = "ingress-listen"
	flagIngressTLSListen  = "ingress-tls-listen"
	flagClusterCIDR       = "cluster-cidr"
	flagServiceCIDR       = "service-cidr"
	flagClusterDNS        = "cluster-dns"
	flagNodePortRange     = "node-port-range"
	flagDisable           = "disable"
	flagSource            = "source"
	flagNodeName          = "node-name"
	flagLogLevel          = "log-level"
	flagNodeIP            = "node-ip"
	flagPushWait          = "push-wait"
	flagDashboardToken    = "dashboard-token-file"
	flagTokenAuthFile     = "token-auth-file"
	flagKubeletPort       = "kubelet-port"
	flagLogMaxSize        = "container-log-max-size"
	flagLogMaxFiles       = "container-log-max-files"
	flagNodeGrace         = "node-monitor-grace-period"
	flagNotReadyTol       = "default-not-ready-toleration-seconds"
	flagUnreachableTol    = "default-unreachable-toleration-seconds"
	flagRuntimeEndpoint   = "container-runtime-endpoint"
	flagDatastoreEndpoint = "datastore-endpoint"
	flagDatastoreCAFile   = "datastore-cafile"
	flagDatastoreCertFile = "datastore-certfile"
	flagDatastoreKeyFile  = "datastore-keyfile"
	flagCompactInterval   = "datastore-compact-interval"
	flagCompactRetention  = "datastore-compact-retention"
	flagCompactMinAge     = "datastore-compact-min-age"
	flagToken             = "token"
	flagLeaseDuration     = "leader-elect-lease-duration"
	flagRenewDeadline     = "leader-elect-renew-deadline"
	flagRetryPeriod       = "leader-elect-retry-period"
)

// Flags holds the values of the flags BindFlags registered until Apply
// copies the ones the user set onto a Config.
type Flags struct {
	dataDir, apiListen, dashboardListen  string
	ingressListen, ingressTLSListen      string
	clusterCIDR, serviceCIDR, clusterDNS string
	nodePortRange, nodeName, logLevel    string
	nodeIP, runtimeEndpoint              string
	logMaxSize                           string
	logMaxFiles                          int
	dashboardTokenFile                   string
	tokenAuthFile                        string
	kubeletPort                          int
	nodeGrace                            time.Duration
	notReadyTol, unreachableTol          int64
	disable, sources, endpoints          []string
	caFile, certFile, keyFile            string
	compactInterval, compactMinAge       time.Duration
	pushWait                             time.Duration
	compactRetention                     int64
	token                                string
	leaseDuration, renewDeadline         time.Duration
	retryPeriod                          time.Duration
}

// BindFlags registers one flag per Config field on fs and returns the Flags
// to Apply after parsing. The defaults shown in help are c's values where
// set, else the built-in defaults; they are documentation only, since Apply
// copies nothing the user did not set. BindFlags does not modify c.
func (c *Config) BindFlags(fs *pflag.FlagSet) *Flags {
	or := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	orDur := func(v Duration, def time.Duration) time.Duration {
		if v.Duration != 0 {
			return v.Duration
		}
		return def
	}
	f := &Flags{}
	fs.StringVar(&f.dataDir, flagDataDir, or(c.DataDir, DefaultDataDir), "data directory (etcd, TLS, kubeconfig, images, logs)")
	fs.StringVar(&f.apiListen, flagAPIListen, or(c.APIListen, DefaultAPIListen), "API server HOST:PORT")
	fs.StringVar(&f.dashboardListen, flagDashboardListen, or(c.DashboardListen, DefaultDashboardListen), "dashboard HOST:PORT")
	orPtr := func(v *string, def string) string {
		if v != nil {
			return *v
		}
		return def
	}
	fs.StringVar(&f.ingressListen, flagIngressListen, orPtr(c.IngressListen, DefaultIngressListen), `ingress HTTP HOST:PORT on every node running the proxy; "" turns it off`)
	fs.StringVar(&f.ingressTLSListen, flagIngressTLSListen, orPtr(c.IngressTLSListen, DefaultIngressTLSListen), `ingress HTTPS HOST:PORT on every node running the proxy; "" turns it off`)
	fs.StringVar(&f.dashboardTokenFile, flagDashboardToken, c.DashboardTokenFile, "file holding a bearer token the dashboard requires (set it when dashboardListen is not loopback)")
	fs.StringVar(&f.tokenAuthFile, flagTokenAuthFile, c.TokenAuthFile, `static token file: token,user,uid[,"group,..."] per line (groups kiln:viewers and kiln:pushers have built-in roles)`)
	fs.StringVar(&f.clusterCIDR, flagClusterCIDR, or(c.ClusterCIDR, DefaultClusterCIDR), "IPv4 pod network, a /24 per node")
	fs.StringVar(&f.serviceCIDR, flagServiceCIDR, or(c.ServiceCIDR, DefaultServiceCIDR), "IPv4 range of Service ClusterIPs")
	fs.StringVar(&f.clusterDNS, flagClusterDNS, or(c.ClusterDNS, DefaultClusterDNS), "ClusterIP of the cluster DNS, inside the service CIDR")
	fs.StringVar(&f.nodePortRange, flagNodePortRange, or(c.NodePortRange, DefaultNodePortRange), "NodePort range FROM-TO")
	fs.StringSliceVar(&f.disable, flagDisable, c.Disable, "components not to run, comma separated: "+strings.Join(Components(), ", "))
	// StringArray, not StringSlice: a URL may contain a comma.
	fs.StringArrayVar(&f.sources, flagSource, nil, "dir:PATH, git:URL[#REF][//SUBPATH] or hosted:NAME; repeatable; replaces the config file's sources")
	fs.DurationVar(&f.pushWait, flagPushWait, orDur(c.PushWait, DefaultPushWait), "how long a push to a hosted source waits for its rollout")
	fs.StringVar(&f.nodeName, flagNodeName, c.NodeName, "node name (default the host name)")
	fs.StringVar(&f.nodeIP, flagNodeIP, c.NodeIP, "node IPv4 address (default the address of the default route)")
	kubeletPort := c.KubeletPort
	if kubeletPort == 0 {
		kubeletPort = DefaultKubeletPort
	}
	fs.IntVar(&f.kubeletPort, flagKubeletPort, kubeletPort, "kubelet HTTPS port on the node IP")
	fs.StringVar(&f.logMaxSize, flagLogMaxSize, or(c.ContainerLogMaxSize, DefaultContainerLogMaxSize), "size at which a container's log file is rotated")
	logMaxFiles := c.ContainerLogMaxFiles
	if logMaxFiles == 0 {
		logMaxFiles = DefaultContainerLogMaxFiles
	}
	fs.IntVar(&f.logMaxFiles, flagLogMaxFiles, logMaxFiles, "log files kept per container, the current one included")
	fs.DurationVar(&f.nodeGrace, flagNodeGrace, orDur(c.NodeMonitorGracePeriod, DefaultNodeMonitorGracePeriod), "how long a node may miss its Lease renewals before it is marked unreachable")
	orSecs := func(v int64) int64 {
		if v != 0 {
			return v
		}
		return DefaultTolerationSeconds
	}
	fs.Int64Var(&f.notReadyTol, flagNotReadyTol, orSecs(c.DefaultNotReadyTolerationSeconds), "seconds a pod stays on a not-ready node before eviction, unless it says otherwise")
	fs.Int64Var(&f.unreachableTol, flagUnreachableTol, orSecs(c.DefaultUnreachableTolerationSeconds), "seconds a pod stays on an unreachable node before eviction, unless it says otherwise")
	fs.StringVar(&f.runtimeEndpoint, flagRuntimeEndpoint, c.ContainerRuntimeEndpoint, "socket of an existing containerd (default: run one under the data dir)")
	fs.StringVar(&f.logLevel, flagLogLevel, or(c.LogLevel, DefaultLogLevel), "log level: debug, info, warn or error")
	fs.StringSliceVar(&f.endpoints, flagDatastoreEndpoint, c.Datastore.Endpoints, "external etcd client URLs, comma separated (default the embedded etcd)")
	fs.StringVar(&f.caFile, flagDatastoreCAFile, c.Datastore.CAFile, "CA file for the external etcd")
	fs.StringVar(&f.certFile, flagDatastoreCertFile, c.Datastore.CertFile, "client certificate file for the external etcd")
	fs.StringVar(&f.keyFile, flagDatastoreKeyFile, c.Datastore.KeyFile, "client key file for the external etcd")
	fs.DurationVar(&f.compactInterval, flagCompactInterval, orDur(c.Datastore.CompactInterval, DefaultCompactInterval), "how often to compact etcd revisions; negative disables")
	retention := c.Datastore.CompactRetention
	if retention == 0 {
		retention = DefaultCompactRetention
	}
	fs.Int64Var(&f.compactRetention, flagCompactRetention, retention, "etcd revisions kept by compaction")
	fs.DurationVar(&f.compactMinAge, flagCompactMinAge, orDur(c.Datastore.CompactMinAge, DefaultCompactMinAge), "never compact revisions younger than this")
	// The token's current value is never shown in help.
	fs.StringVar(&f.token, flagToken, "", "join secret, or a whole join token K10<ca hash>::node:<secret>; required with --datastore-endpoint, the same on every server (default: generated into the data dir)")
	le := c.LeaderElection
	fs.DurationVar(&f.leaseDuration, flagLeaseDuration, orDur(le.LeaseDuration, DefaultLeaseDuration), "how long a leader's Lease lasts without renewal before another server takes over")
	fs.DurationVar(&f.renewDeadline, flagRenewDeadline, orDur(le.RenewDeadline, DefaultRenewDeadline), "how long a leader retries renewing its Lease before it gives up leading")
	fs.DurationVar(&f.retryPeriod, flagRetryPeriod, orDur(le.RetryPeriod, DefaultRetryPeriod), "interval between attempts to acquire or renew a Lease")
	return f
}

// Apply copies onto c the flags the user set on fs (fs.Changed), leaving
// every other field as the config file had it. List flags replace the
// file's list: --disable and --datastore-endpoint (comma separated, blanks
// trimmed) and --source (repeatable; each is parsed with ParseSourceFlag).
// It reports every bad --source value.
func (f *Flags) Apply(fs *pflag.FlagSet, c *Config) error {
	str := []struct {
		name string
		dst  *string
		v    string
	}{
		{flagDataDir, &c.DataDir, f.dataDir},
		{flagAPIListen, &c.APIListen, f.apiListen},
		{flagDashboardListen, &c.DashboardListen, f.dashboardListen},
		{flagClusterCIDR, &c.ClusterCIDR, f.clusterCIDR},
		{flagServiceCIDR, &c.ServiceCIDR, f.serviceCIDR},
		{flagClusterDNS, &c.ClusterDNS, f.clusterDNS},
		{flagNodePortRange, &c.NodePortRange, f.nodePortRange},
		{flagNodeName, &c.NodeName, f.nodeName},
		{flagLogLevel, &c.LogLevel, f.logLevel},
		{flagNodeIP, &c.NodeIP, f.nodeIP},
		{flagDashboardToken, &c.DashboardTokenFile, f.dashboardTokenFile},
		{flagTokenAuthFile, &c.TokenAuthFile, f.tokenAuthFile},
		{flagRuntimeEndpoint, &c.ContainerRuntimeEndpoint, f.runtimeEndpoint},
		{flagLogMaxSize, &c.ContainerLogMaxSize, f.logMaxSize},
		{flagDatastoreCAFile, &c.Datastore.CAFile, f.caFile},
		{flagDatastoreCertFile, &c.Datastore.CertFile, f.certFile},
		{flagDatastoreKeyFile, &c.Datastore.KeyFile, f.keyFile},
		{flagToken, &c.Token, f.token},
	}
	for _, s := range str {
		if fs.Changed(s.name) {
			*s.dst = s.v
		}
	}
	if fs.Changed(flagIngressListen) {
		v := f.ingressListen
		c.IngressListen = &v
	}
	if fs.Changed(flagIngressTLSListen) {
		v := f.ingressTLSListen
		c.IngressTLSListen = &v
	}
	if fs.Changed(flagKubeletPort) {
		c.KubeletPort = f.kubeletPort
	}
	if fs.Changed(flagLogMaxFiles) {
		c.ContainerLogMaxFiles = f.logMaxFiles
	}
	if fs.Changed(flagNodeGrace) {
		c.NodeMonitorGracePeriod = Duration{f.nodeGrace}
	}
	if fs.Changed(flagNotReadyTol) {
		c.DefaultNotReadyTolerationSeconds = f.notReadyTol
	}
	if fs.Changed(flagUnreachableTol) {
		c.DefaultUnreachableTolerationSeconds = f.unreachableTol
	}
	if fs.Changed(flagDisable) {
		c.Disable = splitList(f.disable)
	}
	if fs.Changed(flagDatastoreEndpoint) {
		c.Datastore.Endpoints = splitList(f.endpoints)
	}
	if fs.Changed(flagCompactInterval) {
		c.Datastore.CompactInterval = Duration{f.compactInterval}
	}
	if fs.Changed(flagCompactRetention) {
		c.Datastore.CompactRetention = f.compactRetention
	}
	if fs.Changed(flagPushWait) {
		c.PushWait = Duration{f.pushWait}
	}
	if fs.Changed(flagLeaseDuration) {
		c.LeaderElection.LeaseDuration = Duration{f.leaseDuration}
	}
	if fs.Changed(flagRenewDeadline) {
		c.LeaderElection.RenewDeadline = Duration{f.renewDeadline}
	}
	if fs.Changed(flagRetryPeriod) {
		c.LeaderElection.RetryPeriod = Duration{f.retryPeriod}
	}
	if fs.Changed(flagCompactMinAge) {
		c.Datastore.CompactMinAge = Duration{f.compactMinAge}
	}
	if fs.Changed(flagSource) {
		var errs []error
		sources := make([]Source, 0, len(f.sources))
		for _, v := range f.sources {
			s, err := ParseSourceFlag(v)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sources = append(sources, s)
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		c.Sources = sources
	}
	return nil
}

// splitList trims blanks and drops empty items, so "kubelet, proxy" and
// "kubelet,,proxy" mean what they look like.
func splitList(items []string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}
