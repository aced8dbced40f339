package reconcile

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"kiln.dev/kiln/sources"
)

// DefaultNamespace is the namespace given to namespaced objects that do
// not name one, when RenderOptions.DefaultNamespace is empty.
const DefaultNamespace = "default"

// kilnGroup is the API group of kiln's own kinds (Source). Objects of it
// are kiln's state: a repository that could write them could rewrite what
// kiln syncs or delete its own sources (RELIABILITY (b)15).
const kilnGroup = "gitops.kiln.dev"

// Object is one rendered manifest and where it came from.
type Object struct {
	// Obj is the object as written, with only its namespace defaulted.
	Obj *unstructured.Unstructured
	// Path is the file in the snapshot; for kustomize output, the
	// kustomization file of the directory that was built (for example
	// "overlays/prod/kustomization.yaml").
	Path string
	// Index is the 0-based index of the document within the file, counting
	// only non-empty documents (all items of a List share the List's
	// index); for kustomize output, the position in the build's output.
	Index int
}

// ScopeFunc says whether a kind is namespaced; known=false for kinds the
// cluster does not serve. It must be safe to call from the goroutine that
// calls Render and must not block for long (it is called once per object).
type ScopeFunc func(gvk schema.GroupVersionKind) (namespaced, known bool)

// RenderOptions configures Render.
type RenderOptions struct {
	// DefaultNamespace is given to namespaced objects without one; empty
	// means DefaultNamespace.
	DefaultNamespace string
	// Scope says which kinds the cluster serves and whether they are
	// namespaced. Required. Kinds defined by a CustomResourceDefinition in
	// the same snapshot are known even when Scope does not know them yet.
	Scope ScopeFunc
	// cache, if set, keeps parsed files and checked documents for the
	// next Render of the same source (sync sets it); results are exactly
	// those of a Render without it.
	cache *parseCache
}

// KeyOf identifies an object: "group/kind/namespace/name". The core group
// is empty ("/ConfigMap/demo/settings") and so is the namespace of
// cluster-scoped objects ("/Namespace//demo"). The version is not part of
// it: apps/v1 and apps/v1beta1 Deployments of one name are one object.
func KeyOf(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	return gvk.Group + "/" + gvk.Kind + "/" + u.GetNamespace() + "/" + u.GetName()
}

// Render parses and validates the snapshot. It returns all objects in
// apply order, or a *RenderError listing every problem found (never a
// partial result). It reads only snap.Files: never the disk or the
// network. It is safe for concurrent use.
func Render(snap *sources.Snapshot, opts RenderOptions) ([]Object, error) {
	if snap == nil {
		return nil, ErrNoSnapshot
	}
	if opts.Scope == nil {
		return nil, ErrNoScope
	}
	if opts.DefaultNamespace == "" {
		opts.DefaultNamespace = DefaultNamespace
	}
	if msgs := validation.IsDNS1123Label(opts.DefaultNamespace); len(msgs) > 0 {
		return nil, fmt.Errorf("render options: DefaultNamespace: %s", strings.Join(msgs, "; "))
	}
	objs, err := newRenderer(snap, opts, true).render()
	if errors.Is(err, errStaleChecks) {
		// Documents checked under other CRDs were reused: render again,
		// checking every document (see checkContext).
		objs, err = newRenderer(snap, opts, false).render()
	}
	return objs, err
}

// newRenderer prepares one rendering of snap; reuse says whether
// documents checked by the last Render with the same cache may be reused.
func newRenderer(snap *sources.Snapshot, opts RenderOptions, reuse bool) *renderer {
	r := &renderer{
		opts:    opts,
		snap:    snap,
		tree:    newTree(snap.Files, snap.Context),
		secrets: newSecretSet(),
	}
	if opts.cache != nil {
		r.check = newCheckCache(opts.cache, &r.opts, reuse)
	}
	return r
}

// renderer holds the state of one Render call.
type renderer struct {
	opts     RenderOptions
	snap     *sources.Snapshot
	tree     *tree
	secrets  *secretSet
	fs       filesys.FileSystem
	cands    []*candidate
	crds     map[schema.GroupKind]crdInfo
	problems []Problem
	// check, with a cache, holds the documents checked by the last Render
	// and collects those of this one.
	check *checkCache
}

// candidate is one object found in a document, not yet validated.
type candidate struct {
	obj  map[string]any
	json []byte
	path string
	doc  *document
	// item is the object's index in the document's List, or -1.
	item int
	// gvk is set by validate once apiVersion and kind are known.
	gvk schema.GroupVersionKind
	// checked says the candidate comes from a checkedDoc: validate
	// accepted it under the same context, and obj is as it left it.
	checked bool
}

