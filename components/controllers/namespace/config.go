package namespace

import (
	"log/slog"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Defaults of Config.
const (
	// DefaultWorkers is how many namespaces are emptied at once.
	DefaultWorkers = 5
	// DefaultMinRetry and DefaultMaxRetry bound the per-namespace backoff
	// while content remains or a step fails: nothing announces that the
	// last pod of a namespace is gone, so the controller polls.
	DefaultMinRetry = 100 * time.Millisecond
	DefaultMaxRetry = 10 * time.Second
)

// Config configures the controller.
type Config struct {
	// Client reads namespaces, writes their status and finalizes them.
	// Required.
	Client kubernetes.Interface
	// Dynamic lists and deletes the content of every resource. Required.
	Dynamic dynamic.Interface
	// Discovery lists the namespaced resources; nil means
	// Client.Discovery().
	Discovery discovery.DiscoveryInterface
	// Informers is the shared factory; New registers the Namespace
	// informer on it and the caller starts the factory. Required.
	Informers informers.SharedInformerFactory
	// Workers is how many namespaces are processed at once; zero means
	// DefaultWorkers.
	Workers int
	// MinRetry and MaxRetry bound the backoff of a namespace whose content
	// remains or whose pass failed; zero means DefaultMinRetry and
	// DefaultMaxRetry.
	MinRetry, MaxRetry time.Duration
	// Logger receives per-namespace failures; nil means slog.Default().
	Logger *slog.Logger
}
