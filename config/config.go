package config

import (
	"slices"
	"time"
)

// Defaults for the zero values of Config, Datastore and Source.
const (
	// DefaultDataDir holds etcd/, tls/, admin.kubeconfig, node-token, images/,
	// containerd/ and pods/.
	DefaultDataDir = "/var/lib/kiln"
	// DefaultAPIListen is where the HTTPS API server listens.
	DefaultAPIListen = "127.0.0.1:6443"
	// DefaultDashboardListen is where the read-only dashboard listens.
	DefaultDashboardListen = "127.0.0.1:8080"
	// DefaultIngressListen and DefaultIngressTLSListen are where every
	// node's ingress controller serves HTTP and HTTPS, as k3s's Traefik.
	DefaultIngressListen    = "0.0.0.0:80"
	DefaultIngressTLSListen = "0.0.0.0:443"
	// DefaultClusterCIDR is the pod network; each node gets a /24 of it.
	DefaultClusterCIDR = "10.42.0.0/16"
	// DefaultServiceCIDR is the range ClusterIPs are allocated from.
	DefaultServiceCIDR = "10.43.0.0/16"
	// DefaultClusterDNS is the ClusterIP of the cluster DNS Service; it must lie
	// inside the service CIDR.
	DefaultClusterDNS = "10.43.0.10"
	// DefaultNodePortRange is the inclusive range NodePorts are allocated from.
	DefaultNodePortRange = "30000-32767"
	// DefaultTolerationSeconds is how long a pod stays on a not-ready or
	// unreachable node before it is evicted, as in Kubernetes.
	DefaultTolerationSeconds = 300
	// DefaultNodeMonitorGracePeriod is how long a node may go without
	// renewing its Lease before it is marked unreachable.
	DefaultNodeMonitorGracePeriod = 40 * time.Second
	// DefaultKubeletPort is where the kubelet serves logs, on NodeIP.
	DefaultKubeletPort = 10250
	// DefaultContainerLogMaxSize and DefaultContainerLogMaxFiles rotate
	// container logs as the kubelet's defaults do.
	DefaultContainerLogMaxSize  = "10Mi"
	DefaultContainerLogMaxFiles = 5
	// DefaultLogLevel is the slog level name used when LogLevel is empty.
	DefaultLogLevel = "info"

	// DefaultCompactInterval is how often the store compacts old revisions.
	DefaultCompactInterval = time.Minute
	// DefaultCompactRetention is how many revisions compaction keeps.
	DefaultCompactRetention = 10000
	// DefaultCompactMinAge protects revisions younger than this from
	// compaction, so watchers that fall a little behind can resume.
	DefaultCompactMinAge = 5 * time.Minute

	// DefaultGitInterval is how often a git source polls its remote.
	DefaultGitInterval = 15 * time.Second
	// DefaultSourceNamespace is the namespace given to namespaced objects
	// that a source's files leave without one.
	DefaultSourceNamespace = "default"
	// DefaultDrift is what a source does when a live object drifts from the
	// repo.
	DefaultDrift = DriftRevert
	// DefaultPushWait is how long a push to a hosted source waits for the
	// rollout of what it deployed.
	DefaultPushWait = 60 * time.Second

	// DefaultLeaseDuration, DefaultRenewDeadline and DefaultRetryPeriod
	// time the leader election of the controllers, scheduler and GitOps
	// reconciler among servers sharing a datastore. They are shorter than
	// kube-controller-manager's 15s/10s/2s so that a successor takes over
	// within 15 s of a leader's death: it waits out the Lease (8 s after
	// the last renewal it saw) plus at most one retry (1.2 s with jitter)
	// and then starts the controllers. The cost is one Lease write a
	// second per leader.
	DefaultLeaseDuration = 8 * time.Second
	DefaultRenewDeadline = 6 * time.Second
	DefaultRetryPeriod   = time.Second
)

// Source kinds.
const (
	// SourceKindDir watches a local directory.
	SourceKindDir = "dir"
	// SourceKindGit polls a git remote.
	SourceKindGit = "git"
	// SourceKindHosted is a repository kiln keeps and serves itself
	// (DATA_DIR/repos/<name>.git): a push to it deploys.
	SourceKindHosted = "hosted"
)

