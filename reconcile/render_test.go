package reconcile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"kiln.dev/kiln/sources"
)

// testScope is the discovery of a small cluster: the kinds the fixtures
// use, and kiln's own Source (so that refusing it is not mistaken for an
// unknown kind).
func testScope(gvk schema.GroupVersionKind) (namespaced, known bool) {
	clusterScoped := map[schema.GroupVersionKind]bool{
		{Version: "v1", Kind: "Namespace"}:                                                        true,
		{Version: "v1", Kind: "PersistentVolume"}:                                                 true,
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}:                  true,
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}:           true,
		{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}:          true,
		{Group: "storage.k8s.io", Version: "v1", Kind: "StorageClass"}:                            true,
		{Group: "scheduling.k8s.io", Version: "v1", Kind: "PriorityClass"}:                        true,
		{Group: "gitops.kiln.dev", Version: "v1alpha1", Kind: "Source"}:                           true,
		{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingAdmissionPolicy"}: true,
	}
	namespacedKinds := map[schema.GroupVersionKind]bool{
		{Version: "v1", Kind: "ConfigMap"}:                                               true,
		{Version: "v1", Kind: "Secret"}:                                                  true,
		{Version: "v1", Kind: "Service"}:                                                 true,
		{Version: "v1", Kind: "ServiceAccount"}:                                          true,
		{Version: "v1", Kind: "Pod"}:                                                     true,
		{Version: "v1", Kind: "PersistentVolumeClaim"}:                                   true,
		{Group: "apps", Version: "v1", Kind: "Deployment"}:                               true,
		{Group: "apps", Version: "v1", Kind: "StatefulSet"}:                              true,
		{Group: "apps", Version: "v1", Kind: "DaemonSet"}:                                true,
		{Group: "apps", Version: "v1", Kind: "ReplicaSet"}:                               true,
		{Group: "batch", Version: "v1", Kind: "Job"}:                                     true,
		{Group: "batch", Version: "v1", Kind: "CronJob"}:                                 true,
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}:                true,
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"}:         true,
		{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}:                     true,
		{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"}:           true,
		{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"}:                    true,
		{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSlice"}:                true,
		{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"}:                     true,
		{Group: "events.k8s.io", Version: "v1", Kind: "Event"}:                           true,
		{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}:               true,
		{Group: "autoscaling", Version: "v1", Kind: "HorizontalPodAutoscaler"}:           true,
		{Group: "apps", Version: "v1", Kind: "ControllerRevision"}:                       true,
		{Version: "v1", Kind: "LimitRange"}:                                              true,
		{Version: "v1", Kind: "ResourceQuota"}:                                           true,
		{Version: "v1", Kind: "ReplicationController"}:                                   true,
		{Version: "v1", Kind: "Endpoints"}:                                               true,
		{Group: "storage.k8s.io", Version: "v1", Kind: "CSIStorageCapacity"}:             true,
		{Group: "authorization.k8s.io", Version: "v1", Kind: "LocalSubjectAccessReview"}: true,
	}
	switch {
	case clusterScoped[gvk]:
		return false, true
	case namespacedKinds[gvk]:
		return true, true
	}
	return false, false
}

// loadSnapshot reads testdata/render/<name> into a Snapshot, as a source
// would: slash-separated relative paths, sorted.
func loadSnapshot(t *testing.T, name string) *sources.Snapshot {
	t.Helper()
	root := filepath.Join("testdata", "render", name)
	snap := &sources.Snapshot{Source: "test", Revision: "test@" + name}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		snap.Files = append(snap.Files, sources.File{Path: filepath.ToSlash(rel), Data: data})
		return nil
	})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	slices.SortFunc(snap.Files, func(a, b sources.File) int { return strings.Compare(a.Path, b.Path) })
	return snap
}

// snapshotOf builds a Snapshot from inline files.
func snapshotOf(files map[string]string) *sources.Snapshot {
	snap := &sources.Snapshot{Source: "test", Revision: "inline"}
	for p, d := range files {
		snap.Files = append(snap.Files, sources.File{Path: p, Data: []byte(d)})
	}
	slices.SortFunc(snap.Files, func(a, b sources.File) int { return strings.Compare(a.Path, b.Path) })
	return snap
}

