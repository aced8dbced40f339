package nodelifecycle

import (
	"log/slog"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// Defaults and fixed tunables.
const (
	// DefaultGracePeriod is kube's node-monitor-grace-period before v1.32
	// (v1.32 made it 50s, kubernetes#126287); kiln keeps 40s.
	DefaultGracePeriod = 40 * time.Second
	// DefaultMonitorPeriod is kube's node-monitor-period.
	DefaultMonitorPeriod = 5 * time.Second
	// workers is the number of Nodes synced at once.
	workers = 4
)

// Sources and reasons of the controller's Events, as kube's node
// lifecycle controller and its taint eviction controller name them.
const (
	EventComponentNode              = "node-controller"
	EventComponentEviction          = "taint-eviction-controller"
	EventReasonNodeNotReady         = "NodeNotReady"
	EventReasonTaintManagerEviction = "TaintManagerEviction"
)

// Config configures the controller.
type Config struct {
	// Client writes Node and Pod status, Node taints and deletes Pods.
	// Required.
	Client kubernetes.Interface
	// Informers is the shared factory the controller registers its Node,
	// Lease and Pod informers on; the caller starts it. Required.
	Informers informers.SharedInformerFactory
	// GracePeriod is how long a Node may go without a Lease renewal or a
	// Ready heartbeat before it is marked Unknown and tainted
	// unreachable; zero means DefaultGracePeriod.
	GracePeriod time.Duration
	// MonitorPeriod is how often every Node is checked; zero means
	// DefaultMonitorPeriod.
	MonitorPeriod time.Duration
	// Events, when set, receives the controller's Events, as kube's node
	// lifecycle controller records them: NodeNotReady about a Node that
	// stopped reporting and about each of its Pods marked not ready (from
	// EventComponentNode), TaintManagerEviction about each Pod evicted
	// (from EventComponentEviction). The controller manager shares one
	// broadcaster among all its controllers. Nil records none.
	Events record.EventBroadcaster
	// Logger receives lifecycle and per-Node messages; nil means
	// slog.Default().
	Logger *slog.Logger
}
