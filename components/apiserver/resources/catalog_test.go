package resources_test

import (
	"fmt"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"kiln.dev/kiln/components/apiserver/resources"
)

func TestCatalog_Lookup(t *testing.T) {
	cat := resources.NewCatalog(resources.Builtin())
	tests := []struct {
		name                     string
		group, version, resource string
		wantKind                 string
		wantOK                   bool
	}{
		{name: "core", version: "v1", resource: "pods", wantKind: "Pod", wantOK: true},
		{name: "named group", group: "apps", version: "v1", resource: "deployments", wantKind: "Deployment", wantOK: true},
		{name: "second version", group: "autoscaling", version: "v1", resource: "horizontalpodautoscalers", wantKind: "HorizontalPodAutoscaler", wantOK: true},
		{name: "kiln", group: "gitops.kiln.dev", version: "v1alpha1", resource: "sources", wantKind: "Source", wantOK: true},
		{name: "unserved version", group: "apps", version: "v1beta1", resource: "deployments"},
		{name: "wrong group", group: "apps", version: "v1", resource: "pods"},
		{name: "singular is not a plural", version: "v1", resource: "pod"},
		{name: "subresource path", version: "v1", resource: "pods/status"},
		{name: "extensions not served", group: "extensions", version: "v1beta1", resource: "ingresses"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := cat.Lookup(tc.group, tc.version, tc.resource)
			if ok != tc.wantOK {
				t.Fatalf("Lookup(%q, %q, %q) ok = %v, want %v", tc.group, tc.version, tc.resource, ok, tc.wantOK)
			}
			if r.Kind != tc.wantKind {
				t.Errorf("kind = %q, want %q", r.Kind, tc.wantKind)
			}
		})
	}
}

func TestCatalog_ForKind(t *testing.T) {
	cat := resources.NewCatalog(resources.Builtin())
	tests := []struct {
		name    string
		gvk     schema.GroupVersionKind
		wantGVR schema.GroupVersionResource
		wantOK  bool
	}{
		{
			name:    "core event",
			gvk:     schema.GroupVersionKind{Version: "v1", Kind: "Event"},
			wantGVR: schema.GroupVersionResource{Version: "v1", Resource: "events"},
			wantOK:  true,
		},
		{
			name:    "events.k8s.io event",
			gvk:     schema.GroupVersionKind{Group: "events.k8s.io", Version: "v1", Kind: "Event"},
			wantGVR: schema.GroupVersionResource{Group: "events.k8s.io", Version: "v1", Resource: "events"},
			wantOK:  true,
		},
		{
			name:    "endpoints singular equals plural",
			gvk:     schema.GroupVersionKind{Version: "v1", Kind: "Endpoints"},
			wantGVR: schema.GroupVersionResource{Version: "v1", Resource: "endpoints"},
			wantOK:  true,
		},
		{
			name:    "crd",
			gvk:     schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"},
			wantGVR: schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
			wantOK:  true,
		},
		{name: "list kind", gvk: schema.GroupVersionKind{Version: "v1", Kind: "PodList"}},
		{name: "subresource-only kind", gvk: schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}},
		{name: "unserved version", gvk: schema.GroupVersionKind{Group: "batch", Version: "v1beta1", Kind: "CronJob"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := cat.ForKind(tc.gvk)
			if ok != tc.wantOK {
				t.Fatalf("ForKind(%v) ok = %v, want %v", tc.gvk, ok, tc.wantOK)
			}
			if ok && r.GroupVersionResource() != tc.wantGVR {
				t.Errorf("resource = %v, want %v", r.GroupVersionResource(), tc.wantGVR)
			}
		})
	}
}