// Rollback policies of a Source.
const (
	// RollbackNone leaves a revision that turned unhealthy applied.
	RollbackNone = "none"
	// RollbackAuto re-applies the last healthy revision.
	RollbackAuto = "auto"
)

// Drift policies of a Source.
const (
	// DriftRevert re-applies the repo's version of an object that was changed
	// in the cluster.
	DriftRevert = "revert"
	// DriftIgnore leaves in-cluster changes alone until the repo changes.
	DriftIgnore = "ignore"
)

// Components that Config.Disable can name.
const (
	ComponentKubelet     = "kubelet"
	ComponentProxy       = "proxy"
	ComponentScheduler   = "scheduler"
	ComponentControllers = "controllers"
	ComponentDashboard   = "dashboard"
	// ComponentSync is the GitOps sync: sources and reconcile.
	ComponentSync = "sync"
)

// Components returns the names Config.Disable accepts, in a fixed order.
func Components() []string {
	return []string{ComponentKubelet, ComponentProxy, ComponentScheduler, ComponentControllers, ComponentDashboard, ComponentSync}
}

// Log levels accepted by Config.LogLevel; they are slog level names.
func logLevels() []string { return []string{"debug", "info", "warn", "error"} }

// Config is kiln.yaml. Every field has a flag equivalent (see BindFlags), and
// the zero value of every field means its default (see SetDefaults).
type Config struct {
	// DataDir is the data directory; default DefaultDataDir. Flag --data-dir.
	DataDir string `json:"dataDir,omitempty"`
	// APIListen is the API server's host:port; default DefaultAPIListen.
	// Port 0 picks a free port. Flag --api-listen.
	APIListen string `json:"apiListen,omitempty"`
	// DashboardListen is the dashboard's host:port; default
	// DefaultDashboardListen. Flag --dashboard-listen.
	DashboardListen string `json:"dashboardListen,omitempty"`
	// DashboardTokenFile holds a bearer token the dashboard requires of
	// every request; empty means none, which is only safe on loopback.
	// Flag --dashboard-token-file.
	DashboardTokenFile string `json:"dashboardTokenFile,omitempty"`
	// TokenAuthFile is a static token file in kube-apiserver's
	// --token-auth-file format, one user per line:
	// token,user,uid[,"group1,group2"]. Besides system:masters, the
	// groups kiln:viewers (read everything but Secrets, clone) and
	// kiln:pushers (push to and fetch hosted repositories, nothing else)
	// have built-in roles. Empty means the admin token only. Flag
	// --token-auth-file.
	TokenAuthFile string `json:"tokenAuthFile,omitempty"`
	// IngressListen is the host:port where the ingress controller in each
	// node's proxy serves Ingresses over HTTP; default
	// DefaultIngressListen. A pointer, so that "" (set) turns it off while
	// absent means the default. Flag --ingress-listen.
	IngressListen *string `json:"ingressListen,omitempty"`
	// IngressTLSListen is the same for HTTPS; default
	// DefaultIngressTLSListen, "" turns it off. Flag --ingress-tls-listen.
	IngressTLSListen *string `json:"ingressTLSListen,omitempty"`
	// ClusterCIDR is the IPv4 pod network, a /24 per node; default
	// DefaultClusterCIDR. Flag --cluster-cidr.
	ClusterCIDR string `json:"clusterCIDR,omitempty"`
	// ServiceCIDR is the IPv4 ClusterIP range; default DefaultServiceCIDR.
	// Flag --service-cidr.
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	// ClusterDNS is the cluster DNS Service's ClusterIP, inside ServiceCIDR;
	// default DefaultClusterDNS. Flag --cluster-dns.
	ClusterDNS string `json:"clusterDNS,omitempty"`
	// NodePortRange is "FROM-TO", inclusive; default DefaultNodePortRange.
	// Flag --node-port-range.
	NodePortRange string `json:"nodePortRange,omitempty"`
	// Disable lists components not to run; see Components. Flag --disable.
	Disable []string `json:"disable,omitempty"`
	// Datastore says which etcd to use; empty means the embedded one.
	// omitzero rather than omitempty: omitempty never omits a struct.
	Datastore Datastore `json:"datastore,omitzero"`
	// Sources are the repos and directories to sync. Flag --source, which
	// replaces this list when given.
	Sources []Source `json:"sources,omitempty"`
	// PushWait is how long a push to a hosted source waits for the
	// rollout it started before it answers; default DefaultPushWait.
	// Flag --push-wait.
	PushWait Duration `json:"pushWait,omitzero"`
	// NodeName is this node's name; default the lower-cased os.Hostname().
	// Flag --node-name.
	NodeName string `json:"nodeName,omitempty"`
	// NodeIP is this node's address: the Node's InternalIP, where the
	// kubelet listens and NodePorts answer. Default: the IPv4 address of
	// the interface with the default route, else 127.0.0.1. Flag --node-ip.
	NodeIP string `json:"nodeIP,omitempty"`
	// KubeletPort is the kubelet's HTTPS port on NodeIP; default
	// DefaultKubeletPort. Flag --kubelet-port.
	KubeletPort int `json:"kubeletPort,omitempty"`
	// ContainerLogMaxSize is the size (a quantity: "10Mi") at which a
	// container's log file is rotated, and ContainerLogMaxFiles how many
	// files each container keeps, the current one included (at least
	// 2); defaults DefaultContainerLogMaxSize and
	// DefaultContainerLogMaxFiles, as the kubelet's. Flags
	// --container-log-max-size and --container-log-max-files.
	ContainerLogMaxSize  string `json:"containerLogMaxSize,omitempty"`
	ContainerLogMaxFiles int    `json:"containerLogMaxFiles,omitempty"`
	// ContainerRuntimeEndpoint is the socket of an existing containerd;
	// empty means kiln runs its own under DATA_DIR/containerd, as k3s
	// does. Flag --container-runtime-endpoint.
	ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint,omitempty"`
	// NodeMonitorGracePeriod is how long a node may go without renewing
	// its Lease before it is marked unreachable and tainted; default
	// DefaultNodeMonitorGracePeriod. Flag --node-monitor-grace-period.
	NodeMonitorGracePeriod Duration `json:"nodeMonitorGracePeriod,omitzero"`
	// DefaultNotReadyTolerationSeconds and DefaultUnreachableTolerationSeconds
	// are how long a pod that does not say otherwise stays on a not-ready
	// or unreachable node before eviction; default
	// DefaultTolerationSeconds (an appliance often wants 30). Flags
	// --default-not-ready-toleration-seconds and
	// --default-unreachable-toleration-seconds.
	DefaultNotReadyTolerationSeconds    int64 `json:"defaultNotReadyTolerationSeconds,omitempty"`
	DefaultUnreachableTolerationSeconds int64 `json:"defaultUnreachableTolerationSeconds,omitempty"`
	// LogLevel is debug, info, warn or error; default DefaultLogLevel.
	// Flag --log-level.
	LogLevel string `json:"logLevel,omitempty"`
	// Token is the cluster's join secret: agents present it to join, and
	// servers sharing an external datastore decrypt the shared CA and
	// admin token with it. It is either the secret itself or a whole join
	// token K10<ca hash>::node:<secret> (see JoinSecret). Empty means the
	// server generates one into DATA_DIR/tls/node.secret; required with
	// datastore.endpoints. Flag --token.
	Token string `json:"token,omitempty"`
	// LeaderElection times the Leases under which one server at a time
	// runs the controllers, the scheduler and the GitOps reconciler.
	LeaderElection LeaderElection `json:"leaderElection,omitzero"`
}