// node is the candidate's YAML node, or nil.
func (c *candidate) node() *yamlv3.Node {
	n := c.doc.yamlNode()
	if c.item < 0 || n == nil {
		return n
	}
	items := mappingValue(n, "items")
	if items == nil || items.Kind != yamlv3.SequenceNode || c.item >= len(items.Content) {
		return nil
	}
	return items.Content[c.item]
}

// fieldLine is the file line of a field of the candidate (of the
// candidate itself for ""), as well as it is known.
func (c *candidate) fieldLine(field string) int {
	if n := c.node(); n != nil {
		line := n.Line
		if field != "" {
			line = nodeLine(n, field)
		}
		if l := c.doc.fileLine(line); l > 0 {
			return l
		}
	}
	return c.doc.line
}

// render renders the snapshot. It returns errStaleChecks, and nothing
// else, when it reused checked documents although the snapshot's CRDs
// changed.
func (r *renderer) render() ([]Object, error) {
	parsed := map[parseKey]*parsedFile{}
	for _, f := range r.snap.Files {
		if _, ok := r.tree.kustomizedBy(f.Path); ok || !isManifestFile(f.Path) {
			continue
		}
		key, docs, problems := r.parse(f.Path, f.Data, parsed)
		r.problems = append(r.problems, problems...)
		for i := range docs {
			r.addParsedDocument(docKey{file: key, doc: i}, f.Path, docs[i])
		}
	}
	if r.opts.cache != nil {
		r.opts.cache.replace(parsed)
	}
	r.renderKustomizations()
	r.collectCRDs()
	if r.check.crdsChanged(r.crds) {
		return nil, errStaleChecks
	}

	var objs []Object
	seen := map[string]*candidate{}
	for _, c := range r.cands {
		u, ok := &unstructured.Unstructured{Object: c.obj}, true
		if !c.checked {
			np := len(r.problems)
			u, ok = r.validate(c)
			r.check.validated(c, ok && len(r.problems) == np)
		}
		if u == nil {
			continue
		}
		key := KeyOf(u)
		if first, dup := seen[key]; dup {
			r.problems = append(r.problems, Problem{Path: c.path, Index: c.doc.index, Line: c.fieldLine(""), Object: objectLabel(u),
				Message: fmt.Sprintf("duplicate object: also defined in %s (document %d)", first.path, first.doc.index+1)})
			continue
		}
		seen[key] = c
		if ok {
			objs = append(objs, Object{Obj: u, Path: c.path, Index: c.doc.index})
		}
	}
	if r.check != nil {
		r.check.done(r.opts.cache, r.opts.DefaultNamespace, r.crds)
	}
	if len(r.problems) > 0 {
		return nil, r.renderError()
	}
	sortForApply(objs)
	return objs, nil
}

// renderError sorts the problems and removes every secret value from their
// messages. Paths, fields and object names are identifiers, not values,
// and are left alone.
func (r *renderer) renderError() *RenderError {
	redact := r.secrets.redactor()
	ps := slices.Clone(r.problems)
	for i := range ps {
		ps[i].Message = redact(ps[i].Message)
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Index, b.Index), cmp.Compare(a.Line, b.Line))
	})
	return &RenderError{Problems: ps}
}

// isManifestFile reports whether p is rendered as manifests: .yaml, .yml
// and .json files, in any letter case.
func isManifestFile(p string) bool {
	return hasExt(p, ".yaml") || hasExt(p, ".yml") || hasExt(p, ".json")
}

func hasExt(p, ext string) bool {
	return strings.EqualFold(path.Ext(p), ext)
}

// addParsedDocument adds the candidates of a document of a manifest
// file: those the last Render checked, when it left them, or addDocument's.
func (r *renderer) addParsedDocument(key docKey, p string, doc document) {
	if r.check == nil {
		r.addDocument(p, doc, r.secrets)
		return
	}
	d := &doc
	if hit := r.check.hit(key); hit != nil {
		r.secrets.merge(hit.secrets)
		for _, c := range hit.cands {
			r.cands = append(r.cands, &candidate{obj: c.obj, json: c.json, path: p, doc: d, item: c.item, gvk: c.gvk, checked: true})
		}
		r.check.next[key] = hit
		return
	}
	secrets := newSecretSet()
	nc, np := len(r.cands), len(r.problems)
	d = r.addDocument(p, doc, secrets)
	r.secrets.merge(secrets)
	if len(r.problems) == np {
		r.check.pending[d] = &pendingDoc{key: key, cands: slices.Clone(r.cands[nc:]), secrets: secrets, ok: true}
	}
}