func TestCatalog_Groups(t *testing.T) {
	tests := []struct {
		name string
		rs   []resources.Resource
		want []resources.GroupVersions
	}{
		{name: "empty", rs: nil, want: []resources.GroupVersions{}},
		{
			name: "first appearance order",
			rs: []resources.Resource{
				{Version: "v1", Name: "pods", Kind: "Pod"},
				{Group: "b", Version: "v2", Name: "xs", Kind: "X"},
				{Group: "a", Version: "v1", Name: "ys", Kind: "Y"},
				{Group: "b", Version: "v2", Name: "zs", Kind: "Z"},
				{Group: "b", Version: "v1", Name: "xs", Kind: "X"},
			},
			want: []resources.GroupVersions{
				{Group: "", Versions: []string{"v1"}},
				{Group: "b", Versions: []string{"v2", "v1"}},
				{Group: "a", Versions: []string{"v1"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := resources.NewCatalog(tc.rs).Groups(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Groups() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCatalog_Groups_builtin(t *testing.T) {
	groups := resources.NewCatalog(resources.Builtin()).Groups()
	for _, g := range groups {
		want := 1
		if g.Group == "autoscaling" {
			want = 2
		}
		if len(g.Versions) != want {
			t.Errorf("group %q served at %v, want %d version(s)", g.Group, g.Versions, want)
		}
	}
	if first := groups[0]; first.Group != "" || first.Versions[0] != "v1" {
		t.Errorf("first group = %+v, want core v1", first)
	}
	if last := groups[len(groups)-1]; last.Group != "gitops.kiln.dev" {
		t.Errorf("last group = %+v, want gitops.kiln.dev", last)
	}
	for _, g := range groups {
		if g.Group == "autoscaling" && (g.Versions[0] != "v2" || g.Versions[1] != "v1") {
			t.Errorf("autoscaling versions = %v, want [v2 v1]", g.Versions)
		}
	}
}

func TestCatalog_All(t *testing.T) {
	in := resources.Builtin()
	cat := resources.NewCatalog(in)
	if got := cat.All(); !reflect.DeepEqual(got, resources.Builtin()) {
		t.Fatalf("All() differs from the input")
	}

	// Neither the caller's input nor a returned copy reaches the catalog.
	in[0].Name = "changed"
	in[0].Verbs[0] = "changed"
	out := cat.All()
	out[1].Verbs[0] = "changed"
	r, _ := cat.Lookup("apps", "v1", "deployments")
	r.Subresources[0].Verbs[0] = "changed"
	r.ShortNames[0] = "changed"
	gs := cat.Groups()
	gs[0].Versions[0] = "changed"

	if got := cat.All(); !reflect.DeepEqual(got, resources.Builtin()) {
		t.Errorf("catalog changed through its input or a returned value")
	}
	if got := cat.Groups(); got[0].Versions[0] != "v1" {
		t.Errorf("catalog groups changed through a returned value")
	}
}

func TestCatalog_duplicates(t *testing.T) {
	cat := resources.NewCatalog([]resources.Resource{
		{Group: "g", Version: "v1", Name: "things", Kind: "Thing", Singular: "first"},
		{Group: "g", Version: "v1", Name: "things", Kind: "Other", Singular: "second"},
		{Group: "g", Version: "v1", Name: "others", Kind: "Thing", Singular: "third"},
	})
	tests := []struct {
		name string
		get  func() (resources.Resource, bool)
		want string
	}{
		{"lookup", func() (resources.Resource, bool) { return cat.Lookup("g", "v1", "things") }, "first"},
		{"for kind", func() (resources.Resource, bool) {
			return cat.ForKind(schema.GroupVersionKind{Group: "g", Version: "v1", Kind: "Thing"})
		}, "first"},
		{"later kind", func() (resources.Resource, bool) {
			return cat.ForKind(schema.GroupVersionKind{Group: "g", Version: "v1", Kind: "Other"})
		}, "second"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := tc.get()
			if !ok || r.Singular != tc.want {
				t.Errorf("got %q, %v; want %q", r.Singular, ok, tc.want)
			}
		})
	}
	if n := len(cat.All()); n != 3 {
		t.Errorf("All() has %d resources, want all 3", n)
	}
}

func TestResource_accessors(t *testing.T) {
	r := resources.Resource{
		Group: "apps", Version: "v1", Name: "deployments", Kind: "Deployment",
		Subresources: []resources.Subresource{
			{Name: "scale", Group: "autoscaling", Version: "v1", Kind: "Scale"},
		},
	}
	if got, want := r.GroupVersion(), (schema.GroupVersion{Group: "apps", Version: "v1"}); got != want {
		t.Errorf("GroupVersion() = %v, want %v", got, want)
	}
	if got, want := r.GroupVersionResource(), (schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}); got != want {
		t.Errorf("GroupVersionResource() = %v, want %v", got, want)
	}
	if got, want := r.GroupVersionKind(), (schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}); got != want {
		t.Errorf("GroupVersionKind() = %v, want %v", got, want)
	}

	tests := []struct {
		name    string
		sub     string
		want    bool
		wantGVK schema.GroupVersionKind
	}{
		{name: "served", sub: "scale", want: true, wantGVK: schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}},
		{name: "not served", sub: "status"},
		{name: "empty", sub: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.HasSubresource(tc.sub); got != tc.want {
				t.Errorf("HasSubresource(%q) = %v, want %v", tc.sub, got, tc.want)
			}
			s, ok := r.Subresource(tc.sub)
			if ok != tc.want || s.GroupVersionKind() != tc.wantGVK {
				t.Errorf("Subresource(%q) = %v, %v; want %v, %v", tc.sub, s.GroupVersionKind(), ok, tc.wantGVK, tc.want)
			}
		})
	}
}

func ExampleCatalog() {
	cat := resources.NewCatalog(resources.Builtin())

	r, ok := cat.Lookup("apps", "v1", "deployments")
	fmt.Println(ok, r.Kind, r.Namespaced, r.HasSubresource("scale"))

	scale, _ := r.Subresource("scale")
	fmt.Println(scale.GroupVersionKind())

	for _, g := range cat.Groups() {
		if g.Group == "autoscaling" {
			fmt.Println(g.Versions)
		}
	}
	// Output:
	// true Deployment true true
	// autoscaling/v1, Kind=Scale
	// [v2 v1]
}
