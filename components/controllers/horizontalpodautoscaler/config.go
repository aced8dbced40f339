package horizontalpodautoscaler

import (
	"log/slog"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
)

// Defaults of Config, as kube-controller-manager's flags default them.
const (
	// DefaultSyncPeriod is --horizontal-pod-autoscaler-sync-period.
	DefaultSyncPeriod = 15 * time.Second
	// DefaultDownscaleStabilizationWindow is
	// --horizontal-pod-autoscaler-downscale-stabilization: the window of
	// an HPA without behavior, and of one whose behavior.scaleDown sets
	// none.
	DefaultDownscaleStabilizationWindow = 5 * time.Minute
	// DefaultTolerance is --horizontal-pod-autoscaler-tolerance: usage
	// within 10% of the target changes nothing.
	DefaultTolerance = 0.1
	// DefaultCPUInitializationPeriod is
	// --horizontal-pod-autoscaler-cpu-initialization-period: a pod this
	// young counts for cpu only once it is ready and has a sample taken
	// after it became so.
	DefaultCPUInitializationPeriod = 5 * time.Minute
	// DefaultInitialReadinessDelay is
	// --horizontal-pod-autoscaler-initial-readiness-delay: past the
	// initialization period, an unready pod that turned unready this soon
	// after starting was never ready, and does not count for cpu.
	DefaultInitialReadinessDelay = 30 * time.Second
	// DefaultWorkers is --concurrent-horizontal-pod-autoscaler-syncs.
	DefaultWorkers = 5
	// DefaultMinReplicas is spec.minReplicas when unset.
	DefaultMinReplicas = 1
	// DefaultCPUUtilization is the target of an HPA without metrics, as
	// kube-apiserver defaults autoscaling/v2 (kiln's does not default
	// spec.metrics, so the controller does).
	DefaultCPUUtilization = 80
)

// EventComponent is the source of the controller's Events, as kube's
// names itself.
const EventComponent = "horizontal-pod-autoscaler"

// Config configures the controller.
type Config struct {
	// Client reads and updates the targets' scale subresource and writes
	// HPA status. Required.
	Client kubernetes.Interface
	// Metrics reads pod usage from metrics.k8s.io. Required.
	Metrics metricsclient.Interface
	// Informers is the shared factory the controller registers its HPA
	// and Pod informers on; the caller starts it. Required.
	Informers informers.SharedInformerFactory
	// Events, when set, receives the controller's Events about HPAs
	// (SuccessfulRescale, FailedGetResourceMetric, ...), recorded as
	// EventComponent. Nil records none.
	Events record.EventBroadcaster
	// SyncPeriod is how often each HPA is evaluated; zero means
	// DefaultSyncPeriod.
	SyncPeriod time.Duration
	// DownscaleStabilizationWindow: zero means
	// DefaultDownscaleStabilizationWindow.
	DownscaleStabilizationWindow time.Duration
	// Tolerance is the fraction around the target within which nothing
	// changes; zero means DefaultTolerance (as in kube, a tolerance of
	// zero cannot be configured).
	Tolerance float64
	// CPUInitializationPeriod and InitialReadinessDelay: zero means their
	// defaults.
	CPUInitializationPeriod, InitialReadinessDelay time.Duration
	// Workers is how many HPAs are evaluated at once; zero means
	// DefaultWorkers.
	Workers int
	// Logger receives lifecycle and per-item messages; nil means
	// slog.Default().
	Logger *slog.Logger
}