// wantProblem matches a Problem: every non-zero field must match; msg is
// a substring of the message.
type wantProblem struct {
	path   string
	index  int // -2 means do not check
	line   int
	object string
	field  string
	msg    string
}

func (w wantProblem) matches(p Problem) bool {
	return (w.path == "" || w.path == p.Path) &&
		(w.index == -2 || w.index == p.Index) &&
		(w.line == 0 || w.line == p.Line) &&
		(w.object == "" || w.object == p.Object) &&
		(w.field == "" || w.field == p.Field) &&
		strings.Contains(p.Message, w.msg)
}

// describe lists rendered objects as "Kind ns/name path#index", in order.
func describe(objs []Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, fmt.Sprintf("%s %s#%d", objectLabel(o.Obj), o.Path, o.Index))
	}
	return out
}

// problemsOf returns the problems of a *RenderError, failing otherwise.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var rerr *RenderError
	if !errors.As(err, &rerr) {
		t.Fatalf("error = %v (%T), want *RenderError", err, err)
	}
	return rerr.Problems
}

func TestRender(t *testing.T) {
	// No test may reach a git binary: kustomize would run it for a remote
	// base that slipped past the reference checks.
	t.Setenv("PATH", "")
	tests := []struct {
		name             string
		dir              string
		defaultNamespace string
		want             []string
		wantProblems     []wantProblem
	}{{
		name:             "realistic app in apply order, namespaces defaulted",
		dir:              "app",
		defaultNamespace: "demo",
		want: []string{
			"Namespace demo namespace.yaml#0",
			"Secret demo/web-secret secret.YAML#0",
			"ConfigMap demo/web-config config.yml#0",
			"Service demo/web service.yaml#0",
			"Deployment demo/web deployment.yaml#0",
		},
	}, {
		name: "multi-document file skips empty documents",
		dir:  "multidoc",
		want: []string{
			"Namespace demo all.yaml#3", // "null" is a document, if an empty one
			"ConfigMap demo/one all.yaml#0",
			"ConfigMap demo/two all.yaml#1",
		},
	}, {
		name: "List items are expanded",
		dir:  "list",
		want: []string{
			"ServiceAccount demo/robot list.yaml#0",
			"ConfigMap demo/a list.yaml#0",
			"ConfigMap demo/b typed.yaml#0",
		},
	}, {
		name: "kustomize base and overlay with ../base and namePrefix",
		dir:  "kustomize-overlay",
		want: []string{
			"Namespace prod namespace.yaml#0",
			"ConfigMap default/web-config base/kustomization.yaml#2",
			"ConfigMap prod/prod-web-config overlays/prod/kustomization.yaml#2",
			"Service default/web base/kustomization.yaml#1",
			"Service prod/prod-web overlays/prod/kustomization.yaml#1",
			"Deployment default/web base/kustomization.yaml#0",
			"Deployment prod/prod-web overlays/prod/kustomization.yaml#0",
		},
	}, {
		name: "kustomize references outside the repository or remote",
		dir:  "kustomize-escape",
		wantProblems: []wantProblem{
			{path: "app/kustomization.yaml", index: 0, line: 2, field: "resources[0]", msg: "outside the repository"},
			{path: "app/kustomization.yaml", index: 0, line: 3, field: "resources[1]", msg: `remote reference "github.com/example/repo//deploy"`},
			{path: "app/kustomization.yaml", index: 0, line: 4, field: "resources[2]", msg: `remote reference "https://example.com/manifest.yaml"`},
			{path: "app/kustomization.yaml", index: 0, line: 6, field: "resources[4]", msg: `remote reference "https://github.com/example/private"`},
			{path: "app/kustomization.yaml", index: 0, line: 5, field: "resources[3]", msg: "does not exist"},
			// "Resources:" and an alias: decoded as kustomize decodes them.
			{path: "tricks/kustomization.yaml", index: 0, field: "resources[0]", msg: "remote reference \"github.com/example/repo\""},
		},
	}, {
		name: "kustomize components; a topmost Component builds to nothing",
		dir:  "kustomize-component",
		want: []string{"ConfigMap default/cm app/kustomization.yaml#0"},
	}, {
		name: "kustomize openapi, helm and remote plugin paths are refused",
		dir:  "kustomize-forbidden",
		wantProblems: []wantProblem{
			{path: "app/kustomization.yaml", index: 0, line: 3, field: "openapi", msg: "not supported"},
			{path: "app/kustomization.yaml", index: 0, line: 5, field: "helmCharts", msg: "Helm"},
			{path: "app/kustomization.yaml", index: 0, line: 9, field: "transformers[0].path", msg: "remote reference"},
		},
	}, {
		name: "YAML syntax error names file and line",
		dir:  "yaml-syntax",
		wantProblems: []wantProblem{
			{path: "bad.yaml", index: 1, line: 11, msg: "YAML syntax error"},
		},
	}, {
		name: "unknown fields name the exact path",
		dir:  "unknown-field",
		wantProblems: []wantProblem{
			{path: "deployment.yaml", index: 0, line: 20, object: "Deployment demo/web",
				field: "spec.template.spec.containers[1].imagePullPolicyy", msg: "unknown field"},
			// Custom resources: only metadata can be checked.
			{path: "widget.yaml", index: 0, line: 6, object: "Widget demo/w", field: "metadata.lables", msg: "unknown field"},
		},
	}, {
		name: "duplicate object across files names both",
		dir:  "duplicate-object",
		wantProblems: []wantProblem{
			{path: "b.yaml", index: 1, line: 7, object: "ConfigMap default/settings", msg: "duplicate object: also defined in a.yaml (document 1)"},
		},
	}, {
		name: "deep nesting is refused",
		dir:  "deep-nesting",
		wantProblems: []wantProblem{
			{path: "block.yaml", index: 0, line: 1, msg: "nested deeper than 256"},
			{path: "deep.json", index: -1, line: 1, msg: "nested deeper than 256"},
			{path: "flow.yaml", index: 0, line: 6, msg: "nested deeper than 256"},
		},
	}, {
		name: "binary file named .yaml",
		dir:  "binary",
		wantProblems: []wantProblem{
			{path: "x.yaml", index: -1, msg: "not a text file"},
		},
	}, {
		name: "kiln's own kinds are refused",
		dir:  "source-kind",
		wantProblems: []wantProblem{
			{path: "crd.yaml", object: "CustomResourceDefinition sources.gitops.kiln.dev", msg: "managed by kiln itself"},
			{path: "source.yaml", object: "Source evil", msg: "managed by kiln itself"},
		},
	}, {
		name: "cluster-scoped objects with a namespace",
		dir:  "cluster-scoped-namespace",
		wantProblems: []wantProblem{
			{path: "ns.yaml", index: 0, line: 5, field: "metadata.namespace", msg: "Namespace is cluster-scoped"},
			{path: "ns.yaml", index: 1, line: 11, field: "metadata.namespace", msg: "ClusterRole is cluster-scoped"},
		},
	}, {
		name: "missing name, generateName, missing apiVersion",
		dir:  "missing-name",
		wantProblems: []wantProblem{
			{path: "objects.yaml", index: 0, line: 4, field: "metadata.name", msg: "required"},
			{path: "objects.yaml", index: 1, line: 11, object: "", field: "metadata.generateName", msg: "not allowed"},
			{path: "objects.yaml", index: 1, line: 11, field: "metadata.name", msg: "required"},
			{path: "objects.yaml", index: 2, line: 21, object: "ConfigMap no-api-version", field: "apiVersion", msg: "required"},
		},
	}, {
		name: "kind the cluster does not serve",
		dir:  "unknown-kind",
		wantProblems: []wantProblem{
			{path: "widget.yaml", index: 0, line: 1, object: "Widget w", msg: `no kind "Widget" is served by the cluster`},
		},
	}, {
		name: "CRD and custom resource in one snapshot",
		dir:  "crd-and-cr",
		want: []string{
			"CustomResourceDefinition widgets.example.com crd.yaml#0",
			"Widget default/w widget.yaml#0",
		},
	}, {
		name: "JSON files, duplicate JSON keys",
		dir:  "json",
		wantProblems: []wantProblem{
			{path: "dup.JSON", index: 0, field: "metadata.name", msg: "duplicate field"},
		},
	}, {
		name: "duplicate YAML keys",
		dir:  "duplicate-key",
		wantProblems: []wantProblem{
			{path: "cm.yaml", index: 0, line: 9, field: "data.a", msg: "duplicate field"},
		},
	}, {
		name: "bad separators and content after a document end marker",
		dir:  "separators",
		wantProblems: []wantProblem{
			{path: "docs.yaml", index: -1, line: 5, msg: "only a comment may follow"},
			{path: "docs.yaml", index: -1, line: 11, msg: "document end marker"},
		},
	}, {
		name: "documents that are not objects",
		dir:  "not-an-object",
		wantProblems: []wantProblem{
			{path: "list.yaml", index: 0, line: 1, msg: "document is not an object"},
			{path: "list.yaml", index: 1, line: 5, msg: "document is not an object"},
		},
	}, {
		name: "values of the wrong type",
		dir:  "wrong-type",
		wantProblems: []wantProblem{
			{path: "deployment.yaml", index: 0, line: 7, object: "Deployment demo/web", field: "spec.replicas", msg: "expected integer, got string"},
			{path: "pod.yaml", index: 0, line: 14, object: "Pod demo/p", field: "spec.containers[1].ports[1].containerPort", msg: "expected integer, got string"},
			{path: "quantity.yaml", index: 0, line: 13, object: "Pod demo/q", field: "spec.containers[0].resources.limits.memory", msg: "not a quantity"},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := Render(loadSnapshot(t, tc.dir), RenderOptions{DefaultNamespace: tc.defaultNamespace, Scope: testScope})
			// Fixtures mark secrets and tokens with "canary".
			if err != nil && strings.Contains(strings.ToLower(err.Error()), "canary") {
				t.Errorf("error leaks a canary:\n%v", err)
			}
			if tc.wantProblems == nil {
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				if got := describe(objs); !slices.Equal(got, tc.want) {
					t.Errorf("objects:\n got %q\nwant %q", got, tc.want)
				}
				return
			}
			if objs != nil {
				t.Errorf("objects = %v with an error, want none", describe(objs))
			}
			problems := problemsOf(t, err)
			if len(problems) != len(tc.wantProblems) {
				t.Fatalf("got %d problems, want %d:\n%v", len(problems), len(tc.wantProblems), err)
			}
			for _, w := range tc.wantProblems {
				if !slices.ContainsFunc(problems, w.matches) {
					t.Errorf("no problem matches %+v in:\n%v", w, err)
				}
			}
		})
	}
}

