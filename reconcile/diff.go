package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// DiffOptions configures Diff.
type DiffOptions struct {
	// Source is the name of the Source the objects would be synced by; it
	// becomes their source label, as in a sync. Required.
	Source string
	// Revision goes into the revision annotation of the dry run. It never
	// counts as a change.
	Revision string
	// Inventory is the Source's status.inventory: what its last successful
	// sync applied.
	Inventory []InventoryEntry
	// Prune reports inventory entries that are no longer rendered, as a
	// sync with prune enabled would delete them.
	Prune bool
	// AllowEmpty is the Source's allowEmpty: without it, objs empty and
	// an inventory that is not fails with ErrEmptySnapshot, as the sync
	// does.
	AllowEmpty bool
	// Mapper maps kinds to resources; nil means discovery through the
	// rest.Config.
	Mapper meta.RESTMapper
}

// DiffResult is what a sync of the objects would do. Create and Change
// are in apply order, Prune in the order a sync deletes.
type DiffResult struct {
	Create []DiffObject
	Change []DiffObject
	Prune  []DiffObject
}

// Empty reports whether a sync would change nothing.
func (r *DiffResult) Empty() bool {
	return len(r.Create) == 0 && len(r.Change) == 0 && len(r.Prune) == 0
}

// DiffObject is one object a sync would create, change or prune.
type DiffObject struct {
	// Object names it, like "Deployment shop/web" or "Namespace shop".
	Object string
	// Path is the file it comes from; for a prune, the file it was last
	// applied from (its path annotation), if known.
	Path string
	// Fields are the fields a change would set, sorted by path; empty
	// for creates and prunes.
	Fields []FieldDiff
}

// FieldDiff is one leaf field that would change.
type FieldDiff struct {
	// Field is the field path: "spec.replicas",
	// "spec.template.spec.containers[0].image",
	// `metadata.labels["app.kubernetes.io/name"]`.
	Field string
	// Live and Desired are the JSON values before and after the sync; ""
	// means the field is absent on that side.
	Live, Desired string
	// Redacted means the values are withheld (a Secret's data, kiln's
	// last-applied annotation): Live and Desired are then "" or
	// "(redacted)", saying only which side has the field.
	Redacted bool
}

// redactedValue stands for a value Diff does not show.
const redactedValue = "(redacted)"

// Diff reports what a sync of objs (rendered for source opts.Source)
// would create, change and prune, without writing anything. It goes the
// sync's way: every object is sent through the applier's three-way patch
// as a server-side dry run (so admission, defaulting and validation run
// as they would), and a change is the difference between the dry run's
// result and the live object. Values of a Secret's data never appear in
// the result. An object the server refuses fails Diff with a *SyncError
// naming its file, as it would fail the sync. What the sync does to objs
// before applying them (it leaves autoscaled replicas alone), Diff does
// too.
func Diff(ctx context.Context, cfg *rest.Config, objs []Object, opts DiffOptions) (*DiffResult, error) {
	if opts.Source == "" {
		return nil, errors.New("diff: source is required")
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	mapper := opts.Mapper
	if mapper == nil {
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("diff: %w", err)
		}
		mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	}
	if len(objs) == 0 && len(opts.Inventory) > 0 && !opts.AllowEmpty {
		return nil, ErrEmptySnapshot
	}
	objs = withoutScaledReplicas(objs)
	a := &applier{dyn: dyn, mapper: mapper, source: opts.Source}
	res := &DiffResult{}
	newNamespaces := map[string]bool{}
	for _, o := range objs {
		if o.Obj.GetAPIVersion() == "v1" && o.Obj.GetKind() == "Namespace" {
			newNamespaces[o.Obj.GetName()] = true
		}
	}
	rendered := map[string]bool{}
	for _, o := range objs {
		rendered[KeyOf(o.Obj)] = true
		d, err := a.diffObject(ctx, o, opts.Revision, newNamespaces)
		if err != nil {
			return nil, &SyncError{Path: o.Path, Object: objectName(o.Obj), Err: err}
		}
		switch {
		case d == nil:
		case d.Fields == nil:
			res.Create = append(res.Create, *d)
		default:
			res.Change = append(res.Change, *d)
		}
	}
	if !opts.Prune {
		return res, nil
	}
	for _, e := range slices.Backward(opts.Inventory) {
		if rendered[inventoryKey(e)] {
			continue
		}
		_, live, err := a.prunable(ctx, e)
		if err != nil {
			return nil, &SyncError{Object: e.Kind + " " + nsName(e.Namespace, e.Name), Err: fmt.Errorf("prune: %w", err)}
		}
		if live != nil {
			res.Prune = append(res.Prune, DiffObject{Object: objectName(live), Path: live.GetAnnotations()[AnnotationPath]})
		}
	}
	return res, nil
}

// diffObject returns a create (nil Fields), a change, or nil when the
// sync would leave the object as it is.
func (a *applier) diffObject(ctx context.Context, o Object, revision string, newNamespaces map[string]bool) (*DiffObject, error) {
	create := &DiffObject{Object: objectName(o.Obj), Path: o.Path}
	// A kind the cluster does not serve fails here, as it fails the
	// sync's dry run.
	ri, _, err := a.client(o.Obj)
	if err != nil {
		return nil, err
	}
	live, err := ri.Get(ctx, o.Obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return create, a.dryRunCreate(ctx, o, revision, newNamespaces)
	}
	if err != nil {
		return nil, err
	}
	action, out, err := a.apply(ctx, o, revision, true)
	if err != nil {
		return nil, err
	}
	switch action {
	case ActionCreated:
		// Deleted since the Get.
		return create, nil
	case ActionUnchanged:
		return nil, nil
	}
	fields := fieldDiffs(live, out)
	if len(fields) == 0 {
		// The patch would write, but nothing a reader sees would differ.
		return nil, nil
	}
	return &DiffObject{Object: create.Object, Path: o.Path, Fields: fields}, nil
}

