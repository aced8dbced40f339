package git

import (
	"strings"
	"testing"
	"time"

	"kiln.dev/kiln/sources"
)

// A source with a subpath carries the rest of the repository as context,
// so that an overlay can build on "../../base", and leaves out what a
// snapshot never holds: dot-folders, symlinks and the subpath itself.
func TestSource_Run_subpathContext(t *testing.T) {
	r := newRepo(t, t.TempDir(), "main")
	r.write(map[string]string{
		"base/kustomization.yaml":             "resources: [deploy.yaml]\n",
		"base/deploy.yaml":                    "kind: Deployment\n",
		"overlays/prod/kustomization.yaml":    "resources: [../../base]\n",
		"overlays/staging/kustomization.yaml": "resources: [../../base]\n",
		".github/ci.yaml":                     "ci\n",
		"README.md":                           "hi\n",
	})
	r.symlink("base/deploy.yaml", "link.yaml")
	r.commit("layout")
	src := start(t, Config{URL: "file://" + r.bare, Subpath: "overlays/prod", Interval: time.Hour})
	snap := src.snapshot(t)
	if snap.Subpath != "overlays/prod" {
		t.Errorf("Subpath = %q", snap.Subpath)
	}
	if got := paths(snap.Files); strings.Join(got, ",") != "kustomization.yaml" {
		t.Errorf("Files = %v, want the subpath's only", got)
	}
	want := "../../README.md,../../base/deploy.yaml,../../base/kustomization.yaml,../staging/kustomization.yaml"
	if got := paths(snap.Context); strings.Join(got, ",") != want {
		t.Errorf("Context = %v\nwant %s", got, want)
	}
	for _, f := range snap.Context {
		if f.Path == "../../base/deploy.yaml" && string(f.Data) != "kind: Deployment\n" {
			t.Errorf("%s holds %q", f.Path, f.Data)
		}
	}
}

// Without a subpath there is nothing outside the root.
func TestSource_Run_noSubpathNoContext(t *testing.T) {
	r := newRepo(t, t.TempDir(), "main")
	r.write(map[string]string{"a/b.yaml": "b\n"})
	r.commit("one")
	snap := start(t, Config{URL: "file://" + r.bare, Interval: time.Hour}).snapshot(t)
	if len(snap.Context) != 0 || snap.Subpath != "" {
		t.Errorf("Context = %v, Subpath = %q; want none", paths(snap.Context), snap.Subpath)
	}
}

func paths(files []sources.File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Path)
	}
	return out
}
