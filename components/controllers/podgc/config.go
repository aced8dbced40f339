package podgc

import (
	"log/slog"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Defaults, as kube's pod garbage collector has them.
const (
	// DefaultTerminatedThreshold is kube's --terminated-pod-gc-threshold.
	DefaultTerminatedThreshold = 12500
	// DefaultInterval is kube's gcCheckPeriod.
	DefaultInterval = 20 * time.Second
	// writeTimeout bounds each API call.
	writeTimeout = 30 * time.Second
)

// Config configures the collector.
type Config struct {
	// Client reads Nodes and deletes Pods. Required.
	Client kubernetes.Interface
	// Informers is the shared factory the collector registers its Pod and
	// Node informers on; the caller starts it. Required.
	Informers informers.SharedInformerFactory
	// TerminatedThreshold is how many terminated (Succeeded or Failed)
	// Pods may exist before the oldest are deleted; zero means
	// DefaultTerminatedThreshold, negative disables that collection.
	TerminatedThreshold int
	// Interval is the time between two collections; zero means
	// DefaultInterval.
	Interval time.Duration
	// Logger receives lifecycle and per-Pod messages; nil means
	// slog.Default().
	Logger *slog.Logger
}
