package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
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
	// hashes maps every object's key to its contentHash.
	hashes map[string]string
	err    error
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
// everything (a server-side dry run of every object the last good sync did
// not leave as it is) before the first write; on any error nothing is
// applied and nothing pruned. Then apply in order, and prune what left the
// repo, last.
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
	objs, err := Render(snap, RenderOptions{DefaultNamespace: s.spec.Namespace, Scope: memoScope(s.r.scope), cache: &s.parsed})
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
	// An object the last good sync applied with the same content is not
	// sent again: drift in it is the informers' to correct (watch.go),
	// so a one-file change costs one dry run and one apply, not a dry run
	// and an apply of every object. With drift ignored, every sync still
	// re-applies everything, as it always did.
	prevEntry := make(map[string]InventoryEntry, len(prev))
	for _, e := range prev {
		prevEntry[inventoryKey(e)] = e
	}
	skip := s.spec.Drift != "ignore"
	keys := make([]string, len(objs))
	out.hashes = make(map[string]string, len(objs))
	var todo, namespaces, others []int
	for i, o := range objs {
		key := KeyOf(o.Obj)
		h := s.hashOf(key, o)
		keys[i], out.hashes[key] = key, h
		if _, ok := prevEntry[key]; ok && skip && h != "" && s.appliedHash[key] == h {
			continue
		}
		todo = append(todo, i)
		if isNamespace(o.Obj) {
			namespaces = append(namespaces, i)
		} else {
			others = append(others, i)
		}
	}
	// Dry runs write nothing, so they run concurrently. Namespaces go
	// first, so that an object in a namespace that does not exist yet is
	// validated in "default" without asking. absent[i] says the dry run
	// found no object i: its apply creates without reading first.
	absent := make([]bool, len(objs))
	dryRun := func(idx []int, absentNS map[string]bool) error {
		i, err := each(ctx, idx, func(i int) (err error) {
			absent[i], err = s.dryRun(ctx, objs[i], snap.Revision, newNamespaces, absentNS[objs[i].Obj.GetNamespace()])
			return err
		})
		if err != nil {
			return &SyncError{Path: objs[i].Path, Object: objectName(objs[i].Obj), Err: err}
		}
		return nil
	}
	if err := dryRun(namespaces, nil); err != nil {
		return fail(err)
	}
	absentNS := map[string]bool{}
	for _, i := range namespaces {
		absentNS[objs[i].Obj.GetName()] = absent[i]
	}
	if err := dryRun(others, absentNS); err != nil {
		return fail(err)
	}
	// From the first write until this sync succeeds, objects may differ
	// from what the hashes say: a failed sync is followed by a full one.
	s.appliedHash = nil
	// Apply in order; objects of one kind, which do not depend on each
	// other, concurrently. A failure stops the sync after the objects
	// already under way.
	actions := make([]string, len(objs))
	lives := make([]*unstructured.Unstructured, len(objs))
	for lo := 0; lo < len(todo); {
		gk := objs[todo[lo]].Obj.GroupVersionKind().GroupKind()
		hi := lo + 1
		for hi < len(todo) && objs[todo[hi]].Obj.GroupVersionKind().GroupKind() == gk {
			hi++
		}
		i, err := each(ctx, todo[lo:hi], func(i int) (err error) {
			if absent[i] {
				actions[i], lives[i], err = s.applier.applyAbsent(ctx, objs[i], snap.Revision, false)
			} else {
				actions[i], lives[i], err = s.applier.apply(ctx, objs[i], snap.Revision, false)
			}
			return err
		})
		if err != nil {
			return fail(&SyncError{Path: objs[i].Path, Object: objectName(objs[i].Obj), Err: err})
		}
		lo = hi
	}
	out.objects = make(map[string]Object, len(objs))
	out.appliedRV = make(map[string]string, len(objs))
	applied := map[string]bool{}
	for i, o := range objs {
		key := keys[i]
		applied[key] = true
		out.objects[key] = o
		live := lives[i]
		if live == nil { // skipped: as the last good sync left it
			out.record.Unchanged++
			out.appliedRV[key] = s.appliedRV[key]
			out.inventory = append(out.inventory, prevEntry[key])
			continue
		}
		switch actions[i] {
		case ActionCreated:
			out.record.Created++
		case ActionConfigured:
			out.record.Configured++
		default:
			out.record.Unchanged++
		}
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

// dryRun validates one object server-side and reports whether the object
// does not exist yet. An object in a namespace that this same snapshot
// creates is validated in "default", since its own namespace does not
// exist before the apply; nsAbsent says that namespace is known not to
// exist, which saves asking.
func (s *sourceLoop) dryRun(ctx context.Context, o Object, revision string, newNamespaces map[string]bool, nsAbsent bool) (bool, error) {
	if !nsAbsent {
		action, _, err := s.applier.apply(ctx, o, revision, true)
		if err == nil || !apierrors.IsNotFound(err) || !newNamespaces[o.Obj.GetNamespace()] {
			return action == ActionCreated, err
		}
	}
	c := o
	c.Obj = o.Obj.DeepCopy()
	c.Obj.SetNamespace("default")
	c.Obj.SetName("kiln-dry-run-" + o.Obj.GetName())
	if len(c.Obj.GetName()) > 63 {
		c.Obj.SetName(c.Obj.GetName()[:63])
	}
	_, _, err := s.applier.applyAbsent(ctx, c, revision, true)
	return true, err
}

// applyWorkers bounds the requests one sync has in flight.
const applyWorkers = 16

// each calls fn for the indexes in idx from up to applyWorkers goroutines,
// in order of idx, and stops handing them out after the first failure. It
// returns the failed index that comes first in idx and its error: every
// index before a failed one was handed out, so which one that is does not
// depend on timing.
func each(ctx context.Context, idx []int, fn func(i int) error) (int, error) {
	errs := make([]error, len(idx))
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(applyWorkers, len(idx)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1)) - 1
				if j >= len(idx) || failed.Load() {
					return
				}
				if errs[j] = ctx.Err(); errs[j] == nil {
					errs[j] = fn(idx[j])
				}
				if errs[j] != nil {
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	for j, err := range errs {
		if err != nil {
			return idx[j], err
		}
	}
	return 0, nil
}

// memoScope asks scope once per kind and version: Render asks for every
// object, and the REST mapper's answer takes locks and lookups.
func memoScope(scope ScopeFunc) ScopeFunc {
	type answer struct{ namespaced, known bool }
	seen := map[schema.GroupVersionKind]answer{}
	return func(gvk schema.GroupVersionKind) (bool, bool) {
		a, ok := seen[gvk]
		if !ok {
			a.namespaced, a.known = scope(gvk)
			seen[gvk] = a
		}
		return a.namespaced, a.known
	}
}

func isNamespace(u *unstructured.Unstructured) bool {
	return u.GetAPIVersion() == "v1" && u.GetKind() == "Namespace"
}

// contentHash identifies what kiln would write for o, but for the
// revision; "" if o cannot be encoded (it is then never skipped).
func contentHash(o Object) string {
	b, err := json.Marshal(o.Obj.Object)
	if err != nil {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(o.Path))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// hashOf is contentHash(o), taken from the last good sync when o is the
// very object that sync hashed: Render hands out the same object for a
// document that did not change (checkedDoc), and nothing changes an object
// after Render (apply and the dry runs copy it first), so the same map at
// the same path has the same hash. This keeps a one-file change from
// encoding every object of the tree again (issue 3).
func (s *sourceLoop) hashOf(key string, o Object) string {
	if prev, ok := s.objects[key]; ok && prev.Path == o.Path && sameMap(prev.Obj.Object, o.Obj.Object) {
		if h, ok := s.appliedHash[key]; ok {
			return h
		}
	}
	return contentHash(o)
}

// sameMap reports whether a and b are one map (not equal maps).
func sameMap(a, b map[string]any) bool {
	return a != nil && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// inventoryKey matches KeyOf for an inventory entry. It builds the key
// directly: going through an Unstructured, as it once did, cost a few
// milliseconds per sync of a thousand objects.
func inventoryKey(e InventoryEntry) string {
	return e.Group + "/" + e.Kind + "/" + e.Namespace + "/" + e.Name
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
