package replicaset

import (
	"log/slog"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// Defaults and fixed tunables, as kube's ReplicaSet controller has them.
const (
	// DefaultWorkers is the number of ReplicaSets synced at once when
	// Config.Workers is zero.
	DefaultWorkers = 5
	// BurstReplicas bounds the creates or deletes of one sync; the rest
	// wait for the next sync, as kube's BurstReplicas.
	BurstReplicas = 500
	// SlowStartInitialBatchSize is the first batch of creates; each batch
	// that fully succeeds doubles the next (1, 2, 4, ...), so a template
	// that always fails costs one request, not hundreds.
	SlowStartInitialBatchSize = 1
	// ExpectationsTimeout is how long a sync waits for the watch to show
	// its own creates and deletes before acting again regardless.
	ExpectationsTimeout = 5 * time.Minute
)

// EventComponent is the source of the controller's Events, as kube's
// ReplicaSet controller names itself (kubectl describe's "From").
const EventComponent = "replicaset-controller"

// Event reasons, as kube's pod control records them.
const (
	EventReasonSuccessfulCreate = "SuccessfulCreate"
	EventReasonFailedCreate     = "FailedCreate"
	EventReasonSuccessfulDelete = "SuccessfulDelete"
	EventReasonFailedDelete     = "FailedDelete"
)

// Config configures the controller.
type Config struct {
	// Client creates, deletes and patches Pods and writes ReplicaSet
	// status. Required.
	Client kubernetes.Interface
	// Informers is the shared factory the controller registers its
	// ReplicaSet and Pod informers on; the caller starts it. Required.
	Informers informers.SharedInformerFactory
	// Events, when set, receives the controller's Events about
	// ReplicaSets (SuccessfulCreate, FailedCreate, SuccessfulDelete,
	// FailedDelete), recorded as EventComponent; the controller manager
	// shares one broadcaster among all its controllers. Nil records none.
	Events record.EventBroadcaster
	// Workers is how many ReplicaSets are synced concurrently; zero means
	// DefaultWorkers.
	Workers int
	// Logger receives lifecycle and per-item messages; nil means
	// slog.Default().
	Logger *slog.Logger
}
