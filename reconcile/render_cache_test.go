package reconcile

import (
	"os"
	"reflect"
	"testing"
)

// TestRender_cache renders every fixture without a cache, then twice with
// one (all misses, then all hits): the three results must be the same,
// problems and redaction of secret values included.
func TestRender_cache(t *testing.T) {
	t.Setenv("PATH", "") // as TestRender: kustomize must not reach git
	entries, err := os.ReadDir("testdata/render")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			snap := loadSnapshot(t, e.Name())
			want, wantErr := Render(snap, RenderOptions{Scope: testScope})
			c := &parseCache{}
			for _, pass := range []string{"miss", "hit"} {
				got, err := Render(snap, RenderOptions{Scope: testScope, cache: c})
				if errString(err) != errString(wantErr) {
					t.Fatalf("%s: error\n%v\nwant\n%v", pass, err, wantErr)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: objects %v, want %v", pass, describe(got), describe(want))
				}
			}
		})
	}
}

// TestRender_cacheFollowsSnapshot changes one file and removes another:
// the changed file is parsed again and the cache keeps only the files of
// the last snapshot.
func TestRender_cacheFollowsSnapshot(t *testing.T) {
	cm := func(name, v string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  v: v" + v + "\n"
	}
	c := &parseCache{}
	render := func(files map[string]string) []Object {
		t.Helper()
		objs, err := Render(snapshotOf(files), RenderOptions{Scope: testScope, cache: c})
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	render(map[string]string{"a.yaml": cm("a", "1"), "b.yaml": cm("b", "1")})
	objs := render(map[string]string{"a.yaml": cm("a", "2")})
	if len(objs) != 1 || objs[0].Obj.Object["data"].(map[string]any)["v"] != "v2" {
		t.Fatalf("objects after change: %v", objs)
	}
	if len(c.files) != 1 {
		t.Fatalf("cache holds %d files, want 1", len(c.files))
	}
	for k := range c.files {
		if k.path != "a.yaml" {
			t.Fatalf("cache holds %s", k.path)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