// TestRender_hostileInput_fast checks that hostile files are refused
// quickly and without a large allocation (RELIABILITY (b)6, 7, 9).
func TestRender_hostileInput_fast(t *testing.T) {
	bomb := loadSnapshot(t, "alias-bomb").Files[0].Data
	tests := []struct {
		name  string
		files map[string]string
		msg   string
	}{
		{"billion laughs", map[string]string{"bomb.yaml": string(bomb)}, "alias bomb"},
		{"billion laughs in a kustomize tree", map[string]string{"kustomization.yaml": "resources: [bomb.yaml]\n", "bomb.yaml": string(bomb)}, "alias bomb"},
		{"long scalar aliased many times", map[string]string{"big.yaml": "a: &a " + strings.Repeat("x", 100000) + "\nb: [" + strings.Repeat("*a,", 1000) + "*a]\n"}, "alias bomb"},
		{"alias cycle", map[string]string{"cycle.yaml": "a: &a\n  b: *a\n"}, "contains it"},
		{"10,000 nested flow sequences", map[string]string{"deep.yaml": strings.Repeat("[", 10000) + strings.Repeat("]", 10000)}, "nested deeper"},
		{"10,000 nested flow mappings", map[string]string{"deep.yaml": strings.Repeat("{a: ", 10000) + "1" + strings.Repeat("}", 10000)}, "nested deeper"},
		{"100,000 unclosed brackets", map[string]string{"deep.yaml": strings.Repeat("[", 100000)}, ""},
		{"10,000 nested block sequences", map[string]string{"deep.yaml": strings.Repeat("- ", 10000) + "x"}, "nested deeper"},
		{"300 nested sequences (under the pre-scan)", map[string]string{"deep.yaml": "a: " + strings.Repeat("[", 300) + strings.Repeat("]", 300)}, "nested deeper"},
		{"300 nested sequences with an anchor", map[string]string{"deep.yaml": "a: &x " + strings.Repeat("[", 300) + strings.Repeat("]", 300)}, "nested deeper"},
		{"deep through an alias", map[string]string{"deep.yaml": "a: &x " + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "\nb: " + strings.Repeat("[", 100) + "*x" + strings.Repeat("]", 100)}, "through an alias"},
		{"10,000 nested JSON arrays", map[string]string{"deep.json": strings.Repeat("[", 10000) + strings.Repeat("]", 10000)}, "nested deeper"},
		{"4 MiB of garbage", map[string]string{"junk.yaml": strings.Repeat("{[:,!&*|>'\"%@`", sources.MaxFileBytes/14)}, ""},
		{"invalid UTF-8", map[string]string{"latin1.yaml": "name: caf\xe9\n"}, "not a text file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Render(snapshotOf(tc.files), RenderOptions{Scope: testScope})
			elapsed := time.Since(start)
			if elapsed > time.Second {
				t.Errorf("Render took %v, want < 1s", elapsed)
			}
			problems := problemsOf(t, err)
			if tc.msg != "" && !slices.ContainsFunc(problems, func(p Problem) bool { return strings.Contains(p.Message, tc.msg) }) {
				t.Errorf("no problem says %q:\n%v", tc.msg, err)
			}
		})
	}
}

