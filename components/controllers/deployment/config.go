package deployment

import (
	"log/slog"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// DefaultWorkers is the number of Deployments synced at once when
// Config.Workers is zero.
const DefaultWorkers = 5

// EventComponent is the source of the controller's Events, as kube's
// Deployment controller names itself (kubectl describe's "From").
const EventComponent = "deployment-controller"

// EventReasonScalingReplicaSet is the reason of the Event recorded for
// every change of a ReplicaSet's size ("Scaled up replica set web-7d9
// from 0 to 3"); a failed create of the new ReplicaSet is recorded with
// ReasonFailedReplicaSetCreate.
const EventReasonScalingReplicaSet = "ScalingReplicaSet"

// Config configures the controller.
type Config struct {
	// Client writes ReplicaSets and Deployments. Required.
	Client kubernetes.Interface
	// Informers is the shared factory the controller registers its
	// Deployment, ReplicaSet and Pod informers on; the caller starts it.
	// Required.
	Informers informers.SharedInformerFactory
	// Events, when set, receives the controller's Events about
	// Deployments (ScalingReplicaSet, ReplicaSetCreateError), recorded as
	// EventComponent; the controller manager shares one broadcaster among
	// all its controllers. Nil records none.
	Events record.EventBroadcaster
	// Workers is how many Deployments are synced concurrently; zero means
	// DefaultWorkers.
	Workers int
	// Logger receives lifecycle and per-item messages; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Annotations and labels the controller writes, as kube names them.
const (
	// LabelPodTemplateHash is added to a ReplicaSet's selector, labels and
	// pod template labels so that the ReplicaSets of one Deployment never
	// select each other's pods.
	LabelPodTemplateHash = "pod-template-hash"
	// AnnotationRevision is the rollout revision, on each ReplicaSet and,
	// copied from the newest, on the Deployment.
	AnnotationRevision = "deployment.kubernetes.io/revision"
	// AnnotationRevisionHistory lists the revisions a ReplicaSet had
	// before a rollback brought it back.
	AnnotationRevisionHistory = "deployment.kubernetes.io/revision-history"
	// AnnotationDesiredReplicas is the Deployment's spec.replicas when the
	// ReplicaSet was last scaled.
	AnnotationDesiredReplicas = "deployment.kubernetes.io/desired-replicas"
	// AnnotationMaxReplicas is spec.replicas plus maxSurge when the
	// ReplicaSet was last scaled; proportional scaling divides by it.
	AnnotationMaxReplicas = "deployment.kubernetes.io/max-replicas"

	annotationLastApplied = "kubectl.kubernetes.io/last-applied-configuration"
	annotationRollbackTo  = "deprecated.deployment.rollback.to"
)

// Reasons of the Deployment conditions, as kube and kubectl know them.
const (
	ReasonNewReplicaSetCreated       = "NewReplicaSetCreated"
	ReasonFoundNewReplicaSet         = "FoundNewReplicaSet"
	ReasonReplicaSetUpdated          = "ReplicaSetUpdated"
	ReasonNewReplicaSetAvailable     = "NewReplicaSetAvailable"
	ReasonProgressDeadlineExceeded   = "ProgressDeadlineExceeded"
	ReasonFailedReplicaSetCreate     = "ReplicaSetCreateError"
	ReasonDeploymentPaused           = "DeploymentPaused"
	ReasonDeploymentResumed          = "DeploymentResumed"
	ReasonMinimumReplicasAvailable   = "MinimumReplicasAvailable"
	ReasonMinimumReplicasUnavailable = "MinimumReplicasUnavailable"
)

// Keys of log attributes.
const (
	logKeyComponent  = "component"
	logKeyObject     = "object"
	logKeyWorkers    = "workers"
	logKeyError      = "err"
	logKeyReplicaSet = "replicaset"
	logKeyReplicas   = "replicas"
)