// LeaderElection times leader election as client-go's leaderelection
// package understands it.
type LeaderElection struct {
	// LeaseDuration is how long followers wait after the last renewal
	// they saw before taking over; default DefaultLeaseDuration.
	// Flag --leader-elect-lease-duration.
	LeaseDuration Duration `json:"leaseDuration,omitzero"`
	// RenewDeadline is how long the leader keeps retrying a renewal
	// before it gives up leading; default DefaultRenewDeadline, less than
	// LeaseDuration. Flag --leader-elect-renew-deadline.
	RenewDeadline Duration `json:"renewDeadline,omitzero"`
	// RetryPeriod is the interval between attempts to acquire or renew;
	// default DefaultRetryPeriod. Flag --leader-elect-retry-period.
	RetryPeriod Duration `json:"retryPeriod,omitzero"`
}

// Datastore selects the embedded etcd or an external cluster and tunes
// compaction.
type Datastore struct {
	// Endpoints are external etcd client URLs; empty means the embedded
	// member in DATA_DIR/etcd. Flag --datastore-endpoint.
	Endpoints []string `json:"endpoints,omitempty"`
	// CAFile verifies the external etcd's certificate. Flag --datastore-cafile.
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile are kiln's client certificate for the external
	// etcd; both or neither. Flags --datastore-certfile, --datastore-keyfile.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// CompactInterval is how often old revisions are compacted; default
	// DefaultCompactInterval, negative disables compaction.
	// Flag --datastore-compact-interval.
	CompactInterval Duration `json:"compactInterval,omitzero"`
	// CompactRetention is how many revisions compaction keeps; default
	// DefaultCompactRetention. Flag --datastore-compact-retention.
	CompactRetention int64 `json:"compactRetention,omitempty"`
	// CompactMinAge: revisions younger than this are never compacted; default
	// DefaultCompactMinAge. Flag --datastore-compact-min-age.
	CompactMinAge Duration `json:"compactMinAge,omitzero"`
}

