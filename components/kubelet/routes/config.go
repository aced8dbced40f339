package routes

import (
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Protocol is the route protocol number of kiln's routes (`ip route ...
// proto 0x4b`); routes with another protocol are never changed.
const Protocol = 0x4b

// Defaults applied by New to zero Config fields.
const (
	// DefaultResyncPeriod is how often routes are checked even without a
	// Node change, so a route someone deleted comes back.
	DefaultResyncPeriod = 30 * time.Second
	// DefaultIPBinary is iproute2's ip.
	DefaultIPBinary = "ip"
)

// Retry bounds of a failed sync.
const (
	minRetry = 500 * time.Millisecond
	maxRetry = 30 * time.Second
)

// Config configures Routes. Client and NodeName are required.
type Config struct {
	// Client lists and watches Nodes.
	Client kubernetes.Interface
	// NodeName is this host's Node, which gets no route.
	NodeName string
	// Netns is the name of the network namespace (`ip netns`) whose routes
	// are kept; empty means the caller's own.
	Netns string
	// ResyncPeriod is the period of syncs without a Node change; zero
	// means DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// IPBinary is the ip command; empty means DefaultIPBinary.
	IPBinary string
	// Logger receives lifecycle and per-Node messages; nil means
	// slog.Default().
	Logger *slog.Logger
}
