package containerd

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/identifiers"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultNamespace  = "kiln"
	DefaultBridgeName = "kiln0"
	// DefaultClusterCIDR is the range of every node's pod CIDR, as
	// k3s's cluster-cidr.
	DefaultClusterCIDR = "10.42.0.0/16"
	// DefaultCNIBinDir is where Debian's containernetworking-plugins
	// installs the plugins; DefaultCNIBinDirFallback is the upstream
	// location, used when the first has no bridge plugin.
	DefaultCNIBinDir         = "/usr/lib/cni"
	DefaultCNIBinDirFallback = "/opt/cni/bin"
	DefaultContainerdBinary  = "containerd"
	// DefaultSnapshotter unpacks images into overlayfs.
	DefaultSnapshotter = "overlayfs"
	// DefaultLogMaxSize and DefaultLogMaxFiles are the kubelet's
	// defaults for rotating container logs (10Mi, 5 files).
	DefaultLogMaxSize  = 10 << 20
	DefaultLogMaxFiles = 5
	// DefaultStartTimeout bounds the wait for containerd's socket.
	DefaultStartTimeout = 30 * time.Second
)

// Config configures a Runtime. RootDir is required; every other zero
// field takes its default.
type Config struct {
	// RootDir is kiln's data dir (DATA_DIR). containerd's config, root,
	// state and socket, the pods' network namespaces, the log FIFOs and the
	// CNI state live under RootDir/containerd.
	RootDir string
	// Endpoint is the socket of an existing containerd to use
	// (--container-runtime-endpoint, "unix://" optional); when set, no
	// containerd is started.
	Endpoint string
	// Namespace is the containerd namespace of this node's sandboxes and
	// containers; the kubelet passes one per node name.
	Namespace string
	// ImagesDir holds image archives (docker or OCI layout tars) imported
	// at start and whenever one is added. Default RootDir/images.
	ImagesDir string
	// CNIBinDir holds the CNI plugins. Default /usr/lib/cni, else
	// /opt/cni/bin.
	CNIBinDir string
	// CNIConfDir is where the network config is written (for people to
	// read, and so that a restart finds the pod CIDR again). Default
	// RootDir/containerd/cni/net.d.
	CNIConfDir string
	// BridgeName is the pod network's Linux bridge (15 bytes at most).
	BridgeName string
	// ClusterCIDR holds every node's pod CIDR: pod traffic to it (pods on
	// other nodes, reached over host-gw routes) keeps its source address;
	// only what leaves the cluster is masqueraded. Default
	// DefaultClusterCIDR.
	ClusterCIDR string
	// NodeIP is the IP reported for host-network sandboxes; default the
	// address of the interface that holds the default route.
	NodeIP string
	// LogMaxSize is the size at which a container's log file is rotated
	// (the kubelet's containerLogMaxSize); default DefaultLogMaxSize.
	LogMaxSize int64
	// LogMaxFiles is how many log files a container keeps, the current
	// one included (containerLogMaxFiles, at least 2); default
	// DefaultLogMaxFiles.
	LogMaxFiles int
	// ContainerdBinary is the containerd executable to start.
	ContainerdBinary string
	// StartTimeout bounds the wait for a started containerd's socket.
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// paths are the files and directories derived from Config.
type paths struct {
	dir       string // RootDir/containerd
	config    string // containerd's config.toml
	root      string // containerd's persistent root
	state     string // containerd's state
	address   string // containerd's socket
	pidFile   string
	daemonLog string
	netns     string // bind-mounted network namespaces, one per sandbox
	io        string // container stdout/stderr FIFOs, one dir per container
	exec      string // exec FIFOs
	cniData   string // host-local's allocations
	cniCache  string // libcni's results, needed for DEL after a restart
}

func (c *Config) setDefaults() error {
	if c.RootDir == "" {
		return errors.New("RootDir: required")
	}
	abs, err := filepath.Abs(c.RootDir)
	if err != nil {
		return fmt.Errorf("RootDir: %w", err)
	}
	c.RootDir = abs
	c.Endpoint = strings.TrimPrefix(c.Endpoint, "unix://")
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if err := identifiers.Validate(c.Namespace); err != nil {
		return fmt.Errorf("Namespace: %w", err)
	}
	if c.ImagesDir == "" {
		c.ImagesDir = filepath.Join(c.RootDir, "images")
	}
	if c.CNIBinDir == "" {
		c.CNIBinDir = DefaultCNIBinDir
		if _, err := os.Stat(filepath.Join(c.CNIBinDir, "bridge")); err != nil {
			if _, err2 := os.Stat(filepath.Join(DefaultCNIBinDirFallback, "bridge")); err2 == nil {
				c.CNIBinDir = DefaultCNIBinDirFallback
			}
		}
	}
	if c.CNIConfDir == "" {
		c.CNIConfDir = filepath.Join(c.RootDir, "containerd", "cni", "net.d")
	}
	if c.BridgeName == "" {
		c.BridgeName = DefaultBridgeName
	}
	if len(c.BridgeName) > 15 {
		return fmt.Errorf("BridgeName: %q is longer than 15 bytes", c.BridgeName)
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = DefaultClusterCIDR
	}
	ip, ipnet, err := net.ParseCIDR(c.ClusterCIDR)
	if err != nil || ip.To4() == nil {
		return fmt.Errorf("ClusterCIDR: %q is not an IPv4 CIDR", c.ClusterCIDR)
	}
	c.ClusterCIDR = ipnet.String()
	if c.NodeIP != "" && net.ParseIP(c.NodeIP) == nil {
		return fmt.Errorf("NodeIP: %q is not an IP address", c.NodeIP)
	}
	if c.LogMaxSize == 0 {
		c.LogMaxSize = DefaultLogMaxSize
	}
	if c.LogMaxSize < 0 {
		return fmt.Errorf("LogMaxSize: %d is negative", c.LogMaxSize)
	}
	if c.LogMaxFiles == 0 {
		c.LogMaxFiles = DefaultLogMaxFiles
	}
	if c.LogMaxFiles < 2 {
		return fmt.Errorf("LogMaxFiles: %d, want at least 2 (the current file and one rotated)", c.LogMaxFiles)
	}
	if c.ContainerdBinary == "" {
		c.ContainerdBinary = DefaultContainerdBinary
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

func (c *Config) paths() paths {
	dir := filepath.Join(c.RootDir, "containerd")
	p := paths{
		dir:       dir,
		config:    filepath.Join(dir, "config.toml"),
		root:      filepath.Join(dir, "root"),
		state:     filepath.Join(dir, "state"),
		address:   filepath.Join(dir, "containerd.sock"),
		pidFile:   filepath.Join(dir, "containerd.pid"),
		daemonLog: filepath.Join(dir, "containerd.log"),
		netns:     filepath.Join(dir, "netns"),
		io:        filepath.Join(dir, "io"),
		exec:      filepath.Join(dir, "io", "exec"),
		cniData:   filepath.Join(dir, "cni", "networks"),
		cniCache:  filepath.Join(dir, "cni", "cache"),
	}
	// A unix socket path holds at most 107 bytes, and containerd adds
	// ".ttrpc" for its second socket; a deep data dir (tests' temp dirs)
	// gets a short path under /run named after it instead.
	if len(p.address)+len(".ttrpc") > 100 {
		sum := sha256.Sum256([]byte(dir))
		p.address = filepath.Join("/run/kiln", hex.EncodeToString(sum[:6])+".sock")
	}
	if c.Endpoint != "" {
		p.address = c.Endpoint
	}
	return p
}