// Source is one directory or git repository of Kubernetes YAML to sync. On
// the command line it is written "dir:PATH" or "git:URL[#REF][//SUBPATH]"
// (see ParseSourceFlag); the other fields take their defaults there.
type Source struct {
	// Name names the Source object and the gitops.kiln.dev/source label, so
	// it is a DNS-1123 label. Default: derived from Path or URL.
	Name string `json:"name,omitempty"`
	// Kind is SourceKindDir, SourceKindGit or SourceKindHosted. Required.
	Kind string `json:"kind,omitempty"`
	// Path is the directory of a dir source.
	Path string `json:"path,omitempty"`
	// URL is the remote of a git source: https://, http://, ssh://, git://,
	// file:// or scp-like user@host:path. Credentials go in CredentialsFile,
	// never in the URL.
	URL string `json:"url,omitempty"`
	// Ref is the branch, tag or commit of a git source; empty means the
	// remote's HEAD. For a hosted source it is the branch a push to
	// deploys; empty means "main".
	Ref string `json:"ref,omitempty"`
	// Subpath is the directory inside the source to read, relative and
	// staying inside it; empty means the root.
	Subpath string `json:"subpath,omitempty"`
	// Interval is how often a git source polls; default DefaultGitInterval.
	// A dir source watches for changes instead and must leave it empty.
	Interval Duration `json:"interval,omitzero"`
	// Namespace is given to namespaced objects without one; default
	// DefaultSourceNamespace.
	Namespace string `json:"namespace,omitempty"`
	// Prune deletes objects this source applied earlier and no longer has;
	// nil means true.
	Prune *bool `json:"prune,omitempty"`
	// Drift is DriftRevert or DriftIgnore; default DefaultDrift.
	Drift string `json:"drift,omitempty"`
	// Rollback is RollbackAuto or RollbackNone; default RollbackNone.
	// With RollbackAuto, a revision that turns Degraded (a Deployment past
	// its progress deadline) is replaced by the last revision that was
	// healthy; the branch is not rewritten.
	Rollback string `json:"rollback,omitempty"`
	// CredentialsFile holds a git source's credentials; it is read when
	// fetching, never copied into status, events or logs.
	CredentialsFile string `json:"credentialsFile,omitempty"`
	// WebhookSecretFile holds the secret of a git source's webhook,
	// POST /hooks/git/<name> on dashboardListen: the HMAC key of GitHub's
	// and Gitea's signatures, or GitLab's token. It is read once at start;
	// empty means webhooks are not authenticated.
	WebhookSecretFile string `json:"webhookSecretFile,omitempty"`
}

// Ingress returns the ingress controller's HTTP and HTTPS addresses, ""
// for one that is off (or not defaulted yet).
func (c *Config) Ingress() (listen, tlsListen string) {
	if c.IngressListen != nil {
		listen = *c.IngressListen
	}
	if c.IngressTLSListen != nil {
		tlsListen = *c.IngressTLSListen
	}
	return listen, tlsListen
}

// Disabled reports whether component is listed in Disable.
func (c *Config) Disabled(component string) bool {
	return slices.Contains(c.Disable, component)
}