// TestRender_secretValuesNeverLeak commits invalid Secrets carrying canary
// values and greps every problem for them (RELIABILITY promise 15, (b)14).
func TestRender_secretValuesNeverLeak(t *testing.T) {
	_, err := Render(loadSnapshot(t, "secret-leak"), RenderOptions{Scope: testScope})
	problems := problemsOf(t, err)
	for _, canary := range []string{"canary", "7331733173"} {
		if strings.Contains(strings.ToLower(err.Error()), canary) {
			t.Errorf("error contains %q:\n%v", canary, err)
		}
		for _, p := range problems {
			if strings.Contains(strings.ToLower(fmt.Sprintf("%#v", p)), canary) {
				t.Errorf("problem contains %q: %#v", canary, p)
			}
		}
	}
	// Every bad document is reported, so the test cannot pass by
	// reporting nothing.
	for _, w := range []wantProblem{
		{path: "kust/kustomization.yaml", index: -1, msg: "kustomize build failed"},
		{path: "secrets.yaml", index: 0, line: 7, object: "Secret demo/bad-base64", field: "data.password", msg: "not valid base64"},
		{path: "secrets.yaml", index: 1, object: "Secret demo/number", field: "stringData.pin", msg: "expected string, got number"},
		{path: "secrets.yaml", index: 2, line: 22, object: "Secret demo/timestamp", field: "metadata.creationTimestamp", msg: "not a time"},
		{path: "secrets.yaml", index: 3, object: "Secret demo/unknown-field", field: "passwordd", msg: "unknown field"},
		{path: "secrets.yaml", index: 4, object: "Secret demo/object-value", field: "data.nested", msg: "expected base64 string, got object"},
		{path: "secrets.yaml", index: 5, line: 51, object: "Secret demo/duplicate-key", field: "stringData.a", msg: "duplicate field"},
		{path: "syntax.yaml", index: 0, msg: "YAML syntax error"},
	} {
		if !slices.ContainsFunc(problems, w.matches) {
			t.Errorf("no problem matches %+v in:\n%v", w, err)
		}
	}
}

