package resources_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"kiln.dev/kiln/components/apiserver/resources"
)

// schemeGroups returns the API groups client-go's scheme registers.
func schemeGroups(t *testing.T) map[string]bool {
	t.Helper()
	groups := map[string]bool{}
	for _, gv := range clientgoscheme.Scheme.PrioritizedVersionsAllGroups() {
		groups[gv.Group] = true
	}
	return groups
}

func TestBuiltin_schemeRecognizesKinds(t *testing.T) {
	inScheme := schemeGroups(t)
	// Groups served although client-go does not register them; anything
	// else outside the scheme is a typo.
	outside := map[string]bool{"apiextensions.k8s.io": true, "metrics.k8s.io": true, "gitops.kiln.dev": true}

	for _, r := range resources.Builtin() {
		t.Run(r.GroupVersionResource().String(), func(t *testing.T) {
			if !inScheme[r.Group] {
				if !outside[r.Group] {
					t.Fatalf("group %q is neither in client-go's scheme nor a known extra group", r.Group)
				}
				return
			}
			gvk := r.GroupVersionKind()
			if !clientgoscheme.Scheme.Recognizes(gvk) {
				t.Fatalf("scheme does not recognize %v", gvk)
			}
			if _, err := clientgoscheme.Scheme.New(gvk); err != nil {
				t.Fatalf("scheme.New(%v): %v", gvk, err)
			}
			if r.ListKind != "" {
				if lgvk := r.GroupVersion().WithKind(r.ListKind); !clientgoscheme.Scheme.Recognizes(lgvk) {
					t.Errorf("scheme does not recognize list kind %v", lgvk)
				}
			}
			for _, s := range r.Subresources {
				if inScheme[s.Group] && !clientgoscheme.Scheme.Recognizes(s.GroupVersionKind()) {
					t.Errorf("subresource %s: scheme does not recognize %v", s.Name, s.GroupVersionKind())
				}
			}
		})
	}
}

func TestBuiltin_coversSchemeKinds(t *testing.T) {
	inScheme := schemeGroups(t)
	// Kinds served by some resource or subresource.
	served := map[schema.GroupVersionKind]bool{}
	// The versions chosen for the scheme's groups.
	chosen := map[schema.GroupVersion]bool{}
	for _, r := range resources.Builtin() {
		if !inScheme[r.Group] {
			continue
		}
		chosen[r.GroupVersion()] = true
		served[r.GroupVersionKind()] = true
		for _, s := range r.Subresources {
			served[s.GroupVersionKind()] = true
		}
	}
	// Kinds the scheme knows that are not objects of any endpoint.
	notServed := map[schema.GroupVersionKind]string{
		{Version: "v1", Kind: "RangeAllocation"}:     "kube-apiserver's internal IP/port allocator state, never served",
		{Version: "v1", Kind: "SerializedReference"}: "annotation payload, never served",
		{Version: "v1", Kind: "PodLogOptions"}:       "query parameters of pods/log, whose kind is Pod",
	}
	metaPkg := reflect.TypeFor[metav1.Status]().PkgPath()

	var uncovered []string
	for gv := range chosen {
		for kind, typ := range clientgoscheme.Scheme.KnownTypes(gv) {
			gvk := gv.WithKind(kind)
			switch {
			case typ.PkgPath() == metaPkg: // ListOptions, WatchEvent, Status, ...
			case strings.HasSuffix(kind, "List"):
			case served[gvk]:
			case notServed[gvk] != "":
			default:
				uncovered = append(uncovered, gvk.String())
			}
		}
	}
	if len(uncovered) > 0 {
		slices.Sort(uncovered)
		t.Errorf("%d kinds the scheme knows at the served versions have no resource:\n%s",
			len(uncovered), strings.Join(uncovered, "\n"))
	}
}

func TestBuiltin_unique(t *testing.T) {
	gvrs := map[schema.GroupVersionResource]bool{}
	gvks := map[schema.GroupVersionKind]bool{}
	for _, r := range resources.Builtin() {
		if gvrs[r.GroupVersionResource()] {
			t.Errorf("duplicate resource %v", r.GroupVersionResource())
		}
		gvrs[r.GroupVersionResource()] = true
		if gvks[r.GroupVersionKind()] {
			t.Errorf("duplicate kind %v", r.GroupVersionKind())
		}
		gvks[r.GroupVersionKind()] = true
	}
}

