package persistentvolume

import (
	"log/slog"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// DefaultWorkers is how many claims and volumes are synced at once.
const DefaultWorkers = 2

// EventComponent is the source of the controller's Events, as kube's
// binder names itself.
const EventComponent = "persistentvolume-controller"

// Annotations kube's binder and scheduler use, with kube's meaning.
const (
	AnnBindCompleted     = "pv.kubernetes.io/bind-completed"
	AnnBoundByController = "pv.kubernetes.io/bound-by-controller"
	AnnProvisionedBy     = "pv.kubernetes.io/provisioned-by"
	AnnSelectedNode      = "volume.kubernetes.io/selected-node"
)

// Event reasons, kube's.
const (
	EventReasonProvisioningSucceeded = "ProvisioningSucceeded"
	EventReasonProvisioningFailed    = "ProvisioningFailed"
	EventReasonWaitForFirstConsumer  = "WaitForFirstConsumer"
	EventReasonExternalProvisioning  = "ExternalProvisioning"
	EventReasonFailedBinding         = "FailedBinding"
	EventReasonClaimLost             = "ClaimLost"
	EventReasonVolumeFailedRecycle   = "VolumeFailedRecycle"
)

// Config configures the controller.
type Config struct {
	// Client writes PVCs, PVs and their status. Required.
	Client kubernetes.Interface
	// Informers is the shared factory the controller registers its PVC,
	// PV, StorageClass and Node informers on; the caller starts it.
	// Required.
	Informers informers.SharedInformerFactory
	// Events, when set, receives the controller's Events about claims and
	// volumes, recorded as EventComponent. Nil records none.
	Events record.EventBroadcaster
	// Workers is how many claims and volumes are synced at once; zero
	// means DefaultWorkers.
	Workers int
	// Logger receives lifecycle and per-item messages; nil means
	// slog.Default().
	Logger *slog.Logger
}
