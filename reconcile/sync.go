package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"kiln.dev/kiln/sources"
)

// syncOutcome is what one sync did; err is set when it applied nothing
// (or, rarely, stopped part way after a successful dry run).
type syncOutcome struct {
	record    SyncRecord
	inventory []InventoryEntry
	objects   map[string]Object
	appliedRV map[string]string
	err       error
}

// SyncError is a failed sync: the file and object it concerns, and why.
type SyncError struct {
	Path   string
	Object string
	Err    error
}

func (e *SyncError) Error() string {
	switch {
	case e.Path != "" && e.Object != "":
		return fmt.Sprintf("%s: %s: %v", e.Path, e.Object, e.Err)
	case e.Path != "":
		return fmt.Sprintf("%s: %v", e.Path, e.Err)
	}
	return e.Err.Error()
}

func (e *SyncError) Unwrap() error { return e.Err }

// ErrEmptySnapshot refuses a snapshot without objects when the previous
// sync applied some: an empty tree is far more often a broken fetch or a
// bad commit than a wish to delete everything (argo-cd#18212).
var ErrEmptySnapshot = errors.New("the snapshot has no objects and would prune everything; set allowEmpty: true on the source to allow it")

// sync applies one snapshot as a transaction: render and validate
// everything (a server-side dry run of every object) before the first
// write; on any error nothing is applied and nothing pruned. Then apply in
// order, and prune what left the repo, last.
func (s *sourceLoop) sync(ctx context.Context, snap *sources.Snapshot, prev []InventoryEntry) syncOutcome {
	start := time.Now()
	out := syncOutcome{record: SyncRecord{Revision: snap.Revision, Start: metav1.NewTime(start)}}
	fail := func(err error) syncOutcome {
		out.err = err
		out.record.Error = err.Error()
		var se *SyncError
		var re *RenderError
		if errors.As(err, &se) {
			out.record.File = se.Path
		} else if errors.As(err, &re) && len(re.Problems) > 0 {
			out.record.File = re.Problems[0].Path
		}
		out.record.DurationMS = time.Since(start).Milliseconds()
		return out
	}
	objs, err := Render(snap, RenderOptions{DefaultNamespace: s.spec.Namespace, Scope: s.r.scope})
	if err != nil {
		return fail(err)
	}
	if len(objs) == 0 && len(prev) > 0 && !s.spec.AllowEmpty {
		return fail(ErrEmptySnapshot)
	}
	objs = withoutScaledReplicas(objs)
	newNamespaces := map[string]bool{}
	for _, o := range objs {
		if o.Obj.GetAPIVersion() == "v1" && o.Obj.GetKind() == "Namespace" {
			newNamespaces[o.Obj.GetName()] = true
		}
	}
	for _, o := range objs {
		if err := s.dryRun(ctx, o, snap.Revision, newNamespaces); err != nil {
			return fail(&SyncError{Path: o.Path, Object: objectName(o.Obj), Err: err})
		}
	}
	out.objects = make(map[string]Object, len(objs))
	out.appliedRV = make(map[string]string, len(objs))
	applied := map[string]bool{}
	for _, o := range objs {
		action, live, err := s.applier.apply(ctx, o, snap.Revision, false)
		if err != nil {
			return fail(&SyncError{Path: o.Path, Object: objectName(o.Obj), Err: err})
		}
		switch action {
		case ActionCreated:
			out.record.Created++
		case ActionConfigured:
			out.record.Configured++
		default:
			out.record.Unchanged++
		}
		key := KeyOf(o.Obj)
		applied[key] = true
		out.objects[key] = o
		out.appliedRV[key] = live.GetResourceVersion()
		gvk := live.GroupVersionKind()
		out.inventory = append(out.inventory, InventoryEntry{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind,
			Namespace: live.GetNamespace(), Name: live.GetName(), UID: string(live.GetUID())})
	}
	if s.spec.Prune {
		// Prune in reverse inventory order: workloads before the
		// namespaces that hold them.
		for _, e := range slices.Backward(prev) {
			if applied[inventoryKey(e)] {
				continue
			}
			deleted, err := s.applier.prune(ctx, e)
			if err != nil {
				return fail(&SyncError{Object: e.Kind + " " + nsName(e.Namespace, e.Name), Err: fmt.Errorf("prune: %w", err)})
			}
			if deleted {
				out.record.Pruned++
			}
		}
	}
	out.record.DurationMS = time.Since(start).Milliseconds()
	return out
}

// dryRun validates one object server-side. An object in a namespace that
// this same snapshot creates is validated in "default", since its own
// namespace does not exist before the apply.
func (s *sourceLoop) dryRun(ctx context.Context, o Object, revision string, newNamespaces map[string]bool) error {
	_, _, err := s.applier.apply(ctx, o, revision, true)
	if err == nil || !apierrors.IsNotFound(err) || !newNamespaces[o.Obj.GetNamespace()] {
		return err
	}
	c := o
	c.Obj = o.Obj.DeepCopy()
	c.Obj.SetNamespace("default")
	c.Obj.SetName("kiln-dry-run-" + o.Obj.GetName())
	if len(c.Obj.GetName()) > 63 {
		c.Obj.SetName(c.Obj.GetName()[:63])
	}
	_, _, err = s.applier.apply(ctx, c, revision, true)
	return err
}

// inventoryKey matches KeyOf for an inventory entry.
func inventoryKey(e InventoryEntry) string {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: e.Group, Version: e.Version, Kind: e.Kind})
	u.SetNamespace(e.Namespace)
	u.SetName(e.Name)
	return KeyOf(u)
}

func objectName(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + nsName(u.GetNamespace(), u.GetName())
}

func nsName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// setCondition sets one condition of the status.
func setCondition(st *SourceStatus, typ string, ok bool, reason, msg string, gen int64) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen})
}

// withoutScaledReplicas drops spec.replicas from workloads that a
// HorizontalPodAutoscaler of the same snapshot scales: the autoscaler owns
// that field, and reverting it would fight it (Argo CD users add
// ignoreDifferences for the same reason).
func withoutScaledReplicas(objs []Object) []Object {
	scaled := map[string]bool{}
	for _, o := range objs {
		if o.Obj.GetKind() != "HorizontalPodAutoscaler" || o.Obj.GroupVersionKind().Group != "autoscaling" {
			continue
		}
		ref, _, _ := unstructured.NestedStringMap(o.Obj.Object, "spec", "scaleTargetRef")
		scaled[o.Obj.GetNamespace()+"/"+ref["kind"]+"/"+ref["name"]] = true
	}
	if len(scaled) == 0 {
		return objs
	}
	out := make([]Object, len(objs))
	for i, o := range objs {
		out[i] = o
		if scaled[o.Obj.GetNamespace()+"/"+o.Obj.GetKind()+"/"+o.Obj.GetName()] {
			out[i].Obj = o.Obj.DeepCopy()
			unstructured.RemoveNestedField(out[i].Obj.Object, "spec", "replicas")
			ann := out[i].Obj.GetAnnotations()
			if ann == nil {
				ann = map[string]string{}
			}
			ann[AnnotationReplicas] = ReplicasAutoscaled
			out[i].Obj.SetAnnotations(ann)
		}
	}
	return out
}