func TestBuiltin_fields(t *testing.T) {
	known := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	for _, r := range resources.Builtin() {
		t.Run(r.GroupVersionResource().String(), func(t *testing.T) {
			if r.Version == "" || r.Name == "" || r.Kind == "" {
				t.Fatalf("incomplete resource %+v", r)
			}
			if r.Name != strings.ToLower(r.Name) {
				t.Errorf("name %q is not lower case", r.Name)
			}
			if want := strings.ToLower(r.Kind); r.Singular != want {
				t.Errorf("singular = %q, want %q", r.Singular, want)
			}
			// Resources that cannot be listed have no list type.
			wantList := ""
			if slices.Contains(r.Verbs, "list") {
				wantList = r.Kind + "List"
			}
			if r.ListKind != wantList {
				t.Errorf("list kind = %q, want %q", r.ListKind, wantList)
			}
			if len(r.Verbs) == 0 || !slices.IsSorted(r.Verbs) {
				t.Errorf("verbs %v are empty or unsorted", r.Verbs)
			}
			for _, v := range r.Verbs {
				if !slices.Contains(known, v) {
					t.Errorf("unknown verb %q", v)
				}
			}
			if !slices.IsSortedFunc(r.Subresources, func(a, b resources.Subresource) int { return strings.Compare(a.Name, b.Name) }) {
				t.Errorf("subresources are not sorted by name")
			}
			for _, s := range r.Subresources {
				if s.Name == "" || s.Version == "" || s.Kind == "" || len(s.Verbs) == 0 || !slices.IsSorted(s.Verbs) {
					t.Errorf("incomplete subresource %+v", s)
				}
				if s.Name == "status" && s.GroupVersionKind() != r.GroupVersionKind() {
					t.Errorf("status kind = %v, want the resource's own %v", s.GroupVersionKind(), r.GroupVersionKind())
				}
			}
		})
	}
}

func TestBuiltin_shortNames(t *testing.T) {
	// Short names name one group/resource, except where kube-apiserver
	// itself reuses one: events.k8s.io events share ev with core events.
	shared := map[string]int{"ev": 2}
	owners := map[string]map[schema.GroupResource]bool{}
	for _, r := range resources.Builtin() {
		for _, sn := range r.ShortNames {
			if owners[sn] == nil {
				owners[sn] = map[schema.GroupResource]bool{}
			}
			owners[sn][r.GroupVersionResource().GroupResource()] = true
		}
	}
	for sn, grs := range owners {
		want := max(shared[sn], 1)
		if len(grs) != want {
			t.Errorf("short name %q is used by %d resources %v, want %d", sn, len(grs), grs, want)
		}
	}
}

