package nodeipam

import (
	"log/slog"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Defaults of Config, as k3s's cluster-cidr and kube's node-cidr-mask-size.
const (
	DefaultClusterCIDR  = "10.42.0.0/16"
	DefaultNodeMaskSize = 24
	// maxBlockBits bounds the allocator: ClusterCIDR may
	// hold at most 2^16 blocks of NodeMaskSize, as kube's limit.
	maxBlockBits = 16
)

// Config configures the controller.
type Config struct {
	// Client patches Nodes and records Events. Required.
	Client kubernetes.Interface
	// Informers is the shared factory the controller registers its Node
	// informer on; the caller starts it. Required.
	Informers informers.SharedInformerFactory
	// ClusterCIDR is the IPv4 range pod CIDRs are cut from; empty means
	// DefaultClusterCIDR.
	ClusterCIDR string
	// NodeMaskSize is the prefix length of each Node's block; zero means
	// DefaultNodeMaskSize. It must be at least ClusterCIDR's prefix length
	// and at most 32.
	NodeMaskSize int
	// Logger receives lifecycle and per-Node messages; nil means
	// slog.Default().
	Logger *slog.Logger
}