func TestRender_options(t *testing.T) {
	snap := snapshotOf(map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"})
	if _, err := Render(snap, RenderOptions{}); !errors.Is(err, ErrNoScope) {
		t.Errorf("Render without Scope: err = %v, want ErrNoScope", err)
	}
	if _, err := Render(nil, RenderOptions{Scope: testScope}); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("Render(nil): err = %v, want ErrNoSnapshot", err)
	}
	if _, err := Render(snap, RenderOptions{Scope: testScope, DefaultNamespace: "Not_A_Label"}); err == nil {
		t.Error("Render with an invalid DefaultNamespace: err = nil")
	}
	objs, err := Render(snap, RenderOptions{Scope: testScope})
	if err != nil {
		t.Fatal(err)
	}
	if got := objs[0].Obj.GetNamespace(); got != DefaultNamespace {
		t.Errorf("namespace = %q, want %q", got, DefaultNamespace)
	}
	empty, err := Render(&sources.Snapshot{}, RenderOptions{Scope: testScope})
	if err != nil || len(empty) != 0 {
		t.Errorf("empty snapshot: %v, %v; want no objects and no error", empty, err)
	}
}

func TestRenderError_Error_truncates(t *testing.T) {
	var files = map[string]string{}
	for i := range 25 {
		files[fmt.Sprintf("f%02d.yaml", i)] = "kind: ConfigMap\n"
	}
	_, err := Render(snapshotOf(files), RenderOptions{Scope: testScope})
	problems := problemsOf(t, err)
	msg := err.Error()
	lines := strings.Split(msg, "\n")
	if len(problems) != 50 || len(lines) != 1+maxProblemsShown+1 || lines[len(lines)-1] != "and 30 more" {
		t.Errorf("%d problems, error:\n%s", len(problems), msg)
	}
	if want := "f00.yaml:1 (document 1): apiVersion: required"; lines[1] != want {
		t.Errorf("first line = %q, want %q", lines[1], want)
	}
}