func TestBuiltin_categoryAll(t *testing.T) {
	want := []string{
		"/v1, Resource=pods",
		"/v1, Resource=replicationcontrollers",
		"/v1, Resource=services",
		"apps/v1, Resource=daemonsets",
		"apps/v1, Resource=deployments",
		"apps/v1, Resource=replicasets",
		"apps/v1, Resource=statefulsets",
		"autoscaling/v2, Resource=horizontalpodautoscalers",
		"batch/v1, Resource=cronjobs",
		"batch/v1, Resource=jobs",
	}
	var got []string
	for _, r := range resources.Builtin() {
		if slices.Contains(r.Categories, "all") {
			got = append(got, r.GroupVersionResource().String())
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("resources in category all:\n got %v\nwant %v", got, want)
	}
}

func TestBuiltin_order(t *testing.T) {
	wantGroups := []string{
		"",
		"apps",
		"events.k8s.io",
		"authentication.k8s.io",
		"authorization.k8s.io",
		"autoscaling",
		"batch",
		"certificates.k8s.io",
		"networking.k8s.io",
		"policy",
		"rbac.authorization.k8s.io",
		"storage.k8s.io",
		"admissionregistration.k8s.io",
		"apiextensions.k8s.io",
		"scheduling.k8s.io",
		"coordination.k8s.io",
		"node.k8s.io",
		"discovery.k8s.io",
		"resource.k8s.io",
		"flowcontrol.apiserver.k8s.io",
		"internal.apiserver.k8s.io",
		"storagemigration.k8s.io",
		"lifecycle.k8s.io",
		"metrics.k8s.io",
		"gitops.kiln.dev",
	}
	rs := resources.Builtin()

	// Each group version is one contiguous run, sorted by name.
	var gotGroups []string
	seen := map[schema.GroupVersion]bool{}
	for i, r := range rs {
		gv := r.GroupVersion()
		if i > 0 && rs[i-1].GroupVersion() == gv {
			if rs[i-1].Name >= r.Name {
				t.Errorf("%v: %q listed after %q", gv, r.Name, rs[i-1].Name)
			}
			continue
		}
		if seen[gv] {
			t.Errorf("%v is not listed contiguously", gv)
		}
		seen[gv] = true
		if len(gotGroups) == 0 || gotGroups[len(gotGroups)-1] != r.Group {
			gotGroups = append(gotGroups, r.Group)
		}
	}
	if !slices.Equal(gotGroups, wantGroups) {
		t.Errorf("group order:\n got %q\nwant %q", gotGroups, wantGroups)
	}
}

func TestBuiltin_freshSlices(t *testing.T) {
	first := resources.Builtin()
	want := resources.Builtin()
	for i := range first {
		first[i].Name = "changed"
		if len(first[i].Verbs) > 0 {
			first[i].Verbs[0] = "changed"
		}
		for j := range first[i].Subresources {
			first[i].Subresources[j].Verbs[0] = "changed"
		}
	}
	if got := resources.Builtin(); !reflect.DeepEqual(got, want) {
		t.Errorf("changing one call's result changed the next call's")
	}
}

func TestBuiltin_resources(t *testing.T) {
	tests := []struct {
		name string
		gvr  schema.GroupVersionResource
		want resources.Resource
	}{
		{
			name: "kiln source",
			gvr:  schema.GroupVersionResource{Group: "gitops.kiln.dev", Version: "v1alpha1", Resource: "sources"},
			want: resources.Resource{
				Group: "gitops.kiln.dev", Version: "v1alpha1", Name: "sources", Singular: "source",
				Kind: "Source", ListKind: "SourceList",
				Verbs: []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
				Subresources: []resources.Subresource{
					{Name: "status", Group: "gitops.kiln.dev", Version: "v1alpha1", Kind: "Source", Verbs: []string{"get", "patch", "update"}},
				},
			},
		},
		{
			name: "deployments",
			gvr:  schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
			want: resources.Resource{
				Group: "apps", Version: "v1", Name: "deployments", Singular: "deployment",
				Kind: "Deployment", ListKind: "DeploymentList", Namespaced: true,
				ShortNames: []string{"deploy"},
				Categories: []string{"all"},
				Verbs:      []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
				Subresources: []resources.Subresource{
					{Name: "scale", Group: "autoscaling", Version: "v1", Kind: "Scale", Verbs: []string{"get", "patch", "update"}},
					{Name: "status", Group: "apps", Version: "v1", Kind: "Deployment", Verbs: []string{"get", "patch", "update"}},
				},
			},
		},
		{
			name: "bindings are create only and unlistable",
			gvr:  schema.GroupVersionResource{Version: "v1", Resource: "bindings"},
			want: resources.Resource{
				Version: "v1", Name: "bindings", Singular: "binding", Kind: "Binding", Namespaced: true,
				Verbs: []string{"create"},
			},
		},
		{
			name: "componentstatuses are read only",
			gvr:  schema.GroupVersionResource{Version: "v1", Resource: "componentstatuses"},
			want: resources.Resource{
				Version: "v1", Name: "componentstatuses", Singular: "componentstatus",
				Kind: "ComponentStatus", ListKind: "ComponentStatusList",
				ShortNames: []string{"cs"},
				Verbs:      []string{"get", "list"},
			},
		},
		{
			name: "customresourcedefinitions",
			gvr:  schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
			want: resources.Resource{
				Group: "apiextensions.k8s.io", Version: "v1", Name: "customresourcedefinitions", Singular: "customresourcedefinition",
				Kind: "CustomResourceDefinition", ListKind: "CustomResourceDefinitionList",
				ShortNames: []string{"crd", "crds"},
				Categories: []string{"api-extensions"},
				Verbs:      []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
				Subresources: []resources.Subresource{
					{Name: "status", Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition", Verbs: []string{"get", "patch", "update"}},
				},
			},
		},
	}
	cat := resources.NewCatalog(resources.Builtin())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := cat.Lookup(tc.gvr.Group, tc.gvr.Version, tc.gvr.Resource)
			if !ok {
				t.Fatalf("%v not served", tc.gvr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestBuiltin_subresources(t *testing.T) {
	tests := []struct {
		name string
		gvr  schema.GroupVersionResource
		want []string
	}{
		{"pods", schema.GroupVersionResource{Version: "v1", Resource: "pods"},
			[]string{"attach", "binding", "ephemeralcontainers", "eviction", "exec", "log", "portforward", "proxy", "resize", "status"}},
		{"nodes", schema.GroupVersionResource{Version: "v1", Resource: "nodes"}, []string{"proxy", "status"}},
		{"services", schema.GroupVersionResource{Version: "v1", Resource: "services"}, []string{"proxy", "status"}},
		{"namespaces", schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, []string{"finalize", "status"}},
		{"serviceaccounts", schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, []string{"token"}},
		{"replicationcontrollers", schema.GroupVersionResource{Version: "v1", Resource: "replicationcontrollers"}, []string{"scale", "status"}},
		{"statefulsets", schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}, []string{"scale", "status"}},
		{"certificatesigningrequests", schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1", Resource: "certificatesigningrequests"}, []string{"approval", "status"}},
		{"configmaps", schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, nil},
	}
	cat := resources.NewCatalog(resources.Builtin())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := cat.Lookup(tc.gvr.Group, tc.gvr.Version, tc.gvr.Resource)
			if !ok {
				t.Fatalf("%v not served", tc.gvr)
			}
			var got []string
			for _, s := range r.Subresources {
				got = append(got, s.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("subresources = %v, want %v", got, tc.want)
			}
		})
	}
}

func ExampleBuiltin() {
	for _, r := range resources.Builtin() {
		if r.Group == "apps" {
			fmt.Println(r.Name, r.ShortNames, r.HasSubresource("scale"))
		}
	}
	// Output:
	// controllerrevisions [] false
	// daemonsets [ds] false
	// deployments [deploy] true
	// replicasets [rs] true
	// statefulsets [sts] true
}
