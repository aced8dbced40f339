package dashboard

import (
	"context"
	"net/http"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/reconcile"
)

// hidden replaces every value of a Secret.
const hidden = "<hidden>"

// Bounds of the object page.
const (
	// fetchTimeout bounds the GET of the object and its owners.
	fetchTimeout = 5 * time.Second
	// maxOwners bounds the owner chain walked upwards.
	maxOwners = 5
	// maxObjectEvents bounds the events shown with an object.
	maxObjectEvents = 50
)

// objectPage is /object: one object's YAML, health, events and owners.
type objectPage struct {
	Ref   Ref
	Found bool
	// Error says why the object could not be read.
	Error    string
	Health   reconcile.Health
	Source   string
	File     string
	Revision string
	// Owners is the owner chain from the root down to the object's
	// direct owner; Children are the objects it controls.
	Owners   []Ref
	Children []Ref
	Chain    *Chain
	Events   []eventRow
	YAML     string
}

func (d *Dashboard) handleObject(w http.ResponseWriter, r *http.Request) {
	v := d.hub.version.Load()
	q := r.URL.Query()
	ref := Ref{Group: q.Get("group"), Version: q.Get("version"), Kind: q.Get("kind"), Namespace: q.Get("namespace"), Name: q.Get("name")}
	if ref.Kind == "" || ref.Name == "" {
		d.renderError(w, r, http.StatusBadRequest, "an object page needs ?kind= and ?name= (and group, version, namespace)")
		return
	}
	op := objectPage{Ref: ref}
	ctx, cancel := context.WithTimeout(r.Context(), fetchTimeout)
	defer cancel()
	code := http.StatusOK
	u, err := d.fetch(ctx, ref)
	switch {
	case apierrors.IsNotFound(err):
		op.Error, code = ref.Title()+" does not exist", http.StatusNotFound
	case err != nil:
		op.Error, code = "cannot read "+ref.Title()+": "+err.Error(), http.StatusBadGateway
	default:
		op.Found = true
		op.Ref.Version = u.GroupVersionKind().Version
		d.describe(ctx, &op, u)
	}
	for _, e := range byIndex[*corev1.Event](d.cache.events, indexInvolved, involvedKey(ref.Kind, ref.Namespace, ref.Name)) {
		op.Events = append(op.Events, d.eventRow(e))
	}
	sortEvents(op.Events)
	if len(op.Events) > maxObjectEvents {
		op.Events = op.Events[:maxObjectEvents]
	}
	d.render(w, r, code, "object", page{Title: ref.Title(), Nav: "objects", Version: v, Body: op})
}

// describe fills the page from the live object u, which it redacts first.
func (d *Dashboard) describe(ctx context.Context, op *objectPage, u *unstructured.Unstructured) {
	redact(u)
	op.Source = u.GetLabels()[reconcile.LabelSource]
	op.File = u.GetAnnotations()[reconcile.AnnotationPath]
	op.Revision = u.GetAnnotations()[reconcile.AnnotationRevision]
	op.Owners = d.owners(ctx, u)
	op.Children = d.children(string(u.GetUID()))
	gvk := u.GroupVersionKind()
	// The cached copy is typed, which the chain needs; the live one is
	// judged when the dashboard does not watch the kind.
	var obj any = u
	if o, _ := d.cache.get(gvk.GroupKind(), u.GetNamespace(), u.GetName()); o != nil {
		obj = o
	}
	op.Health = d.judge(gvk, obj)
	if op.Health.Status != HealthHealthy && op.Health.Status != HealthUnknown {
		logs := d.logs.budget(ctx)
		ch := d.chain(managedObject{Entry: reconcile.InventoryEntry{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind,
			Namespace: u.GetNamespace(), Name: u.GetName()}, Source: op.Source, Obj: obj, Health: op.Health}, logs)
		logs.done()
		op.Chain = &ch
	}
	y, err := yaml.Marshal(u.Object)
	if err != nil {
		op.Error = "cannot show the object as YAML: " + err.Error()
		return
	}
	op.YAML = string(y)
}

// fetch GETs the object ref names through the API.
func (d *Dashboard) fetch(ctx context.Context, ref Ref) (*unstructured.Unstructured, error) {
	m, err := d.mapping(ref.GroupKind(), ref.Version)
	if err != nil {
		return nil, err
	}
	ri := d.cfg.Dynamic.Resource(m.Resource)
	var u *unstructured.Unstructured
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		u, err = ri.Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	} else {
		u, err = ri.Get(ctx, ref.Name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, err
	}
	if m.Resource.GroupResource() == (schema.GroupResource{Resource: "secrets"}) {
		// Whatever kind the answer claims, it came from secrets.
		redactSecret(u)
	}
	return u, nil
}

// mapping finds the resource of a kind (cache.mapping).
func (d *Dashboard) mapping(gk schema.GroupKind, version string) (*meta.RESTMapping, error) {
	return d.cache.mapping(gk, version)
}

// owners walks u's controller (else first owner) references upwards and
// returns them root first.
func (d *Dashboard) owners(ctx context.Context, u *unstructured.Unstructured) []Ref {
	var chain []Ref
	var cur metav1.Object = u
	for range maxOwners {
		ref := metav1.GetControllerOf(cur)
		if ref == nil {
			refs := cur.GetOwnerReferences()
			if len(refs) == 0 {
				break
			}
			ref = &refs[0]
		}
		r := refFromAPIVersion(ref.APIVersion, ref.Kind, cur.GetNamespace(), ref.Name)
		if m, err := d.mapping(r.GroupKind(), r.Version); err == nil && m.Scope.Name() != meta.RESTScopeNameNamespace {
			r.Namespace = ""
		}
		chain = append(chain, r)
		o, known := d.cache.get(r.GroupKind(), r.Namespace, r.Name)
		if o == nil && !known {
			if live, err := d.fetch(ctx, r); err == nil {
				o = live
			}
		}
		next, err := meta.Accessor(o)
		if o == nil || err != nil {
			break
		}
		cur = next
	}
	slices.Reverse(chain)
	return chain
}

// redact makes an object safe to show: managed fields go, a Secret's
// values and the annotations that may copy them are hidden, and so are
// credentials in a Source's repository URL.
func redact(u *unstructured.Unstructured) {
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	switch u.GroupVersionKind().GroupKind() {
	case gkSecret:
		redactSecret(u)
	case reconcile.SourceGVK.GroupKind():
		if url, ok, _ := unstructured.NestedString(u.Object, "spec", "url"); ok {
			_ = unstructured.SetNestedField(u.Object, redactURL(url), "spec", "url")
		}
	}
	if u.GetKind() == gkSecret.Kind {
		// Whatever its group claims.
		redactSecret(u)
	}
}

// redactSecret replaces every data and stringData value with hidden and
// drops the last-applied annotations (CVE-2023-40029: they hold the
// values too). The keys stay: they say what the Secret provides.
func redactSecret(u *unstructured.Unstructured) {
	for _, f := range []string{"data", "stringData"} {
		switch v := u.Object[f].(type) {
		case nil:
		case map[string]any:
			for k := range v {
				v[k] = hidden
			}
		default:
			u.Object[f] = hidden
		}
	}
	if a := u.GetAnnotations(); a != nil {
		delete(a, reconcile.AnnotationLastApplied)
		delete(a, annotationKubectlLastApplied)
		u.SetAnnotations(a)
	}
}
