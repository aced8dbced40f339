package endpointslice

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// ControllerName is the value of the endpointslice.kubernetes.io/managed-by
// label on the slices this controller owns; kube's controller uses the
// same value, so kube tooling recognises them.
const ControllerName = "endpointslice-controller.k8s.io"

// Defaults of Config.
const (
	// DefaultWorkers is kube's --concurrent-service-endpoint-syncs.
	DefaultWorkers = 5
	// DefaultMaxEndpointsPerSlice is kube's --max-endpoints-per-slice.
	DefaultMaxEndpointsPerSlice = 100
)

const (
	// maxEndpointsPerSliceLimit is the API's limit on endpoints in a slice.
	maxEndpointsPerSliceLimit = 1000
	// maxEndpointsAddresses caps the addresses of a legacy Endpoints
	// object, as kube's endpoints controller does (maxCapacity).
	maxEndpointsAddresses = 1000
	// expectationTTL bounds how long a sync waits for the informer cache
	// to show this controller's own writes before it trusts the cache
	// anyway.
	expectationTTL = 15 * time.Second
)

// Config configures the controller. The zero value of each optional field
// means its default.
type Config struct {
	// Client writes EndpointSlices and Endpoints. Required.
	Client kubernetes.Interface
	// Informers is the shared factory New registers its informers on; the
	// caller starts it. Required.
	Informers informers.SharedInformerFactory
	// Workers is the number of Services synced at once; default
	// DefaultWorkers.
	Workers int
	// MaxEndpointsPerSlice caps the endpoints in one slice; default
	// DefaultMaxEndpointsPerSlice, at most 1000 (the API's limit).
	MaxEndpointsPerSlice int
	// BatchPeriod delays the sync that a pod change causes, so that the
	// changes of many pods in that period make one write (kube's
	// --endpointslice-updates-batch-period). Zero, the default, syncs at
	// once; Service changes always sync at once.
	BatchPeriod time.Duration
	// Logger receives lifecycle and per-Service messages; nil means
	// slog.Default().
	Logger *slog.Logger
}

// withDefaults fills in defaults and validates cfg.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Client == nil {
		return cfg, errors.New("endpointslice: Config.Client is required")
	}
	if cfg.Informers == nil {
		return cfg, errors.New("endpointslice: Config.Informers is required")
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Workers < 0 {
		return cfg, fmt.Errorf("endpointslice: Config.Workers must be positive, not %d", cfg.Workers)
	}
	if cfg.MaxEndpointsPerSlice == 0 {
		cfg.MaxEndpointsPerSlice = DefaultMaxEndpointsPerSlice
	}
	if cfg.MaxEndpointsPerSlice < 0 || cfg.MaxEndpointsPerSlice > maxEndpointsPerSliceLimit {
		return cfg, fmt.Errorf("endpointslice: Config.MaxEndpointsPerSlice must be 1..%d, not %d", maxEndpointsPerSliceLimit, cfg.MaxEndpointsPerSlice)
	}
	if cfg.BatchPeriod < 0 {
		return cfg, fmt.Errorf("endpointslice: Config.BatchPeriod must not be negative, not %v", cfg.BatchPeriod)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}
