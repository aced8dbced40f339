package reconcile

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The Source kind (gitops.kiln.dev/v1alpha1, cluster-scoped): one per
// configured source. kiln writes its spec from the config and its status
// after every sync; people read it with `kubectl get sources`.
var (
	// SourceGVR is the resource the reconciler reads and writes.
	SourceGVR = schema.GroupVersionResource{Group: "gitops.kiln.dev", Version: "v1alpha1", Resource: "sources"}
	// SourceGVK is its kind.
	SourceGVK = schema.GroupVersionKind{Group: "gitops.kiln.dev", Version: "v1alpha1", Kind: "Source"}
)

// Labels and annotations on every object applied from a source (DESIGN.md).
const (
	LabelSource        = "gitops.kiln.dev/source"
	AnnotationPath     = "gitops.kiln.dev/path"
	AnnotationRevision = "gitops.kiln.dev/revision"
	// AnnotationLastApplied holds the configuration kiln last applied, the
	// base of the three-way patch that leaves fields other writers own
	// alone. Secrets do not get it: their values stay out of annotations.
	AnnotationLastApplied = "gitops.kiln.dev/last-applied"
	// AnnotationPrune set to "disabled" keeps an object when it leaves the
	// repo (Flux's kustomize.toolkit.fluxcd.io/prune).
	AnnotationPrune = "gitops.kiln.dev/prune"
	// AnnotationReplicas set to ReplicasAutoscaled marks a workload whose
	// replicas a HorizontalPodAutoscaler of the same source owns.
	AnnotationReplicas = "gitops.kiln.dev/replicas"
	// ReplicasAutoscaled is AnnotationReplicas' value.
	ReplicasAutoscaled = "autoscaled"
)

// Condition types of a Source.
const (
	ConditionReady   = "Ready"
	ConditionHealthy = "Healthy"
	ConditionStalled = "Stalled"
)

// MaxHistory is how many syncs a Source's status keeps.
const MaxHistory = 20

// Source is the Go form of the Source object.
type Source struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SourceSpec   `json:"spec"`
	Status            SourceStatus `json:"status,omitempty"`
}

// SourceSpec mirrors the source's entry in kiln.yaml.
type SourceSpec struct {
	Kind       string `json:"kind"`
	Path       string `json:"path,omitempty"`
	URL        string `json:"url,omitempty"`
	Ref        string `json:"ref,omitempty"`
	Subpath    string `json:"subpath,omitempty"`
	Interval   string `json:"interval,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Prune      bool   `json:"prune"`
	Drift      string `json:"drift,omitempty"`
	AllowEmpty bool   `json:"allowEmpty,omitempty"`
	// Rollback is RollbackAuto or empty (rollback.go).
	Rollback string `json:"rollback,omitempty"`
}

// SourceStatus is what the last syncs did.
type SourceStatus struct {
	ObservedGeneration    int64   `json:"observedGeneration,omitempty"`
	LastAppliedRevision   string  `json:"lastAppliedRevision,omitempty"`
	LastAttemptedRevision string  `json:"lastAttemptedRevision,omitempty"`
	LastAppliedCommit     *Commit `json:"lastAppliedCommit,omitempty"`
	// LastHealthyRevision is the last revision seen healthy, which
	// rollback: auto goes back to, also after a restart or on another
	// server (sources.Revisions).
	LastHealthyRevision string             `json:"lastHealthyRevision,omitempty"`
	Conditions          []metav1.Condition `json:"conditions,omitempty"`
	Inventory           []InventoryEntry   `json:"inventory,omitempty"`
	History             []SyncRecord       `json:"history,omitempty"`
}

// Commit is the commit a revision came from (git sources).
type Commit struct {
	Hash    string      `json:"hash,omitempty"`
	Message string      `json:"message,omitempty"`
	Author  string      `json:"author,omitempty"`
	Time    metav1.Time `json:"time,omitempty"`
}

// InventoryEntry is one object a successful sync applied. Prune deletes
// only objects whose UID is recorded here: a copied label is not
// ownership.
type InventoryEntry struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

// SyncRecord is one sync in the history.
type SyncRecord struct {
	// Revision is empty for a fetch that failed before a revision was read.
	Revision   string      `json:"revision"`
	Start      metav1.Time `json:"start"`
	DurationMS int64       `json:"durationMs"`
	Created    int         `json:"created"`
	Configured int         `json:"configured"`
	Unchanged  int         `json:"unchanged"`
	Pruned     int         `json:"pruned"`
	Error      string      `json:"error,omitempty"`
	// File names the file of the first problem when the sync failed.
	File string `json:"file,omitempty"`
	// RollbackOf, on a sync that re-applied the last healthy revision,
	// names the revision that failed its health check.
	RollbackOf string `json:"rollbackOf,omitempty"`
}
