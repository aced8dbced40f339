package job

import (
	"log/slog"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// Defaults and fixed tunables, as kube's Job controller has them.
const (
	// DefaultWorkers is the number of Jobs synced at once when
	// Config.Workers is zero (kube's --concurrent-job-syncs).
	DefaultWorkers = 5
	// DefaultBackoffLimit is used when a Job's spec.backoffLimit is unset
	// (the API defaults it; this only guards a Job stored without it).
	DefaultBackoffLimit = 6
	// BurstPods bounds the creates of one sync; the rest wait for the next.
	BurstPods = 500
	// SlowStartInitialBatchSize is the first batch of creates; each batch
	// that fully succeeds doubles the next.
	SlowStartInitialBatchSize = 1
	// ExpectationsTimeout is how long a sync waits for the watch to show
	// its own creates and deletes before acting again regardless.
	ExpectationsTimeout = 5 * time.Minute
)

// Labels the controller puts on (and the API's admission defaults into the
// template and selector of) every Job's Pods, as kube does.
const (
	LabelControllerUID       = "batch.kubernetes.io/controller-uid"
	LabelJobName             = "batch.kubernetes.io/job-name"
	LabelLegacyControllerUID = "controller-uid"
	LabelLegacyJobName       = "job-name"
)

// EventComponent is the source of the controller's Events, as kube's Job
// controller names itself (kubectl describe's "From").
const EventComponent = "job-controller"

// Event reasons, as kube's Job controller and pod control record them. A
// failed Job's Event has the reason of its Failed condition
// (BackoffLimitExceeded, DeadlineExceeded).
const (
	EventReasonSuccessfulCreate = "SuccessfulCreate"
	EventReasonFailedCreate     = "FailedCreate"
	EventReasonSuccessfulDelete = "SuccessfulDelete"
	EventReasonFailedDelete     = "FailedDelete"
	EventReasonCompleted        = "Completed"
)

// Config configures the controller.
type Config struct {
	// Client creates and deletes Pods and writes Job status. Required.
	Client kubernetes.Interface
	// Informers is the shared factory the controller registers its Job and
	// Pod informers on; the caller starts it. Required.
	Informers informers.SharedInformerFactory
	// Events, when set, receives the controller's Events about Jobs
	// (SuccessfulCreate, FailedCreate, SuccessfulDelete, FailedDelete,
	// Completed, BackoffLimitExceeded, DeadlineExceeded), recorded as
	// EventComponent; the controller manager shares one broadcaster among
	// all its controllers. Nil records none.
	Events record.EventBroadcaster
	// Workers is how many Jobs are synced concurrently; zero means
	// DefaultWorkers.
	Workers int
	// Logger receives lifecycle and per-item messages; nil means
	// slog.Default().
	Logger *slog.Logger
}