// dryRunCreate validates a new object server-side. An object in a
// namespace the same snapshot creates is validated in "default", as the
// sync's dry run does, since its namespace does not exist yet.
func (a *applier) dryRunCreate(ctx context.Context, o Object, revision string, newNamespaces map[string]bool) error {
	_, _, err := a.apply(ctx, o, revision, true)
	if err == nil || !apierrors.IsNotFound(err) || !newNamespaces[o.Obj.GetNamespace()] {
		return err
	}
	c := o
	c.Obj = o.Obj.DeepCopy()
	c.Obj.SetNamespace(metav1.NamespaceDefault)
	name := "kiln-dry-run-" + o.Obj.GetName()
	c.Obj.SetName(name[:min(len(name), 63)])
	_, _, err = a.apply(ctx, c, revision, true)
	return err
}

// fieldDiffs compares the live object with the dry run's result, leaving
// out what the server changes on every write (resourceVersion,
// generation, managedFields), status (a patch of the object does not set
// it) and the revision annotation. kiln's last-applied annotation is
// reported, redacted, only when nothing else differs.
func fieldDiffs(live, want *unstructured.Unstructured) []FieldDiff {
	l, w := forDiff(live), forDiff(want)
	secret := isSecret(live) || isSecret(want)
	var out []FieldDiff
	walkDiff(nil, l, w, true, true, func(path []segment, lv, wv any, lok, wok bool) {
		fd := FieldDiff{Field: fieldPath(path)}
		if redactField(path, secret) {
			fd.Redacted = true
			if lok {
				fd.Live = redactedValue
			}
			if wok {
				fd.Desired = redactedValue
			}
		} else {
			fd.Live, fd.Desired = jsonValue(lv, lok), jsonValue(wv, wok)
		}
		out = append(out, fd)
	})
	lastApplied := fieldPath([]segment{{key: "metadata"}, {key: "annotations"}, {key: AnnotationLastApplied}})
	if others := slices.DeleteFunc(slices.Clone(out), func(f FieldDiff) bool { return f.Field == lastApplied }); len(others) > 0 {
		return others
	}
	return out
}

// forDiff is o without the fields that do not count as a change.
func forDiff(o *unstructured.Unstructured) map[string]any {
	c := o.DeepCopy().Object
	delete(c, "status")
	if m, ok := c["metadata"].(map[string]any); ok {
		for _, f := range []string{"resourceVersion", "generation", "managedFields", "uid", "creationTimestamp", "selfLink"} {
			delete(m, f)
		}
		if ann, ok := m["annotations"].(map[string]any); ok {
			delete(ann, AnnotationRevision)
			if len(ann) == 0 {
				delete(m, "annotations")
			}
		}
	}
	return c
}

// walkDiff calls leaf for every leaf field where a and b differ. A map or
// list present on one side only is walked into, so that each of its
// fields is reported.
func walkDiff(path []segment, a, b any, aok, bok bool, leaf func(path []segment, a, b any, aok, bok bool)) {
	am, aIsMap := a.(map[string]any)
	bm, bIsMap := b.(map[string]any)
	as, aIsList := a.([]any)
	bs, bIsList := b.([]any)
	switch {
	case (aIsMap || !aok) && (bIsMap || !bok) && (len(am) > 0 || len(bm) > 0):
		keys := make([]string, 0, len(am)+len(bm))
		for k := range am {
			keys = append(keys, k)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			av, ak := am[k]
			bv, bk := bm[k]
			walkDiff(append(slices.Clip(path), segment{key: k}), av, bv, ak, bk, leaf)
		}
	case (aIsList || !aok) && (bIsList || !bok) && (len(as) > 0 || len(bs) > 0):
		for i := range max(len(as), len(bs)) {
			var av, bv any
			ak, bk := i < len(as), i < len(bs)
			if ak {
				av = as[i]
			}
			if bk {
				bv = bs[i]
			}
			walkDiff(append(slices.Clip(path), segment{index: i, isIndex: true}), av, bv, ak, bk, leaf)
		}
	case aok != bok || !reflect.DeepEqual(a, b):
		leaf(path, a, b, aok, bok)
	}
}

// redactField reports whether the values of the field at path must not be
// shown: everything of a Secret but its identity, metadata and type, the
// last-applied configurations (kubectl's holds a Secret's values in
// clear), and kiln's last-applied annotation of any object, which only
// repeats the other fields.
func redactField(path []segment, secret bool) bool {
	if len(path) == 3 && path[0].key == "metadata" && path[1].key == "annotations" &&
		(path[2].key == AnnotationLastApplied || path[2].key == corev1LastApplied) {
		return true
	}
	if !secret || len(path) == 0 {
		return false
	}
	switch path[0].key {
	case "apiVersion", "kind", "metadata", "type", "immutable":
		return false
	}
	return true
}

// corev1LastApplied is kubectl apply's annotation.
const corev1LastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// segment is one step of a field path: a map key or a list index.
type segment struct {
	key     string
	index   int
	isIndex bool
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// fieldPath joins path segments: ".key" for plain keys, `["key"]` for keys
// with dots, slashes and the like, "[i]" for list indexes.
func fieldPath(path []segment) string {
	var b strings.Builder
	for _, p := range path {
		switch {
		case p.isIndex:
			b.WriteString("[" + strconv.Itoa(p.index) + "]")
		case plainKey.MatchString(p.key):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p.key)
		default:
			b.WriteString("[" + strconv.Quote(p.key) + "]")
		}
	}
	return b.String()
}

func jsonValue(v any, ok bool) string {
	if !ok {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