func TestKeyOf(t *testing.T) {
	objs, err := Render(snapshotOf(map[string]string{"a.yaml": `
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: busybox}]}
`}), RenderOptions{Scope: testScope})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, KeyOf(o.Obj))
	}
	if want := []string{"/Namespace//demo", "apps/Deployment/demo/web"}; !slices.Equal(keys, want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
}

func TestSortForApply_table(t *testing.T) {
	var docs []string
	// Reverse order of the table, plus a kind it does not list.
	docs = append(docs, "apiVersion: v1\nkind: LimitRange\nmetadata: {name: z, namespace: demo}\n")
	for i := len(applyOrder) - 1; i >= 0; i-- {
		gk := applyOrder[i]
		gv := "v1"
		switch gk.Group {
		case "":
		case "autoscaling":
			gv = "autoscaling/v2"
		default:
			gv = gk.Group + "/v1"
		}
		docs = append(docs, fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata: {name: x%02d}\n", gv, gk.Kind, i))
	}
	objs, err := Render(snapshotOf(map[string]string{"all.yaml": strings.Join(docs, "---\n")}), RenderOptions{Scope: testScope})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Obj.GetKind())
	}
	var want []string
	for _, gk := range applyOrder {
		want = append(want, gk.Kind)
	}
	want = append(want, "LimitRange")
	if !slices.Equal(got, want) {
		t.Errorf("order:\n got %q\nwant %q", got, want)
	}
}

// FuzzRender renders single-file snapshots of arbitrary content: Render
// must never panic, must return either objects or a *RenderError, and must
// finish quickly.
func FuzzRender(f *testing.F) {
	for _, dir := range []string{"app", "multidoc", "list", "alias-bomb", "yaml-syntax", "secret-leak", "json", "not-an-object"} {
		root := filepath.Join("testdata", "render", dir)
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if data, err := os.ReadFile(p); err == nil {
					f.Add(uint8(0), data)
				}
			}
			return nil
		})
	}
	f.Add(uint8(1), []byte(`{"apiVersion":"v1","kind":"List","items":[{"kind":"List"}]}`))
	f.Add(uint8(2), []byte("resources: [a.yaml]\nnamePrefix: x-\n"))
	f.Add(uint8(2), []byte("resources: [github.com/a/b]\n"))
	f.Add(uint8(0), []byte("a: &a [*a]\n"))
	names := []string{"x.yaml", "x.json", "kustomization.yaml", "dir/x.YML"}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		snap := &sources.Snapshot{Files: []sources.File{{Path: names[int(which)%len(names)], Data: data}}}
		start := time.Now()
		objs, err := Render(snap, RenderOptions{Scope: testScope})
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("Render took %v", elapsed)
		}
		if err != nil {
			var rerr *RenderError
			if !errors.As(err, &rerr) || len(rerr.Problems) == 0 || objs != nil {
				t.Fatalf("Render = %d objects, %v; want a *RenderError with problems and no objects", len(objs), err)
			}
			return
		}
		for _, o := range objs {
			if o.Obj.GetName() == "" || o.Obj.GetKind() == "" {
				t.Fatalf("object without kind or name: %v", o.Obj)
			}
		}
	})
}