// addDocument turns a document into candidates: one, or one per item of a
// List. It records the document's secret values in secrets and returns
// the candidates' document.
func (r *renderer) addDocument(p string, doc document, secrets *secretSet) *document {
	d := &doc
	var v any
	strictErrs, err := strictUnmarshal(doc.json, &v)
	if err != nil {
		r.problems = append(r.problems, Problem{Path: p, Index: doc.index, Line: doc.line, Message: "invalid JSON: " + redactQuoted(firstLine(err.Error()))})
		return d
	}
	if len(strictErrs) > 0 {
		for _, se := range strictErrs {
			field, msg := strictProblem(se, "")
			r.problems = append(r.problems, Problem{Path: p, Index: doc.index, Line: r.docLine(d, field), Field: field, Message: msg})
		}
		return d
	}
	if v == nil {
		return d
	}
	secrets.addFromValue(v)
	m, ok := v.(map[string]any)
	if !ok {
		r.problems = append(r.problems, Problem{Path: p, Index: doc.index, Line: doc.line,
			Message: "document is not an object: a manifest is a mapping with apiVersion, kind and metadata"})
		return d
	}
	if !isList(m) {
		r.cands = append(r.cands, &candidate{obj: m, json: doc.json, path: p, doc: d, item: -1})
		return d
	}
	items, ok := m["items"].([]any)
	if !ok && m["items"] != nil {
		r.problems = append(r.problems, Problem{Path: p, Index: doc.index, Line: r.docLine(d, "items"), Field: "items", Message: "must be a list of objects"})
		return d
	}
	for i, it := range items {
		field := fmt.Sprintf("items[%d]", i)
		im, ok := it.(map[string]any)
		if !ok || isList(im) {
			r.problems = append(r.problems, Problem{Path: p, Index: doc.index, Line: r.docLine(d, field), Field: field,
				Message: "a List item must be an object (and not a List)"})
			continue
		}
		j, err := json.Marshal(im)
		if err != nil {
			r.problems = append(r.problems, Problem{Path: p, Index: doc.index, Line: r.docLine(d, field), Field: field, Message: "cannot encode item"})
			continue
		}
		r.cands = append(r.cands, &candidate{obj: im, json: j, path: p, doc: d, item: i})
	}
	return d
}

func (r *renderer) docLine(d *document, field string) int {
	if n := d.yamlNode(); n != nil && field != "" {
		if l := d.fileLine(nodeLine(n, field)); l > 0 {
			return l
		}
	}
	return d.line
}

// isList reports whether m is a List to expand: "kind: List", or a typed
// list kind like ConfigMapList.
func isList(m map[string]any) bool {
	kind, _ := m["kind"].(string)
	if kind == "List" {
		return true
	}
	if !strings.HasSuffix(kind, "List") {
		return false
	}
	apiVersion, _ := m["apiVersion"].(string)
	gv, err := schema.ParseGroupVersion(apiVersion)
	return err == nil && isTypedList(gv.WithKind(kind))
}

// crdInfo is what a CustomResourceDefinition in the snapshot says about
// its kind.
type crdInfo struct {
	namespaced bool
	versions   map[string]bool
}

// collectCRDs records the kinds defined by CRDs in the snapshot, so that
// a CRD and its custom resources can be synced in one revision.
func (r *renderer) collectCRDs() {
	r.crds = map[schema.GroupKind]crdInfo{}
	for _, c := range r.cands {
		apiVersion, _ := c.obj["apiVersion"].(string)
		if c.obj["kind"] != "CustomResourceDefinition" || !strings.HasPrefix(apiVersion, "apiextensions.k8s.io/") {
			continue
		}
		u := unstructured.Unstructured{Object: c.obj}
		group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(u.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(u.Object, "spec", "scope")
		versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
		if group == "" || kind == "" {
			continue
		}
		info := crdInfo{namespaced: scope != "Cluster", versions: map[string]bool{}}
		for _, v := range versions {
			vm, _ := v.(map[string]any)
			name, _ := vm["name"].(string)
			if served, ok := vm["served"].(bool); name != "" && (!ok || served) {
				info.versions[name] = true
			}
		}
		r.crds[schema.GroupKind{Group: group, Kind: kind}] = info
	}
}

// scope says whether gvk is namespaced and known, by the cluster or by a
// CRD in the snapshot.
func (r *renderer) scope(gvk schema.GroupVersionKind) (namespaced, known bool) {
	if namespaced, known = r.opts.Scope(gvk); known {
		return namespaced, true
	}
	if info, ok := r.crds[gvk.GroupKind()]; ok && info.versions[gvk.Version] {
		return info.namespaced, true
	}
	return false, false
}

// objectLabel names an object in a Problem: "Deployment demo/web",
// "Namespace demo", or "" without a name.
func objectLabel(u *unstructured.Unstructured) string {
	name, kind := u.GetName(), u.GetKind()
	switch {
	case name == "":
		return ""
	case kind == "":
		kind = "object"
	}
	if ns := u.GetNamespace(); ns != "" {
		return kind + " " + ns + "/" + name
	}
	return kind + " " + name
}
