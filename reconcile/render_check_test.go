package reconcile

import (
	"encoding/json"
	"maps"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestRender_checkedCacheMatchesFresh renders a tree step by step through
// one cache, changing one thing at each step, and compares every result
// with an uncached Render of the same input: objects, their order and the
// problems must be deep-equal. The steps change what the checked
// documents depend on besides their own bytes (a CRD's scope, the
// default namespace, what the cluster serves), which must invalidate
// them.
func TestRender_checkedCacheMatchesFresh(t *testing.T) {
	crd := func(scope string) string {
		return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: ` + scope + `
  names: {kind: Widget, plural: widgets}
  versions:
    - name: v1
      served: true
      storage: true
`
	}
	cm := func(name, v string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  v: " + v + "\n"
	}
	base := map[string]string{
		"a.yaml":      cm("a", "one"),
		"b.yaml":      cm("b", "one"),
		"crd.yaml":    crd("Namespaced"),
		"widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 3\n",
		"list.yaml": `apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: l1}}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: l2, namespace: other}}
`,
		"multi.yaml": cm("m1", "vx") + "---\n" + cm("m2", "vy") +
			"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: kiln-check-canary-51\n",
		"ns.yaml":      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n",
		"cluster.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\n",
	}
	with := func(files map[string]string, kv ...string) map[string]string {
		out := maps.Clone(files)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(out, kv[i])
				continue
			}
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	// servedWidget makes the cluster serve Widget itself, cluster-scoped,
	// as it would once a CRD of another scope were applied: the cluster's
	// answer wins over the snapshot's CRD.
	servedWidget := func(gvk schema.GroupVersionKind) (bool, bool) {
		if gvk == (schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}) {
			return false, true
		}
		return testScope(gvk)
	}
	steps := []struct {
		name  string
		files map[string]string
		ns    string
		scope ScopeFunc
		// fails says the step's render has problems.
		fails bool
		// reused lists files whose objects must be the very maps of the
		// step before (the cache hit).
		reused []string
	}{
		{name: "first", files: base},
		{name: "unchanged", files: base, reused: []string{"a.yaml", "b.yaml", "widget.yaml", "list.yaml", "multi.yaml", "ns.yaml"}},
		{name: "one file changed", files: with(base, "a.yaml", cm("a", "two")), reused: []string{"b.yaml", "widget.yaml", "list.yaml", "multi.yaml"}},
		{name: "CRD scope changed", files: with(base, "crd.yaml", crd("Cluster"))},
		{name: "CRD scope back", files: base},
		{name: "default namespace changed", files: base, ns: "elsewhere"},
		{name: "default namespace same", files: base, ns: "elsewhere", reused: []string{"a.yaml", "widget.yaml", "list.yaml"}},
		{name: "default namespace back", files: base},
		{name: "cluster serves the kind", files: base, scope: servedWidget},
		{name: "cluster stops serving it", files: base},
		{name: "unknown field", files: with(base, "b.yaml", cm("b", "one")+"spec: {}\n"), fails: true},
		{name: "duplicate object", files: with(base, "c.yaml", cm("a", "again")), fails: true},
		{name: "fixed", files: base},
		{name: "CRD removed", files: with(base, "crd.yaml", ""), fails: true},
		{name: "CRD back", files: base},
		{name: "file removed", files: with(base, "b.yaml", "")},
	}
	c := &parseCache{}
	var prev []Object
	for _, st := range steps {
		scope := st.scope
		if scope == nil {
			scope = testScope
		}
		snap := snapshotOf(st.files)
		want, wantErr := Render(snap, RenderOptions{DefaultNamespace: st.ns, Scope: scope})
		got, err := Render(snap, RenderOptions{DefaultNamespace: st.ns, Scope: scope, cache: c})
		if (wantErr != nil) != st.fails {
			t.Fatalf("%s: uncached error %v, want failure %v", st.name, wantErr, st.fails)
		}
		if !reflect.DeepEqual(err, wantErr) {
			t.Fatalf("%s: error\n%v\nwant\n%v", st.name, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: objects\n%v\nwant\n%v", st.name, describeFull(got), describeFull(want))
		}
		for _, p := range st.reused {
			if n := sharedObjects(prev, got, p); n == 0 {
				t.Errorf("%s: no object of %s reused from the step before", st.name, p)
			}
		}
		prev = got
	}
}

// TestRender_checkedCacheSkipsProblems renders a file with a problem
// through the cache twice: a document with a problem is never cached, so
// the second render reports it again, the same.
func TestRender_checkedCacheSkipsProblems(t *testing.T) {
	files := map[string]string{
		"bad.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\nspec: {}\n",
		"good.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\n",
	}
	c := &parseCache{}
	_, first := Render(snapshotOf(files), RenderOptions{Scope: testScope, cache: c})
	_, second := Render(snapshotOf(files), RenderOptions{Scope: testScope, cache: c})
	if first == nil || !reflect.DeepEqual(first, second) {
		t.Fatalf("errors differ or are missing:\n%v\n%v", first, second)
	}
	_, in := c.checkedState()
	if in == nil || len(c.checked) != 1 {
		t.Fatalf("checked documents = %d, want 1 (good.yaml only)", len(c.checked))
	}
	for k := range c.checked {
		if k.file.path != "good.yaml" {
			t.Errorf("cached %s", k.file.path)
		}
	}
}

// sharedObjects counts the objects of path in b whose maps are the ones
// in a.
func sharedObjects(a, b []Object, path string) int {
	n := 0
	for _, x := range a {
		for _, y := range b {
			if x.Path == path && y.Path == path && reflect.ValueOf(x.Obj.Object).UnsafePointer() == reflect.ValueOf(y.Obj.Object).UnsafePointer() {
				n++
			}
		}
	}
	return n
}

func describeFull(objs []Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Path+": "+KeyOf(o.Obj)+" "+jsonOf(o.Obj.Object))
	}
	return out
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// FuzzRender_checkedCache renders a tree of three files through a cache,
// then the same tree with one file replaced by arbitrary content, and
// compares the second result with an uncached Render: the cache must
// never change a result, whatever the edit does to the other files'
// objects (duplicates, a CRD, a List, a namespace).
func FuzzRender_checkedCache(f *testing.F) {
	f.Add(uint8(0), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"))
	f.Add(uint8(1), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: ns\n"))
	f.Add(uint8(2), []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec: {group: example.com, scope: Cluster, names: {kind: Widget, plural: widgets}, versions: [{name: v1, served: true}]}
`))
	f.Add(uint8(3), []byte(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}]}`))
	f.Add(uint8(0), []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringData: {k: [1]}\n"))
	base := map[string]string{
		"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n",
		"b.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
		"c.yaml": `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec: {group: example.com, scope: Namespaced, names: {kind: Widget, plural: widgets}, versions: [{name: v1, served: true}]}
`,
	}
	names := []string{"a.yaml", "b.yaml", "c.yaml", "d.json"}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		c := &parseCache{}
		if _, err := Render(snapshotOf(base), RenderOptions{Scope: testScope, cache: c}); err != nil {
			t.Fatal(err)
		}
		files := maps.Clone(base)
		files[names[int(which)%len(names)]] = string(data)
		snap := snapshotOf(files)
		want, wantErr := Render(snap, RenderOptions{Scope: testScope})
		got, err := Render(snap, RenderOptions{Scope: testScope, cache: c})
		if !reflect.DeepEqual(err, wantErr) {
			t.Fatalf("error\n%v\nwant\n%v", err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("objects\n%v\nwant\n%v", describeFull(got), describeFull(want))
		}
	})
}
