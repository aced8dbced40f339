package garbagecollector

import (
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Defaults of Config.
const (
	// DefaultWorkers is how many objects are settled at once.
	DefaultWorkers = 10
	// DefaultDiscoveryPeriod is how often new and removed kinds are found.
	DefaultDiscoveryPeriod = 30 * time.Second
	// absentOwners bounds the cache of owners known to be gone.
	absentOwners = 1024
	// notSyncedRetry is how soon an item that needs a complete index is
	// retried while informers are still listing.
	notSyncedRetry = time.Second
)

// ignoredResources are never watched: events are many, short-lived and
// owned by nothing that matters (kube's DefaultIgnoredResources).
var ignoredResources = map[schema.GroupResource]bool{
	{Group: "", Resource: "events"}:              true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

// Config configures the garbage collector.
type Config struct {
	// Client is the typed client; its discovery is the default for
	// Discovery. Client or Discovery is required.
	Client kubernetes.Interface
	// Dynamic reads, patches and deletes objects of every resource.
	// Required.
	Dynamic dynamic.Interface
	// Discovery finds the resources to watch; nil means
	// Client.Discovery().
	Discovery discovery.DiscoveryInterface
	// Workers is how many objects are settled at once; zero means
	// DefaultWorkers.
	Workers int
	// DiscoveryPeriod is how often discovery runs again to watch new
	// kinds and drop removed ones; zero means DefaultDiscoveryPeriod.
	DiscoveryPeriod time.Duration
	// Logger receives lifecycle messages and per-object failures; nil
	// means slog.Default().
	Logger *slog.Logger
}
