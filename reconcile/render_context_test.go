package reconcile

import (
	"slices"
	"strings"
	"testing"

	"kiln.dev/kiln/sources"
)

// subpathSnapshot makes the snapshot a git source with subpath sub gives
// of the files: those under sub as Files, the rest as Context.
func subpathSnapshot(files map[string]string, sub string) *sources.Snapshot {
	snap := &sources.Snapshot{Source: "test", Revision: "inline", Subpath: sub}
	up := strings.Repeat("../", strings.Count(sub, "/")+1)
	for p, d := range files {
		if rest, ok := strings.CutPrefix(p, sub+"/"); ok {
			snap.Files = append(snap.Files, sources.File{Path: rest, Data: []byte(d)})
		} else {
			snap.Context = append(snap.Context, sources.File{Path: up + p, Data: []byte(d)})
		}
	}
	byPath := func(a, b sources.File) int { return strings.Compare(a.Path, b.Path) }
	slices.SortFunc(snap.Files, byPath)
	slices.SortFunc(snap.Context, byPath)
	return snap
}

const (
	ctxBase = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [cm.yaml]
`
	ctxBaseCM = `apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {level: base}
`
	ctxOverlay = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: prod
namePrefix: prod-
resources: [../../base]
`
)

// An overlay at the source's subpath builds on a base outside it, as
// `kustomize build overlays/prod` would; nothing outside is rendered on
// its own, and an unrelated kustomization elsewhere that kiln refuses
// (Helm) does not stop the sync.
func TestRender_subpathOverlayBuildsOnBaseOutside(t *testing.T) {
	t.Setenv("PATH", "")
	snap := subpathSnapshot(map[string]string{
		"base/kustomization.yaml":          ctxBase,
		"base/cm.yaml":                     ctxBaseCM,
		"overlays/prod/kustomization.yaml": ctxOverlay,
		"plain/other.yaml":                 "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n",
		"charts/kustomization.yaml":        "helmCharts: [{name: x}]\n",
	}, "overlays/prod")
	objs, err := Render(snap, RenderOptions{Scope: testScope})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(describe(objs), "; "); got != "ConfigMap prod/prod-settings kustomization.yaml#0" {
		t.Errorf("rendered %s", got)
	}
}

// What the base refers to is checked as if it were under the root, and a
// reference still cannot leave the repository.
func TestRender_subpathContextChecked(t *testing.T) {
	t.Setenv("PATH", "")
	tests := []struct {
		name  string
		files map[string]string
		want  wantProblem
	}{{
		name: "remote reference in the base",
		files: map[string]string{
			"base/kustomization.yaml":          "resources: [https://example.com/x.yaml]\n",
			"overlays/prod/kustomization.yaml": ctxOverlay,
		},
		want: wantProblem{path: "../../base/kustomization.yaml", index: -2, field: "resources[0]", msg: "remote reference"},
	}, {
		name: "out of the repository",
		files: map[string]string{
			"overlays/prod/kustomization.yaml": "resources: [../../../elsewhere]\n",
		},
		want: wantProblem{path: "kustomization.yaml", index: -2, field: "resources[0]", msg: "outside the repository"},
	}, {
		name: "missing base",
		files: map[string]string{
			"overlays/prod/kustomization.yaml": "resources: [../../nothing]\n",
		},
		want: wantProblem{path: "kustomization.yaml", index: -2, field: "resources[0]", msg: "does not exist in the repository"},
	}, {
		name: "broken manifest in the base",
		files: map[string]string{
			"base/kustomization.yaml":          ctxBase,
			"base/cm.yaml":                     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [}\n",
			"overlays/prod/kustomization.yaml": ctxOverlay,
		},
		want: wantProblem{path: "kustomization.yaml", index: -2, msg: "from 'cm.yaml': MalformedYAMLError"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(subpathSnapshot(tc.files, "overlays/prod"), RenderOptions{Scope: testScope})
			problems := problemsOf(t, err)
			if !slices.ContainsFunc(problems, tc.want.matches) {
				t.Errorf("problems %+v\nwant one like %+v", problems, tc.want)
			}
		})
	}
}
